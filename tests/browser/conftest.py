"""Browser tests: Debian's Chromium driven by Playwright against the live Django server
(PostgreSQL). The browser is never downloaded (no ``playwright install``)."""

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from django.test import Client

from annotator.datasets.services.annotations import NewBox, create_boxes
from annotator.imaging import default_window
from annotator.models import AnnotationSource, ModelVersion, RankedImage, Ranking, Role
from ml_backend.phantoms import image_rng, render_phantom
from tests.factories import (
    CategoryFactory,
    DatasetFactory,
    ImageFactory,
    MembershipFactory,
    UserFactory,
)

CHROMIUM = "/usr/bin/chromium"
# Playwright's sync API keeps an event loop in the test thread; the ORM calls the tests
# make between browser steps are synchronous and safe there.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

sync_api = pytest.importorskip("playwright.sync_api")
if not shutil.which(CHROMIUM):
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)", allow_module_level=True)

IMAGE_SIZE = (600, 800)  # height, width
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest.fixture(scope="session")
def browser():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        )
        yield browser
        browser.close()


def phantom(index: int) -> np.ndarray:
    pixels, _ = render_phantom(image_rng(11, index), IMAGE_SIZE, bit_depth=16, fracture_probability=0)
    return pixels


@pytest.fixture
def reading_room(media_root):
    """A dataset with two classes, a reader, and three ranked 16-bit phantoms; the top one
    carries two proposals."""
    dataset = DatasetFactory(name="wrists")
    transverse = CategoryFactory(dataset=dataset, coco_id=1, name="transverse")
    CategoryFactory(dataset=dataset, coco_id=2, name="oblique")
    reader = UserFactory(username="reader")
    MembershipFactory(dataset=dataset, user=reader, role=Role.RADIOLOGIST)
    images = []
    for index in range(3):
        pixels = phantom(index)
        center, width = default_window(pixels)
        images.append(ImageFactory(dataset=dataset, pixels=pixels, width=IMAGE_SIZE[1], height=IMAGE_SIZE[0],
                                   bit_depth=16, window_center=center, window_width=width))
    ranking = Ranking.objects.create(dataset=dataset, strategy="ranked_batch")
    for position, image in enumerate([images[1], images[0], images[2]]):
        RankedImage.objects.create(ranking=ranking, image=image, position=position, score=0.9 - position / 10)
    proposals = create_boxes([
        NewBox(images[1], transverse, 200, 150, 120, 80, AnnotationSource.MODEL, 0.91, "frcnn-0001.p1"),
        NewBox(images[1], transverse, 500, 350, 90, 100, AnnotationSource.MODEL, 0.74, "frcnn-0001.p1"),
    ])
    return {"dataset": dataset, "reader": reader, "top": images[1], "images": images, "proposals": proposals}


def model_version(dataset, name, status, map50):
    """A version row (no weights file: the pages only show it) with validation metrics."""
    return ModelVersion.objects.create(
        dataset=dataset, name=name, engine="torchvision", weights=f"models/{dataset.pk}/{name}.pt",
        weights_sha256="0" * 64, status=status, gate_passed=True, gate_reason=f"{name}: gate passed",
        metrics={"map50": map50, "map": map50 / 2, "froc": {"fp_per_image": [1.0, 2.0], "sensitivity": [0.4, 0.6]},
                 "image_level": {"f1": 0.7}},
    )


@pytest.fixture
def login(browser, live_server):
    """``login(user)`` -> a new browser context signed in as ``user``."""
    contexts = []

    def make(user, **options):
        client = Client()
        client.force_login(user)
        context = browser.new_context(viewport={"width": 1280, "height": 860}, **options)
        context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}])
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        context.close()


def document(page, name):
    """With REVIEW_SCREENSHOTS=1, save the page as docs/screenshots/<name>.png."""
    if os.environ.get("REVIEW_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=SCREENSHOTS / f"{name}.png")


def watch_errors(page):
    """The page's uncaught errors, collected as they happen."""
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    return errors


def open_reader(context, live_server, dataset, image=None):
    page = context.new_page()
    page.on("pageerror", lambda error: print("page error:", error))
    query = f"?image={image.pk}" if image else ""
    page.goto(f"{live_server.url}/review/datasets/{dataset.pk}/read/{query}")
    wait_painted(page, image)
    return page


def wait_painted(page, image=None):
    expected = f"'{image.pk}'" if image else "document.body.dataset.imageId"
    page.wait_for_function(f"document.body.dataset.imageId && document.body.dataset.imageId === {expected}")


def wait_saved(page):
    page.wait_for_function("document.getElementById('save-state').dataset.state === 'saved' "
                           "&& window.review.outbox().pending === 0", timeout=10_000)


def click_select(page, point, local_id=None):
    """Deselect, click a box, and wait until it is the selected one."""
    page.keyboard.press("Escape")
    page.wait_for_function("() => window.review.anno.getSelected().length === 0")
    page.mouse.click(*point)
    expected = f"[0]?.id === '{local_id}'" if local_id else ".length === 1"
    page.wait_for_function(f"() => window.review.anno.getSelected(){expected}")


def screen(page, x, y):
    """The page coordinates of image pixel (x, y)."""
    point = page.evaluate("([x, y]) => window.review.viewer.imageToScreen(x, y)", [x, y])
    box = page.locator("#viewer").bounding_box()
    return box["x"] + point["x"], box["y"] + point["y"]


def image_at(page, px, py):
    """The image pixel under page coordinates (px, py), as the viewer computes it."""
    box = page.locator("#viewer").bounding_box()
    return page.evaluate(
        "([x, y]) => { const p = window.review.viewer.osd.viewport.viewerElementToImageCoordinates("
        "new OpenSeadragon.Point(x, y)); return [p.x, p.y]; }",
        [px - box["x"], py - box["y"]],
    )
