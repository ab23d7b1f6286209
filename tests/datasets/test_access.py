"""Access control of the REST API: other datasets' objects are invisible for every
method, roles gate writes before input is read, unknown fields and filters are refused."""

from __future__ import annotations

import pytest
from django.forms.models import model_to_dict
from rest_framework.test import APIClient

from annotator.models import Annotation, Dataset, Image, Membership, Role
from tests.factories import UserFactory
from tests.security_world import client_for, make_world

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(media_root):
    return make_world()


OBJECT_URLS = {
    "dataset": lambda w: (f"/api/datasets/{w.dataset.pk}/", w.dataset),
    "dataset images": lambda w: (f"/api/datasets/{w.dataset.pk}/images/", w.dataset),
    "dataset export": lambda w: (f"/api/datasets/{w.dataset.pk}/export/", w.dataset),
    "members": lambda w: (f"/api/datasets/{w.dataset.pk}/members/", w.dataset),
    "member": lambda w: (
        f"/api/datasets/{w.dataset.pk}/members/{w.dataset.memberships.get(user=w.reader).pk}/",
        w.dataset.memberships.get(user=w.reader),
    ),
    "image": lambda w: (f"/api/images/{w.image.pk}/", w.image),
    "image file": lambda w: (f"/api/images/{w.image.pk}/file/", w.image),
    "image original": lambda w: (f"/api/images/{w.image.pk}/original/", w.image),
    "annotation": lambda w: (f"/api/annotations/{w.box.pk}/", w.box),
    "model version": lambda w: (f"/api/model-versions/{w.version.pk}/", w.version),
    "training run": lambda w: (f"/api/training-runs/{w.run.pk}/", w.run),
    "ranking": lambda w: (f"/api/rankings/{w.ranking.pk}/", w.ranking),
    "ranking entries": lambda w: (f"/api/rankings/{w.ranking.pk}/entries/", w.ranking),
    "schedule": lambda w: (f"/api/schedules/{w.schedule.pk}/", w.schedule),
}


@pytest.mark.parametrize("name", sorted(OBJECT_URLS))
@pytest.mark.parametrize("method", ["get", "patch", "delete", "put", "post"])
def test_another_datasets_objects_answer_404_and_stay_unchanged(world, name, method):
    url, obj = OBJECT_URLS[name](world)
    before = model_to_dict(obj)
    data = None if method == "get" else {"name": "pwned", "role": "admin"}
    response = getattr(client_for(world.outsider), method)(url, data, format="json")
    assert response.status_code == 404, (name, method, response.status_code, response.content[:200])
    obj.refresh_from_db()
    assert model_to_dict(obj) == before


def test_members_see_their_objects(world):
    client = client_for(world.viewer)
    for name, make in OBJECT_URLS.items():
        url, _ = make(world)
        expected = 404 if name == "image original" else 200  # a PNG has no DICOM original
        assert client.get(url).status_code == expected, name


def test_lists_hold_only_visible_datasets(world):
    client = client_for(world.outsider)
    for url in ["/api/datasets/", "/api/images/", "/api/annotations/", "/api/model-versions/",
                "/api/training-runs/", "/api/rankings/", "/api/schedules/"]:
        response = client.get(url)
        assert response.status_code == 200, url
        datasets = {row.get("dataset", row.get("id")) for row in response.json()["results"]}
        assert world.dataset.pk not in datasets, url
    assert client_for(world.admin).get("/api/schedules/").json()["count"] == 1


@pytest.mark.parametrize("role", ["viewer", "reader"])
def test_patch_without_permission_is_refused_even_when_nothing_would_change(world, role):
    response = client_for(getattr(world, role)).patch(
        f"/api/datasets/{world.dataset.pk}/", {"name": world.dataset.name}, format="json"
    )
    assert response.status_code == 403
    member = world.dataset.memberships.get(user=world.viewer)
    response = client_for(getattr(world, role)).patch(
        f"/api/datasets/{world.dataset.pk}/members/{member.pk}/", {"role": "viewer"}, format="json"
    )
    assert response.status_code == 403


def test_admin_renames_the_dataset(world):
    response = client_for(world.admin).patch(
        f"/api/datasets/{world.dataset.pk}/", {"description": "wrists, 2024"}, format="json"
    )
    assert response.status_code == 200
    assert Dataset.objects.get(pk=world.dataset.pk).description == "wrists, 2024"


