"""Who may see and do what, per dataset: the one home of the access rule.

Roles (``Membership.role``): *admin* manages the dataset, its members, schedules and
model versions; *radiologist* reads and annotates; *viewer* only reads. Superusers act
as admins everywhere. Objects of datasets the user is not a member of are outside every
queryset, so they answer 404 (never 403, which would confirm that they exist); a member
whose role is too low gets 403 with the reason.

- ``visible_datasets`` / ``role_of``: the rule itself.
- ``dataset_for`` / ``object_for``: what every view calls (HTML and API alike).
- ``DatasetRole`` / ``ScopedViewSet``: the same rule for DRF viewsets.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.db.models import Model, QuerySet
from django.http import Http404
from rest_framework import permissions, viewsets
from rest_framework.permissions import IsAuthenticated

from annotator.datasets.models import Dataset, Role
from annotator.web.filters import AllowListFilterBackend, Filter

READ = frozenset(Role.values)
WRITE = frozenset({Role.ADMIN, Role.RADIOLOGIST})
ADMIN = frozenset({Role.ADMIN})

REFUSALS = {
    WRITE: "only admins and radiologists of this dataset may read and annotate",
    ADMIN: "only admins of this dataset may do this",
}


def visible_datasets(user) -> QuerySet[Dataset]:
    """Superusers see every dataset; everyone else sees the ones they are a member of."""
    if not user.is_authenticated:
        return Dataset.objects.none()
    if user.is_superuser:
        return Dataset.objects.all()
    return Dataset.objects.filter(memberships__user=user)


def role_of(user, dataset: Dataset | int) -> str | None:
    """The user's role in the dataset (superusers act as admins), or None."""
    if not user.is_authenticated:
        return None
    if user.is_superuser:
        return Role.ADMIN
    dataset_id = dataset.pk if isinstance(dataset, Dataset) else dataset
    return user.memberships.filter(dataset_id=dataset_id).values_list("role", flat=True).first()


def has_role(user, dataset: Dataset | int, roles: frozenset[str]) -> bool:
    return role_of(user, dataset) in roles


def check_role(user, dataset: Dataset | int, roles: frozenset[str]) -> None:
    """Raise ``PermissionDenied`` (403, with the reason) unless the user has one of ``roles``."""
    if not has_role(user, dataset, roles):
        raise PermissionDenied(REFUSALS.get(roles, "your role in this dataset does not allow this"))


def dataset_for(user, pk, roles: frozenset[str] = READ) -> Dataset:
    """The dataset ``pk`` if the user can see it (else 404) and has one of ``roles`` (else 403)."""
    dataset = visible_datasets(user).filter(pk=pk).first() if str(pk).isdigit() else None
    if dataset is None:
        raise Http404("no such dataset")
    check_role(user, dataset, roles)
    return dataset


def object_for(user, queryset: QuerySet, pk, roles: frozenset[str] = READ, *, via: str = "dataset") -> Model:
    """One object of ``queryset`` whose dataset (reached through ``via``) the user can see
    (else 404), checked against ``roles`` (else 403)."""
    found = (
        queryset.filter(**{f"{via}__in": visible_datasets(user)}).filter(pk=pk).first()
        if str(pk).isdigit()
        else None
    )
    if found is None:
        raise Http404(f"no such {queryset.model._meta.verbose_name}")
    check_role(user, dataset_of(found), roles)
    return found


def dataset_of(obj) -> Dataset:
    """The dataset an object belongs to (the object itself for a dataset)."""
    if isinstance(obj, Dataset):
        return obj
    if hasattr(obj, "dataset"):
        return obj.dataset
    if hasattr(obj, "image"):
        return obj.image.dataset
    raise TypeError(f"{type(obj).__name__} has no dataset")


class DatasetRole(permissions.BasePermission):
    """Object permission by the user's role in the object's dataset, for viewsets.

    Safe methods need any role; other methods need a role in the view's
    ``action_roles[action]`` (admins only unless the view says otherwise). The check runs
    before the request body is read, so a PATCH without permission is refused even when
    it would change nothing.
    """

    message = "your role in this dataset does not allow this"

    def has_object_permission(self, request, view, obj) -> bool:
        roles = READ if request.method in permissions.SAFE_METHODS else (
            getattr(view, "action_roles", {}).get(getattr(view, "action", None), ADMIN)
        )
        return has_role(request.user, dataset_of(obj), roles)


class NoMethodRevealsObjects:
    """A method an endpoint does not offer still answers 404 for an object the user
    cannot see (405 only once it is visible), so no method confirms that it exists."""

    def http_method_not_allowed(self, request, *args, **kwargs):
        if self.lookup_field in kwargs or (self.lookup_url_kwarg or "") in kwargs:
            self.get_object()
        return super().http_method_not_allowed(request, *args, **kwargs)


class ScopedViewSet(NoMethodRevealsObjects, viewsets.GenericViewSet):
    """Objects of visible datasets only, role-checked, allow-list filtered.

    ``dataset_field`` is the path from the model to its dataset. ``action_roles`` maps
    an action to the roles allowed to call it with an unsafe method (admins otherwise).
    """

    permission_classes = [IsAuthenticated, DatasetRole]
    filter_backends = [AllowListFilterBackend]
    dataset_field = "dataset"
    filter_fields: dict[str, Filter] = {}
    action_roles: dict[str, frozenset[str]] = {}

    def get_queryset(self):
        datasets = visible_datasets(self.request.user)
        return self.queryset.filter(**{f"{self.dataset_field}__in": datasets})
