"""The Label Studio ML-backend protocol under /ls/, served from stored rows."""

from __future__ import annotations

import base64

import pytest
from rest_framework.test import APIClient

from annotator.labelstudio.convert import (
    ConversionError,
    box_to_region,
    image_id_from_task_data,
    label_config,
    region_to_box,
    signed_image_path,
)
from annotator.models import (
    Annotation,
    AnnotationRevision,
    AuditAction,
    AuditEvent,
    Prediction,
    ReviewStatus,
)
from tests.security_world import make_world

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(media_root):
    w = make_world()
    Prediction.objects.create(
        image=w.image, model_version=w.version, fracture_probability=0.9, embedding=b"",
        boxes=[{"bbox": [16, 12, 32, 24], "category": w.category.coco_id, "score": 0.9, "probs": [0.1, 0.9]},
               {"bbox": [0, 0, 4, 4], "category": w.category.coco_id, "score": 0.05, "probs": [0.95, 0.05]}],
    )
    return w


def basic(user, password="pw-for-tests") -> APIClient:
    client = APIClient()
    token = base64.b64encode(f"{user.username}:{password}".encode()).decode()
    client.credentials(HTTP_AUTHORIZATION=f"Basic {token}")
    return client


def task(image, task_id=7):
    return {"id": task_id, "data": {"image": f"http://127.0.0.1:8000{signed_image_path(image.pk)}"}}


def test_health_and_root_answer_up():
    for url in ("/ls/", "/ls/health"):
        body = APIClient().get(url).json()
        assert body["status"] == "UP" and body["model_class"]


def test_everything_else_needs_credentials(world):
    anonymous = APIClient()
    assert anonymous.post("/ls/predict", {"tasks": [task(world.image)]}, format="json").status_code == 401
    assert basic(world.reader, "wrong").post("/ls/setup", {}, format="json").status_code == 401


def test_setup_answers_the_serving_version(world):
    body = {"project": "3.1700000000", "schema": "<View/>", "hostname": "http://ls", "access_token": "x",
            "extra_params": {"dataset": world.dataset.pk}}
    response = basic(world.reader).post("/ls/setup", body, format="json")
    assert response.status_code == 200 and response.json() == {"model_version": "frcnn-0001.p3"}
    assert basic(world.outsider).post("/ls/setup", body, format="json").status_code == 400


def test_predict_serves_stored_boxes_in_percent_with_the_ranking_score(world):
    response = basic(world.reader).post("/ls/predict", {"tasks": [task(world.image)], "project": "3.1"}, format="json")
    assert response.status_code == 200
    (entry,) = response.json()["results"]
    assert entry["model_version"] == "frcnn-0001.p3" and entry["score"] == pytest.approx(0.42)
    (region,) = entry["result"]  # the 0.05 candidate is under the display threshold
    assert region["type"] == "rectanglelabels" and region["score"] == pytest.approx(0.9)
    assert region["value"]["rectanglelabels"] == ["fracture"]
    assert (region["value"]["x"], region["value"]["y"]) == pytest.approx((25.0, 25.0))
    assert (region["value"]["width"], region["value"]["height"]) == pytest.approx((50.0, 50.0))
    assert (region["original_width"], region["original_height"]) == (64, 48)


def test_predict_without_a_stored_prediction_is_empty_and_requests_proposals(world, monkeypatch):
    from tests.factories import ImageFactory

    requested = []
    monkeypatch.setattr("annotator.labelstudio.views.request_proposals",
                        lambda dataset_id, ids: requested.append((dataset_id, ids)))
    fresh = ImageFactory(dataset=world.dataset)
    tasks = [task(fresh, 1), {"id": 2, "data": {"image": "http://169.254.169.254/latest/meta-data"}},
             task(world.image, 3)]
    results = basic(world.reader).post("/ls/predict", {"tasks": tasks}, format="json").json()["results"]
    assert [r["result"] == [] for r in results] == [True, True, False]
    assert results[0]["model_version"] == "frcnn-0001.p3.pending"
    assert requested == [(world.dataset.pk, [fresh.pk])]


def test_predict_gives_nothing_for_another_datasets_image(world):
    results = basic(world.outsider).post("/ls/predict", {"tasks": [task(world.image)]}, format="json").json()
    assert results["results"] == [{"result": [], "model_version": "none"}]


def ls_annotation(ann_id, regions, task_id=7):
    return {"id": ann_id, "result": regions}


def region(x, y, w, h, label="fracture"):
    return {"from_name": "label", "to_name": "image", "type": "rectanglelabels",
            "original_width": 64, "original_height": 48,
            "value": {"x": x, "y": y, "width": w, "height": h, "rotation": 0, "rectanglelabels": [label]}}