def test_patch_with_unknown_fields_is_refused_naming_them(world):
    url = f"/api/datasets/{world.dataset.pk}/"
    response = client_for(world.admin).patch(url, {"description": "x", "val_frozen_at": None, "owner": 1},
                                              format="json")
    assert response.status_code == 400
    assert set(response.json()) == {"val_frozen_at", "owner"}
    assert Dataset.objects.get(pk=world.dataset.pk).description == ""


def test_admin_manages_members_and_keeps_one_admin(world):
    client = client_for(world.admin)
    base = f"/api/datasets/{world.dataset.pk}/members/"
    newcomer = UserFactory()
    added = client.post(base, {"username": newcomer.username, "role": "viewer"}, format="json")
    assert added.status_code == 201
    assert client.post(base, {"username": newcomer.username}, format="json").status_code == 409
    changed = client.patch(f"{base}{added.json()['id']}/", {"role": "radiologist"}, format="json")
    assert changed.status_code == 200 and changed.json()["role"] == "radiologist"
    assert client.delete(f"{base}{added.json()['id']}/").status_code == 204
    assert not Membership.objects.filter(user=newcomer).exists()
    own = world.dataset.memberships.get(user=world.admin)
    refused = client.patch(f"{base}{own.pk}/", {"role": "viewer"}, format="json")
    assert refused.status_code == 409 and "last admin" in refused.json()["detail"]
    assert client.delete(f"{base}{own.pk}/").status_code == 409
    assert Membership.objects.get(pk=own.pk).role == Role.ADMIN


@pytest.mark.parametrize(
    "query",
    ["created_by__password__startswith=pbkdf2", "author__password=x", "dataset__name=x", "ordering=-id"],
)
def test_filtering_on_fields_outside_the_allow_list_is_refused(world, query):
    for url in ["/api/annotations/", "/api/images/", f"/api/datasets/{world.dataset.pk}/images/"]:
        response = client_for(world.admin).get(f"{url}?{query}")
        assert response.status_code == 400, url
        assert query.split("=")[0] in response.json()["detail"]


def test_allowed_filters_work_and_bad_values_are_400(world):
    client = client_for(world.admin)
    assert client.get(f"/api/annotations/?image={world.image.pk}").json()["count"] == 1
    assert client.get("/api/annotations/?source=model").json()["count"] == 0
    assert client.get("/api/annotations/?image=abc").status_code == 400
    assert client.get("/api/images/?split=nowhere").status_code == 400


def test_session_post_without_csrf_token_is_refused(world):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(world.admin)
    response = client.patch(f"/api/datasets/{world.dataset.pk}/", {"description": "csrf"}, format="json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    assert Dataset.objects.get(pk=world.dataset.pk).description == ""


def test_markup_in_names_is_escaped_in_pages(world, client):
    world.category.name = "<script>alert(1)</script>"
    world.category.save()
    Image.objects.filter(pk=world.image.pk).update(file_name="<img src=x onerror=alert(2)>.png")
    client.force_login(world.admin)
    html = client.get(f"/datasets/{world.dataset.pk}/").content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert" not in html and "<img src=x" not in html


def test_an_uploaded_html_name_is_never_served_as_html(world):
    image = Image.objects.get(pk=world.image.pk)
    image.file.name = image.file.storage.save(f"datasets/{image.dataset_id}/x.png.html", image.file.open("rb"))
    image.file_name = "x.png.html"
    image.save()
    response = client_for(world.viewer).get(f"/api/images/{image.pk}/file/")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "x.png.html" not in response.get("Content-Disposition", "")
    assert b"".join(response.streaming_content).startswith(b"\x89PNG")


def test_a_dicom_original_is_an_attachment(world, media_root):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from tests.imaging import samples

    client = client_for(world.reader)
    uploaded = client.post(
        f"/api/datasets/{world.dataset.pk}/images/",
        {"file": SimpleUploadedFile("scan.html", samples.dicom_bytes())}, format="multipart",
    )
    assert uploaded.status_code == 201, uploaded.content
    response = client.get(f"/api/images/{uploaded.json()['id']}/original/")
    assert response["Content-Type"] == "application/dicom"
    assert response["Content-Disposition"].startswith("attachment")
    assert response["X-Content-Type-Options"] == "nosniff"


def test_annotations_are_read_only_here(world):
    response = client_for(world.admin).patch(f"/api/annotations/{world.box.pk}/", {"x": 1}, format="json")
    assert response.status_code == 405
    assert Annotation.objects.get(pk=world.box.pk).x == 4
