"""The reading page's panel and controls: what is enabled, what stays put, fitting the
image back, why no box is shown, and the favicon."""

import pytest

from annotator.datasets.services.annotations import NewBox, create_boxes
from annotator.models import (
    AnnotationSource,
    ModelStatus,
    Prediction,
    RunState,
    RunTrigger,
    TrainingRun,
)
from tests.browser.conftest import (
    click_select,
    model_version,
    open_reader,
    screen,
    wait_painted,
    watch_errors,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.flaky(reruns=2)]


def enabled(page, button_id):
    return page.locator(f"#{button_id}").evaluate("b => [!b.disabled, b.title]")


def test_accept_is_enabled_only_for_a_selected_proposal(login, live_server, reading_room):
    context = login(reading_room["reader"])
    page = open_reader(context, live_server, reading_room["dataset"], reading_room["images"][0])  # no box
    assert enabled(page, "accept") == [False, "Select a proposal to accept it"]
    assert enabled(page, "accept-all") == [False, "No proposal on this image"]
    assert page.locator("#accept").evaluate("b => getComputedStyle(b).opacity") == "0.4"

    top, (proposal, _) = reading_room["top"], reading_room["proposals"]
    page = open_reader(context, live_server, reading_room["dataset"], top)
    assert enabled(page, "accept-all") == [True, "A"]
    assert enabled(page, "accept") == [False, "Select a proposal to accept it"]
    click_select(page, screen(page, 260, 190), f"b{proposal.pk}")
    assert enabled(page, "accept") == [True, "Enter"]
    page.click("#accept")
    page.wait_for_function(f"() => window.review.boxes().get('b{proposal.pk}').source === 'human'")
    assert enabled(page, "accept") == [False, "Select a proposal to accept it"]  # now a confirmed box


def test_the_buttons_stay_put_however_many_boxes_are_listed(login, live_server, reading_room):
    dataset, (empty, _, crowded) = reading_room["dataset"], reading_room["images"]
    transverse = reading_room["proposals"][0].category
    create_boxes([NewBox(crowded, transverse, 20 + 40 * i, 30, 30, 30, AnnotationSource.MODEL, 0.9, "frcnn-0001.p1")
                  for i in range(14)])
    context = login(reading_room["reader"])

    def layout(image):
        page = open_reader(context, live_server, dataset, image)
        return page, page.evaluate("() => [document.querySelector('[data-action=next]').getBoundingClientRect().top,"
                                   " document.querySelectorAll('#box-list li').length]")

    _, (top_empty, rows_empty) = layout(empty)
    page, (top_crowded, rows_crowded) = layout(crowded)
    assert (rows_empty, rows_crowded) == (0, 14)
    assert top_crowded == top_empty
    assert page.evaluate("() => { const area = document.querySelector('.box-area');"
                         " return area.scrollHeight > area.clientHeight; }")  # the list scrolls instead


def test_fit_brings_the_whole_image_back_after_zooming(login, live_server, reading_room):
    page = open_reader(login(reading_room["reader"]), live_server, reading_room["dataset"], reading_room["top"])
    zoom = "() => [window.review.viewer.osd.viewport.getZoom(true), window.review.viewer.osd.viewport.getHomeZoom()]"
    page.evaluate("() => window.review.viewer.zoomTo(3, 600, 450)")
    zoomed, home = page.evaluate(zoom)
    assert zoomed > 2 * home
    page.click("#fit")
    page.wait_for_function(f"() => {{ const [z, h] = ({zoom})(); return Math.abs(z - h) < 1e-6 * h; }}")
    page.evaluate("() => window.review.viewer.zoomTo(3, 600, 450)")
    page.keyboard.press("h")
    page.wait_for_function(f"() => {{ const [z, h] = ({zoom})(); return Math.abs(z - h) < 1e-6 * h; }}")


@pytest.fixture
def below_threshold(reading_room):
    """The third image: the model's best box scores 0.33, under the display threshold 0.5."""
    image = reading_room["images"][2]
    transverse = reading_room["proposals"][0].category
    version = model_version(reading_room["dataset"], "frcnn-0001", ModelStatus.PRODUCTION, 0.4)
    Prediction.objects.create(image=image, model_version=version, fracture_probability=0.33, embedding=b"",
                              boxes=[{"bbox": [300, 200, 80, 60], "category": 1, "score": 0.33, "probs": [0.33]}])
    create_boxes([NewBox(image, transverse, 300, 200, 80, 60, AnnotationSource.MODEL, 0.33, "frcnn-0001.p1")])
    return image