def test_webhook_annotations_become_revisions(world):
    client = basic(world.reader)
    created = client.post("/ls/webhook", {"action": "ANNOTATION_CREATED", "project": {"id": 3},
                                          "annotation": ls_annotation(55, [region(25, 25, 50, 50)]),
                                          "task": task(world.image)}, format="json")
    assert created.status_code == 201, created.content
    current = Annotation.objects.filter(image=world.image, is_deleted=False)
    (box,) = current
    assert (box.x, box.y, box.w, box.h) == pytest.approx((16, 12, 32, 24))
    assert box.author == world.reader
    assert AnnotationRevision.objects.filter(annotation=box, reason="label studio annotation 55").exists()
    world.image.refresh_from_db()
    assert world.image.status == ReviewStatus.LABELED
    assert AuditEvent.objects.filter(action=AuditAction.ANNOTATION_CHANGED, object_id=str(box.pk)).exists()

    again = client.post("/ls/webhook", {"action": "ANNOTATION_UPDATED", "annotation": ls_annotation(55, [
        region(25, 25, 50, 50)]), "task": task(world.image)}, format="json")
    assert again.json()["changes"] == [{"kept": 1, "created": 0, "deleted": 0}]

    deleted = client.post("/ls/webhook", {"action": "ANNOTATIONS_DELETED", "annotations": [{"id": 55}]},
                          format="json")
    assert deleted.status_code == 201 and deleted.json()["deleted"] == 1
    assert not Annotation.objects.filter(image=world.image, is_deleted=False).exists()


@pytest.mark.parametrize(
    "bad",
    [region(10, 10, 5, 5, label="<script>"), {**region(1, 1, 5, 5), "value": {"x": "a"}},
     {**region(1, 1, 5, 5), "original_width": 999},
     {**region(1, 1, 5, 5), "value": {**region(1, 1, 5, 5)["value"], "rotation": 30}}],
)
def test_webhook_with_bad_regions_is_refused_and_stores_nothing(world, bad):
    before = AnnotationRevision.objects.count()
    response = basic(world.reader).post("/ls/webhook", {"action": "ANNOTATION_CREATED",
                                                        "annotation": ls_annotation(9, [region(1, 1, 5, 5), bad]),
                                                        "task": task(world.image)}, format="json")
    assert response.status_code == 400
    assert AnnotationRevision.objects.count() == before


def test_viewers_and_outsiders_cannot_annotate_through_the_webhook(world):
    body = {"action": "ANNOTATION_CREATED", "annotation": ls_annotation(1, []), "task": task(world.image)}
    assert basic(world.viewer).post("/ls/webhook", body, format="json").status_code == 403
    assert basic(world.outsider).post("/ls/webhook", body, format="json").status_code == 404
    world.image.refresh_from_db()
    assert world.image.status != ReviewStatus.NEGATIVE


def test_start_training_queues_a_run_and_unknown_events_are_ignored(world, monkeypatch):
    calls = []
    monkeypatch.setattr("annotator.labelstudio.views.request_training_run",
                        lambda dataset, trigger, actor: calls.append((dataset, trigger, actor)) or world.run)
    response = basic(world.admin).post("/ls/webhook", {"action": "START_TRAINING", "project": {"id": 1}},
                                       format="json")
    assert response.status_code == 201 and calls == [(world.dataset, "manual", world.admin)]
    assert basic(world.admin).post("/ls/webhook", {"action": "PROJECT_UPDATED"}, format="json").status_code == 200


def test_versions_lists_serving_versions(world):
    assert basic(world.viewer).get("/ls/versions").json() == {"versions": ["frcnn-0001.p3"]}


def test_signed_image_urls_serve_the_file_and_refuse_tampering(world):
    url = signed_image_path(world.image.pk)
    response = APIClient().get(url)
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert APIClient().get(url[:-3] + "xyz").status_code == 404


def test_conversions_round_trip_and_escape_labels():
    r = box_to_region([16, 12, 32, 24], "a", 0.5, 64, 48)
    assert region_to_box(r, 64, 48) == pytest.approx(("a", 16, 12, 32, 24))
    assert "&lt;b&gt;" in label_config(["<b>"]) and "<b>" not in label_config(["<b>"])
    with pytest.raises(ConversionError):
        region_to_box({"value": {"x": 1, "y": 1, "width": 1, "height": 1, "rectanglelabels": []}}, 64, 48)
    assert image_id_from_task_data({"image": "http://evil.example/x.png"}) is None
    assert image_id_from_task_data({"image_id": 12}) == 12
    assert image_id_from_task_data({"image": "https://ours.example/api/images/5/file/"}) == 5
