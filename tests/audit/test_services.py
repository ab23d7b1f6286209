"""The audit log: views of images, box changes with before/after, promotions and
rollbacks, exports, refusals and sign-ins; append-only and read-only in the admin."""

from __future__ import annotations

import pytest
from django.contrib.admin.sites import site
from django.core.management import call_command
from rest_framework.test import APIClient

from annotator.datasets.services.annotations import update_box
from annotator.models import AuditAction, AuditEvent, Promotion, PromotionKind
from tests.security_world import client_for, make_world

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(media_root):
    return make_world()


def events(action, **filters):
    return list(AuditEvent.objects.filter(action=action, **filters).order_by("id"))


def test_viewing_an_image_is_recorded_with_who_where_and_when(world):
    client = client_for(world.viewer)
    client.get(f"/api/images/{world.image.pk}/file/", HTTP_USER_AGENT="pytest-agent", REMOTE_ADDR="10.1.2.3")
    (event,) = events(AuditAction.IMAGE_VIEWED)
    assert (event.actor, event.dataset, event.object_id) == (world.viewer, world.dataset, str(world.image.pk))
    assert event.ip == "10.1.2.3" and event.user_agent == "pytest-agent"
    assert event.at.utcoffset().total_seconds() == 0


def test_a_box_change_is_recorded_with_before_and_after(world):
    update_box(world.box.pk, world.box.version, {"x": 20}, world.reader)
    (event,) = events(AuditAction.ANNOTATION_CHANGED, object_id=str(world.box.pk))
    assert event.actor == world.reader and event.dataset == world.dataset
    assert event.details["before"]["x"] == 4 and event.details["after"]["x"] == 20


def test_promotion_and_rollback_are_recorded(world):
    assert events(AuditAction.VERSION_PROMOTED)[0].details["serving_version"] == "frcnn-0001.p3"
    Promotion.objects.create(dataset=world.dataset, model_version=world.version, serial=4,
                             kind=PromotionKind.ROLLBACK, actor=world.admin)
    (rollback,) = events(AuditAction.VERSION_ROLLED_BACK)
    assert rollback.actor == world.admin and rollback.details["serving_version"] == "frcnn-0001.p4"


def test_exports_are_recorded_from_the_api_and_the_command(world, tmp_path):
    client_for(world.viewer).get(f"/api/datasets/{world.dataset.pk}/export/?split=all")
    call_command("export_coco", dataset=world.dataset.name, split="all", out=tmp_path / "x.json")
    api, command = events(AuditAction.DATASET_EXPORTED)
    assert api.actor == world.viewer and api.details["via"] == "api"
    assert command.actor is None and command.details["via"] == "command"


def test_refusals_are_recorded(world):
    client_for(world.outsider).get(f"/api/images/{world.image.pk}/")
    client_for(world.viewer).patch(f"/api/datasets/{world.dataset.pk}/", {"name": "x"}, format="json")
    APIClient().get("/api/datasets/")  # anonymous: 403, as session auth comes first
    statuses = sorted(e.details["status"] for e in events(AuditAction.ACCESS_DENIED))
    assert statuses == [403, 403, 404]


def test_failed_sign_ins_are_recorded_without_the_password(world, client):
    client.post("/accounts/login/", {"username": world.reader.username, "password": "wrong-secret"})
    (event,) = events(AuditAction.LOGIN_FAILED)
    assert event.actor_username == world.reader.username
    assert "wrong-secret" not in str(event.details)


def test_events_are_append_only_and_read_only_in_the_admin(world, rf):
    event = AuditEvent.objects.first()
    with pytest.raises(TypeError):
        event.save()
    with pytest.raises(TypeError):
        event.delete()
    with pytest.raises(TypeError):
        AuditEvent.objects.all().delete()
    admin = site._registry[AuditEvent]
    request = rf.get("/admin/")
    request.user = world.admin
    assert not admin.has_add_permission(request)
    assert not admin.has_change_permission(request, event)
    assert not admin.has_delete_permission(request, event)
    assert {"action", "dataset", "actor", "at"} <= set(admin.list_filter)


def test_the_admin_lists_and_filters_events(world, client, django_user_model):
    superuser = django_user_model.objects.create_superuser("root", "r@example.org", "pw-for-tests-1")
    client.force_login(superuser)
    response = client.get(f"/admin/annotator/auditevent/?action=version_promoted&dataset__id__exact={world.dataset.pk}")
    assert response.status_code == 200
    assert b"version_promoted" in response.content or b"Version promoted" in response.content
