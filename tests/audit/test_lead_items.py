"""Issue 16, items 4 and 6 (fixed by the lead), checked from the audit side: the review
page's pixels are an audited image view, and Label Studio's START_TRAINING obeys the
training API's role rule (refusals are audited)."""

from __future__ import annotations

import pytest

from annotator.models import AuditAction, AuditEvent, TrainingRun
from tests.security_world import basic_client_for, client_for, make_world

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(media_root, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    return make_world()


def test_review_pixels_are_an_audited_image_view(world):
    response = client_for(world.reader).get(f"/api/review/images/{world.image.pk}/pixels/")
    assert response.status_code == 200
    (event,) = AuditEvent.objects.filter(action=AuditAction.IMAGE_VIEWED)
    assert (event.actor, event.dataset, event.object_id) == (world.reader, world.dataset, str(world.image.pk))


def test_label_studio_start_training_needs_the_admin_role(world, monkeypatch):
    from annotator.learning import dispatch

    monkeypatch.setattr(dispatch, "publish_training", lambda run_id: None)
    body = {"action": "START_TRAINING", "project": {"id": 1}}
    before = TrainingRun.objects.count()
    assert basic_client_for(world.reader).post("/ls/webhook", body, format="json").status_code == 403
    assert TrainingRun.objects.count() == before
    assert AuditEvent.objects.filter(action=AuditAction.ACCESS_DENIED, actor=world.reader).exists()
