"""Window/level presets on a real MONOCHROME1 CR (pydicom-data's RG3_UNCR.dcm: 10-bit,
its own window L550/W1024, a collimated border stored as 0), uploaded through the API."""

from io import BytesIO

import numpy as np
import pydicom
import pytest
from django.test import Client
from PIL import Image as PILImage
from pydicom.data import get_testdata_file

from annotator.models import Image, Role
from tests.browser.conftest import document, open_reader
from tests.factories import CategoryFactory, DatasetFactory, MembershipFactory, UserFactory

pytestmark = [pytest.mark.django_db(transaction=True)]

PRESETS = ("reset", "auto", "bone", "soft")


@pytest.fixture
def real_cr(media_root):
    """RG3_UNCR.dcm uploaded by a radiologist to a dataset of their own."""
    path = get_testdata_file("RG3_UNCR.dcm")
    dataset = DatasetFactory(name="legs")
    CategoryFactory(dataset=dataset, coco_id=1, name="fracture")
    reader = UserFactory(username="reader")
    MembershipFactory(dataset=dataset, user=reader, role=Role.RADIOLOGIST)
    client = Client()
    client.force_login(reader)
    with open(path, "rb") as upload:
        answer = client.post(f"/api/datasets/{dataset.pk}/images/", {"file": upload})
    assert answer.status_code == 201, answer.content
    image = Image.objects.get(pk=answer.json()["id"])
    return {"dataset": dataset, "reader": reader, "image": image, "pixels": pydicom.dcmread(path).pixel_array}


def limb_points(pixels, count=400):
    """Image pixels inside the limb (bone and soft tissue): neither the collimated border
    (0 and its blurred edge) nor the directly exposed background (above 900)."""
    ys, xs = np.nonzero((pixels > 170) & (pixels < 900))
    chosen = np.random.default_rng(5).choice(len(xs), count, replace=False)
    return [[int(xs[i]), int(ys[i])] for i in chosen]


def screen_greys(page):
    """The viewer as it is on screen, in grey levels."""
    shot = PILImage.open(BytesIO(page.locator("#viewer").screenshot(type="png")))
    return np.asarray(shot.convert("L"), dtype=np.float64)


def test_every_preset_shows_the_limb_of_a_real_monochrome1_cr(login, live_server, real_cr):
    image, pixels = real_cr["image"], real_cr["pixels"]
    assert (image.photometric_interpretation, image.bit_depth) == ("MONOCHROME1", 10)
    page = open_reader(login(real_cr["reader"]), live_server, real_cr["dataset"], image)
    points = limb_points(pixels)
    windows = {}
    for name in PRESETS:
        page.click(f"[data-preset={name}]")
        windows[name] = page.evaluate("() => window.review.viewer.window")
        greys = np.array(page.evaluate("(pts) => pts.map(([x, y]) => window.review.viewer.greyAt(x, y))", points))
        # the limb has detail: not solid black or white, and its greys spread
        assert (greys == 0).mean() < 0.5 and (greys == 255).mean() < 0.5 and greys.std() > 25, (name, windows[name])
        shown = screen_greys(page)
        assert (shown < 5).mean() < 0.9 and (shown > 250).mean() < 0.9 and shown.std() > 25, name
        page.evaluate("() => { document.querySelector('.reader-panel').scrollTop = 0; }")  # the clicks scrolled it
        document(page, f"real-mono1-{name}")
    assert windows["reset"] == {"center": 550, "width": 1024}  # the file's own window is the default
    assert len({(w["center"], w["width"]) for w in windows.values()}) == len(PRESETS)
