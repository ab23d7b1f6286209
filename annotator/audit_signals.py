"""Signal receivers that write the audit log; connected in ``AnnotatorConfig.ready``.

- ``AnnotationRevision`` saved one by one (the review page, Label Studio, the API) ->
  ``annotation_changed`` with before/after. Revisions written in bulk (COCO import,
  model proposals) send no ``post_save``; the revision table itself is their record.
- ``Promotion`` created -> ``version_promoted`` or ``version_rolled_back``.
- ``user_login_failed`` / ``user_logged_in`` -> sign-in events (the throttle counts them).
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.db.models.signals import post_save

from annotator.models import AnnotationRevision, AuditAction, Promotion, PromotionKind
from annotator.services.audit import record_event, record_revision


def revision_saved(sender, instance: AnnotationRevision, created: bool, **kwargs) -> None:
    if created and not kwargs.get("raw"):
        record_revision(instance)


def promotion_saved(sender, instance: Promotion, created: bool, **kwargs) -> None:
    if not created or kwargs.get("raw"):
        return
    action = (
        AuditAction.VERSION_ROLLED_BACK
        if instance.kind == PromotionKind.ROLLBACK
        else AuditAction.VERSION_PROMOTED
    )
    record_event(
        None,
        instance.actor,
        action,
        dataset=instance.dataset,
        obj=instance.model_version,
        details={
            "serving_version": instance.serving_version,
            "kind": instance.kind,
            "previous_version": instance.previous_version_id,
            "reason": instance.reason,
        },
    )


def login_failed(sender, credentials: dict, request=None, **kwargs) -> None:
    username = str(credentials.get(get_user_model().USERNAME_FIELD) or credentials.get("username") or "")
    record_event(request, None, AuditAction.LOGIN_FAILED, actor_username=username[:150])


def logged_in(sender, request, user, **kwargs) -> None:
    record_event(request, user, AuditAction.LOGIN_SUCCEEDED)


def connect() -> None:
    post_save.connect(revision_saved, sender=AnnotationRevision, dispatch_uid="audit-revision")
    post_save.connect(promotion_saved, sender=Promotion, dispatch_uid="audit-promotion")
    user_login_failed.connect(login_failed, dispatch_uid="audit-login-failed")
    user_logged_in.connect(logged_in, dispatch_uid="audit-logged-in")
