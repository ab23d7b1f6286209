"""A real Label Studio talks to our platform (run with platform/labelstudio-interop.sh).

Label Studio runs from its own virtual environment (``var/labelstudio-venv``, its own
Django), on 127.0.0.1 with its own port and data folder; our platform is pytest-django's
``live_server``. The test pushes a dataset with label-studio-sdk, connects our /ls/
backend, has Label Studio fetch predictions from it, submits an annotation in Label
Studio and sees the revision arrive here (webhook), then pulls again (idempotent).
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests
from knox.models import AuthToken

from annotator.labelstudio.sdk_sync import client_for, pull_annotations, push_dataset
from annotator.models import (
    Annotation,
    AnnotationRevision,
    LabelStudioTask,
    Prediction,
    ReviewStatus,
    Role,
)
from tests.factories import MembershipFactory, UserFactory
from tests.security_world import make_world

pytestmark = [pytest.mark.interop, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
LS_BIN = Path(os.environ.get("LABEL_STUDIO_VENV", ROOT / "var" / "labelstudio-venv")) / "bin" / "label-studio"
STARTUP_SECONDS = 600


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def label_studio(tmp_path_factory):
    if not LS_BIN.exists():
        pytest.fail(f"{LS_BIN} is missing: run platform/labelstudio-interop.sh (it installs Label Studio)")
    port, token = free_port(), secrets.token_hex(20)
    data_dir = tmp_path_factory.mktemp("label-studio")
    env = {
        "PATH": os.environ["PATH"], "HOME": str(data_dir), "LANG": "C.UTF-8",
        "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
        "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
        # our backend and webhook live on 127.0.0.1: allow that for this local test only
        "ML_BLOCK_LOCAL_IP": "false", "SSRF_PROTECTION_ENABLED": "false",
    }
    log = open(data_dir / "label-studio.log", "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [str(LS_BIN), "start", "--no-browser", "--port", str(port), "--internal-host", "127.0.0.1",
         "--data-dir", str(data_dir / "data"), "--username", "ls-admin@example.org",
         "--password", secrets.token_hex(8), "--user-token", token, "--enable-legacy-api-token"],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=data_dir,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_SECONDS
    try:
        while True:
            try:
                if requests.get(f"{url}/health", timeout=2).ok:
                    break
            except requests.RequestException:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Label Studio did not start; see {data_dir / 'label-studio.log'}")
            time.sleep(2)
        yield url, token
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def test_label_studio_round_trip(label_studio, live_server, media_root):
    ls_url, ls_token = label_studio
    world = make_world()
    password = secrets.token_hex(12)
    bot = UserFactory(username="labelstudio")
    bot.set_password(password)
    bot.save()
    MembershipFactory(dataset=world.dataset, user=bot, role=Role.RADIOLOGIST)
    bot_token = AuthToken.objects.create(user=bot)[1]  # (row, the token to send)

    first = push_dataset(world.dataset, url=ls_url, api_key=ls_token, public_base_url=live_server.url)
    assert first.created_project and first.tasks_created == 1 and first.tasks_linked == 1
    again = push_dataset(world.dataset, url=ls_url, api_key=ls_token, public_base_url=live_server.url)
    assert (again.created_project, again.tasks_created, again.project_id) == (False, 0, first.project_id)
    task_id = LabelStudioTask.objects.get(image=world.image).task_id

    # the model's stored prediction appears only now, so Label Studio must ask our backend
    Prediction.objects.create(
        image=world.image, model_version=world.version, fracture_probability=0.9, embedding=b"",
        boxes=[{"bbox": [16, 12, 32, 24], "category": world.category.coco_id, "score": 0.9, "probs": [0.1, 0.9]}],
    )
    client = client_for(ls_url, ls_token)
    client.ml.create(project=first.project_id, url=f"{live_server.url}/ls/", title="fracture platform",
                     auth_method="BASIC_AUTH", basic_auth_user="labelstudio", basic_auth_pass=password,
                     extra_params={"dataset": world.dataset.pk})
    client.webhooks.create(url=f"{live_server.url}/ls/webhook", project=first.project_id, send_payload=True,
                           send_for_all_actions=False, headers={"Authorization": f"Token {bot_token}"},
                           actions=["ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_DELETED"])
    retrieved = requests.post(
        f"{ls_url}/api/dm/actions", params={"id": "retrieve_tasks_predictions", "project": first.project_id},
        json={"selectedItems": {"all": True, "excluded": []}}, headers={"Authorization": f"Token {ls_token}"},
        timeout=120,
    )
    assert retrieved.ok, retrieved.text

    predictions = [p for p in client.predictions.list(task=task_id) if p.model_version == "frcnn-0001.p3"]
    assert predictions, "Label Studio stored no prediction from our backend"
    (region,) = predictions[0].result
    assert region["value"]["rectanglelabels"] == ["fracture"]
    assert (region["value"]["x"], region["value"]["y"]) == pytest.approx((25.0, 25.0))
    assert (region["value"]["width"], region["value"]["height"]) == pytest.approx((50.0, 50.0))
    assert predictions[0].score == pytest.approx(0.42)

    boxes_before = AnnotationRevision.objects.count()
    client.annotations.create(id=task_id, result=[{
        "from_name": "label", "to_name": "image", "type": "rectanglelabels",
        "original_width": 64, "original_height": 48,
        "value": {"x": 50, "y": 25, "width": 25, "height": 50, "rotation": 0, "rectanglelabels": ["fracture"]},
    }])
    deadline = time.monotonic() + 60  # the webhook may be sent after the API call returns
    while time.monotonic() < deadline and AnnotationRevision.objects.count() == boxes_before:
        time.sleep(1)
    current = Annotation.objects.get(image=world.image, is_deleted=False)
    assert (current.x, current.y, current.w, current.h) == pytest.approx((32, 12, 16, 24))
    assert current.author == bot
    world.image.refresh_from_db()
    assert world.image.status == ReviewStatus.LABELED

    pulled = pull_annotations(world.dataset, url=ls_url, api_key=ls_token, actor=bot)
    assert pulled.annotations_pulled == 1  # first pull records it (boxes unchanged: already equal)
    assert Annotation.objects.filter(image=world.image, is_deleted=False).count() == 1
    assert pull_annotations(world.dataset, url=ls_url, api_key=ls_token, actor=bot).annotations_pulled == 0
