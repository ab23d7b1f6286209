"""Issue 16, item 10: well-formed JSON of the wrong shape is a 400, never a 500."""

from __future__ import annotations

import pytest

from annotator.labelstudio.convert import signed_image_path
from tests.security_world import basic_client_for, client_for, make_world

pytestmark = pytest.mark.django_db
HUGE = int("9" * 400)


@pytest.fixture
def world(media_root, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    return make_world()


def region(**value):
    return {"from_name": "label", "to_name": "image", "type": "rectanglelabels",
            "value": {"x": 1, "y": 1, "width": 5, "height": 5, "rotation": 0, "rectanglelabels": ["fracture"],
                      **value}}


REVIEW_CASES = [
    ("patch", "box", [1, 2, 3]),
    ("patch", "box", {"version": "current", "x": HUGE}),
    ("patch", "box", {"version": "current", "w": HUGE}),
    ("patch", "box", {"version": "current", "x": "abc"}),
    ("patch", "box", {"version": HUGE}),
    ("post", "image:annotations/", {"category": "fracture", "x": HUGE, "y": 1, "w": 2, "h": 2}),
    ("post", "image:annotations/", {"category": [1], "x": 1, "y": 1, "w": 2, "h": 2}),
    ("post", "image:finish/", {"outcome": ["x"]}),
    ("post", "image:finish/", "labeled"),
    ("post", "image:accept-all/", {"threshold": HUGE}),
    ("post", "next", {"after": "abc"}),
    ("post", "next", [1]),
]


@pytest.mark.parametrize(("method", "target", "body"), REVIEW_CASES)
def test_review_writes_with_wrong_shapes_are_400(world, method, target, body):
    client = client_for(world.reader)
    image = f"/api/review/images/{world.image.pk}/"
    client.post(f"{image}open/", {}, format="json")
    path = {"box": f"/api/review/annotations/{world.box.pk}/",
            "next": f"/api/review/datasets/{world.dataset.pk}/next/"}.get(target) or image + target.split(":")[1]
    if isinstance(body, dict):
        body = {k: world.box.version if v == "current" else world.category.coco_id if v == "fracture" else v
                for k, v in body.items()}
    response = getattr(client, method)(path, body, format="json")
    assert response.status_code == 400, (path, body, response.status_code, response.content[:300])


def test_learning_writes_with_wrong_shapes_are_400(world):
    client = client_for(world.admin)
    rollback = f"/api/datasets/{world.dataset.pk}/rollback/"
    for body in ({"to_version": "abc"}, {"to_version": HUGE}, {"to_version": [1]}, [1, 2], {"reason": {"a": 1}}):
        response = client.post(rollback, body, format="json")
        assert response.status_code == 400, (body, response.content)
    for body in ([1], {"reason": ["x"]}):
        response = client.post(f"/api/model-versions/{world.version.pk}/promote/", body, format="json")
        assert response.status_code in (400, 409), (body, response.content)


@pytest.mark.parametrize("value", [{"rotation": "abc"}, {"rotation": [1]}, {"x": HUGE}, {"width": "1e999"}])
def test_label_studio_webhook_with_wrong_shapes_is_400(world, value):
    body = {"action": "ANNOTATION_CREATED", "annotation": {"id": 9, "result": [region(**value)]},
            "task": {"id": 7, "data": {"image": f"http://testserver{signed_image_path(world.image.pk)}"}}}
    response = basic_client_for(world.reader).post("/ls/webhook", body, format="json")
    assert response.status_code == 400, response.content


@pytest.mark.parametrize("body", [[1, 2], "x", {"action": "ANNOTATION_CREATED", "annotation": [1], "task": [2]},
                                  {"action": ["x"]}, {"action": "START_TRAINING", "project": {"id": [1]}}])
def test_label_studio_webhook_with_wrong_top_level_shapes_is_4xx(world, body):
    response = basic_client_for(world.reader).post("/ls/webhook", body, format="json")
    assert 400 <= response.status_code < 500, response.content


def coco_file(tmp_path, text: str):
    path = tmp_path / "annotations.json"
    path.write_text(text)
    (tmp_path / "images").mkdir()
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"images": [{"id": 1, "file_name": "a.png", "width": 8, "height": 8}], "categories": '
         '[{"id": 1, "name": "fracture"}], "annotations": [{"id": 1, "image_id": 1, "category_id": 1, '
         f'"bbox": [1, 1, {"9" * 400}, 2]}}]}}', "bbox"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ],
    ids=["400-digit-bbox-number", "100k-deep-nesting"],
)
def test_import_coco_says_what_is_wrong_without_a_traceback(tmp_path, text, message):
    """The command line: a CommandError (one line on stderr), never a traceback."""
    from django.core.management import CommandError, call_command

    path = coco_file(tmp_path, text)
    with pytest.raises(CommandError, match=message):
        call_command("import_coco", str(path), str(tmp_path / "images"), dataset="fuzz")