def test_a_probability_without_a_box_says_why_no_box_is_shown(login, live_server, reading_room, below_threshold):
    context = login(reading_room["reader"])
    page = open_reader(context, live_server, reading_room["dataset"], below_threshold)
    assert page.inner_text("#probability") == "0.33"
    assert page.locator("#box-list li").count() == 0
    note = page.locator("#box-note")
    assert note.is_visible()
    assert note.inner_text() == ("No box is shown: the model's boxes all score below the display threshold 0.50 "
                                 "(its best is 0.33, the fracture probability).")
    assert page.inner_text("#model-info") == "frcnn-0001, registered from a file, started from random weights"
    page = open_reader(context, live_server, reading_room["dataset"], reading_room["top"])  # boxes shown
    assert page.locator("#box-note").is_hidden()
    assert page.inner_text("#model-info") == "no model has read this image yet"


def test_the_panel_says_what_the_serving_model_learnt_from(login, live_server, reading_room, below_threshold):
    """A model trained only on synthetic phantoms put confident boxes on a real knee; the
    reader sees which data and which start the serving model came from."""
    version = Prediction.objects.get(image=below_threshold).model_version
    version.training_run = TrainingRun.objects.create(dataset=reading_room["dataset"], trigger=RunTrigger.MANUAL,
                                                      state=RunState.SUCCEEDED, snapshot_images=300,
                                                      snapshot_boxes=412)
    version.config = {"init": "imagenet", "architecture": "efficientnet_lite0_fpn"}
    version.save()
    page = open_reader(login(reading_room["reader"]), live_server, reading_room["dataset"], below_threshold)
    assert page.inner_text("#model-info") == (
        f"frcnn-0001, trained on 300 images (412 boxes) of {reading_room['dataset'].name}, started from imagenet"
    )


def test_every_page_has_a_favicon(login, live_server, reading_room):
    page = login(reading_room["reader"]).new_page()
    errors = watch_errors(page)
    page.goto(f"{live_server.url}/review/")
    href = page.locator("link[rel=icon]").get_attribute("href")
    answer = page.request.get(f"{live_server.url}{href}")
    assert answer.status == 200 and answer.headers["content-type"] == "image/svg+xml"
    assert answer.text().startswith("<svg")
    assert errors == []


def test_no_fracture_on_an_image_with_proposals_asks_first(login, live_server, reading_room):
    """F once put two obvious fractures under "no fracture" without a word."""
    top = reading_room["top"]
    page = open_reader(login(reading_room["reader"]), live_server, reading_room["dataset"], top)
    asked = []

    def answer(dialog):
        asked.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", answer)
    page.keyboard.press("f")
    page.wait_for_timeout(300)  # a finish would have been sent by now
    assert asked == ['This image has 2 boxes. Mark it "no fracture" and delete them?']
    top.refresh_from_db()
    assert top.status == "in_review" and top.annotations.filter(is_deleted=False).count() == 2


def test_done_next_on_a_negative_image_given_a_box_labels_it(login, live_server, reading_room):
    """Marked "no fracture", reopened, given a box and finished with Done, next: labeled,
    never negative with a confirmed box."""
    from annotator.datasets.services.annotations import add_box
    from annotator.models import Image, ReviewStatus

    image = reading_room["images"][0]
    Image.objects.filter(pk=image.pk).update(status=ReviewStatus.NEGATIVE)
    page = open_reader(login(reading_room["reader"]), live_server, reading_room["dataset"], image)
    add_box(image, reading_room["proposals"][0].category.coco_id, 10, 10, 40, 40, reading_room["reader"])
    page.reload()
    wait_painted(page, image)
    page.wait_for_function("() => [...window.review.boxes().values()].some(b => b.source === 'human')")
    page.keyboard.press("n")
    page.wait_for_function(f"() => window.review.current()?.image.id !== {image.pk}")
    assert Image.objects.get(pk=image.pk).status == ReviewStatus.LABELED
