"""The review page in real headless Chromium against the live server."""

import pytest

from annotator.models import Annotation, Image, ImageLease, RankedImage, ReviewStatus
from annotator.review.services import reading as review
from tests.browser.conftest import (
    click_select,
    document,
    image_at,
    open_reader,
    phantom,
    screen,
    wait_painted,
    wait_saved,
)
from tests.factories import ImageFactory, UserFactory

# The two-zoom test failed about 1 run in 4 until "D" read the selection from Annotorious
# instead of a copy kept from its events (reader.js: selectedId); 16 runs since passed.
# Reruns stay as a guard against headless-Chromium timing on a loaded machine; pytest's
# summary counts them ("N rerun"), so a flake still shows.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.flaky(reruns=2)]


def drag(page, start, end, steps=8):
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(*end, steps=steps)
    page.mouse.up()


def draw_box(page, start, end):
    """In draw mode (E) a drag draws a box (Escape first: a selected box would only be
    deselected by the drag)."""
    page.keyboard.press("Escape")
    drag(page, start, end)


def test_worklist_then_top_image_with_its_proposals(login, live_server, reading_room):
    page = login(reading_room["reader"]).new_page()
    page.goto(f"{live_server.url}/review/datasets/{reading_room['dataset'].pk}/")
    first_row = page.locator("#worklist tr").nth(1)
    assert reading_room["top"].file_name in first_row.inner_text()
    assert "ranked_batch" in page.content()
    page.click("#start-reading")
    wait_painted(page, reading_room["top"])
    labels = page.locator("#labels .box-label.model")
    assert labels.count() == 2
    assert sorted(labels.all_inner_texts()) == ["transverse 0.74", "transverse 0.91"]
    assert "#1 by ranked_batch" in page.inner_text("#rank-info")
    document(page, "review-proposals")
    reading_room["top"].refresh_from_db()
    assert reading_room["top"].status == ReviewStatus.IN_REVIEW


def eventually(check, timeout=10.0):
    import time

    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def near(actual, expected, tolerance=1.0):
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True))


def stored_near(annotation, expected):
    """Wait until the box's stored geometry is within 1 px of ``expected``."""
    def check():
        assert near(geometry(annotation), expected), (geometry(annotation), expected)
    eventually(check)


def geometry(annotation):
    annotation.refresh_from_db()
    return (annotation.x, annotation.y, annotation.w, annotation.h)


def test_edit_boxes_at_two_zoom_levels_and_everything_persists(login, live_server, reading_room):
    top, (moved, deleted) = reading_room["top"], reading_room["proposals"]
    page = open_reader(login(reading_room["reader"]), live_server, reading_room["dataset"], top)

    # fit zoom: move the first proposal by dragging it, then resize it by its corner handle
    centre = screen(page, 260, 190)
    click_select(page, centre, f"b{moved.pk}")
    target = (centre[0] + 40, centre[1] + 30)
    drag(page, centre, target)
    (sx, sy), (tx, ty) = image_at(page, *centre), image_at(page, *target)
    expected_moved = (200 + tx - sx, 150 + ty - sy, 120, 80)
    stored_near(moved, expected_moved)
    corner = screen(page, expected_moved[0] + 120, expected_moved[1] + 80)
    corner_target = (corner[0] + 30, corner[1] + 20)
    drag(page, corner, corner_target)
    (cx, cy), (ctx_, cty) = image_at(page, *corner), image_at(page, *corner_target)
    expected_moved = (expected_moved[0], expected_moved[1], 120 + ctx_ - cx, 80 + cty - cy)
    stored_near(moved, expected_moved)

    # fit zoom: draw a new box
    page.keyboard.press("e")
    start, end = screen(page, 60, 60), screen(page, 140, 120)
    draw_box(page, start, end)
    first_drawn = (*image_at(page, *start), *image_at(page, *end))

    # 2x zoom: draw another box and give it the second class
    page.evaluate("() => window.review.viewer.zoomTo(2, 420, 420)")
    start, end = screen(page, 380, 400), screen(page, 440, 460)
    draw_box(page, start, end)
    second_drawn = (*image_at(page, *start), *image_at(page, *end))
    page.keyboard.press("e")
    click_select(page, screen(page, 410, 430))
    page.keyboard.press("2")
    document(page, "review-mid-edit")

    # back to fit: delete the other proposal
    page.evaluate("() => window.review.viewer.osd.viewport.goHome(true)")
    click_select(page, screen(page, 545, 400), f"b{deleted.pk}")
    page.keyboard.press("d")
    wait_saved(page)

    def added():
        boxes = list(Annotation.objects.filter(image=top, source="human", is_deleted=False)
                     .exclude(pk=moved.pk).order_by("id"))
        assert len(boxes) == 2, boxes
        return boxes

    first, second = eventually(added)
    for box, (x0, y0, x1, y1) in ((first, first_drawn), (second, second_drawn)):
        assert near(geometry(box), (x0, y0, x1 - x0, y1 - y0)), (geometry(box), (x0, y0, x1, y1))
    assert (first.category.coco_id, second.category.coco_id) == (1, 2)
    assert near(geometry(moved), expected_moved)

    def removed():  # the delete autosaves on its own; the outbox may still hold it
        deleted.refresh_from_db()
        assert deleted.is_deleted

    eventually(removed)

    # reload: the page shows what the database holds
    page.reload()
    wait_painted(page, top)
    shown = page.evaluate("() => [...window.review.boxes().values()].filter(b => !b.deleted)"
                          ".map(b => [b.id, b.x, b.y, b.w, b.h, b.category])")
    assert sorted(row[0] for row in shown) == sorted([moved.pk, first.pk, second.pk])
    for row in shown:
        stored = Annotation.objects.get(pk=row[0])
        assert near(row[1:5], geometry(stored), 1e-6) and row[5] == stored.category.coco_id

    # another image: no fracture
    other = reading_room["images"][0]
    page.goto(f"{live_server.url}/review/datasets/{reading_room['dataset'].pk}/read/?image={other.pk}")
    wait_painted(page, other)
    page.keyboard.press("f")
    def negative():
        assert Image.objects.get(pk=other.pk).status == ReviewStatus.NEGATIVE
    eventually(negative)


def test_a_second_context_edits_the_same_box_and_the_first_gets_the_conflict_view(login, live_server, reading_room):
    top, (box, _) = reading_room["top"], reading_room["proposals"]
    first = open_reader(login(reading_room["reader"]), live_server, reading_room["dataset"], top)
    second = open_reader(login(reading_room["reader"]), live_server, reading_room["dataset"], top)

    # the second reader window moves the box 40 px right (in image pixels)
    centre = screen(second, 260, 190)
    click_select(second, centre, f"b{box.pk}")
    drag(second, centre, (centre[0] + 40 * scale(second), centre[1]))
    stored_near(box, (240, 150, 120, 80))
    theirs = geometry(box)
    assert box.version == 2

    # the first window still holds version 1: its move down is refused and it sees theirs
    centre = screen(first, 260, 190)
    click_select(first, centre, f"b{box.pk}")
    drag(first, centre, (centre[0], centre[1] + 30 * scale(first)))
    first.wait_for_selector("#conflict:not([hidden])")
    assert "version 2" in first.inner_text("#conflict-theirs")
    document(first, "review-conflict")
    assert geometry(box) == theirs  # nothing overwritten

    # merge: keep mine on top of theirs; both edits stay in the history
    first.click("#conflict-keep")
    stored_near(box, (200, 180, 120, 80))
    assert box.version == 3
    assert [r.after["y"] for r in box.revisions.order_by("version")][1:] == [theirs[1], box.y]


def scale(page):
    """Screen pixels per image pixel."""
    a, b = screen(page, 0, 0), screen(page, 100, 0)
    return (b[0] - a[0]) / 100


def test_offline_edit_survives_a_reload_and_is_saved_once_back_online(login, live_server, reading_room):
    top = reading_room["top"]
    context = login(reading_room["reader"])
    page = open_reader(context, live_server, reading_room["dataset"], top)
    context.set_offline(True)
    page.keyboard.press("e")
    draw_box(page, screen(page, 40, 400), screen(page, 140, 480))
    page.wait_for_function("document.getElementById('save-state').dataset.state === 'offline'")
    draft = page.evaluate(f"() => localStorage.getItem('review-draft:{reading_room['reader'].pk}:{top.pk}')")
    assert '"kind":"create"' in draft
    assert not Annotation.objects.filter(image=top, source="human").exists()
    page.close()

    context.set_offline(False)
    page = open_reader(context, live_server, reading_room["dataset"], top)
    wait_saved(page)
    (added,) = Annotation.objects.filter(image=top, source="human")
    assert near(geometry(added), (40, 400, 100, 80), 1.5)
    assert page.evaluate(f"() => localStorage.getItem('review-draft:{reading_room['reader'].pk}:{top.pk}')") is None


def test_window_level_changes_the_rendered_pixels_from_the_full_depth_values(login, live_server, reading_room):
    import numpy as np

    from tests.browser.conftest import phantom

    top = reading_room["top"]
    page = open_reader(login(reading_room["reader"]), live_server, reading_room["dataset"], top)
    raw = phantom(1)
    points = [(100, 100), (300, 250), (420, 420), (700, 550)]

    def rendered():
        return page.evaluate(
            "(pts) => pts.map(([x, y]) => window.review.viewer.greyAt(x, y))", points)

    def expected(center, width):
        values = np.array([raw[y, x] for x, y in points], dtype=np.float64)
        return list(np.clip(np.round((values - (center - width / 2)) * 255 / width), 0, 255).astype(int))

    assert rendered() == expected(top.window_center, top.window_width)
    center = float(np.median([raw[y, x] for x, y in points]))
    page.fill("#wl-center", str(round(center)))
    page.fill("#wl-width", "200")
    page.click("#wl-apply")
    assert rendered() == expected(round(center), 200)
    assert rendered() != expected(top.window_center, top.window_width)
    page.keyboard.press("r")
    assert rendered() == expected(top.window_center, top.window_width)
    elapsed = page.evaluate("() => window.review.viewer.render({center: 1500, width: 900})")
    assert rendered() == expected(1500, 900)
    print(f"W/L re-render of 800x600 16-bit: {elapsed:.1f} ms")


def on_screen(page, x, y):
    """Grey level and alpha that OpenSeadragon's on-screen canvas shows at image pixel (x, y)."""
    return page.evaluate(
        "async ([x, y]) => { await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));"
        " const v = window.review.viewer, p = v.imageToScreen(x, y), c = v.osd.drawer.canvas;"
        " const k = c.width / c.clientWidth, d = c.getContext('2d').getImageData(p.x * k, p.y * k, 1, 1).data;"
        " return [d[0], d[3]]; }", [x, y])


def assert_shown_with_live_window(page, width, height):
    """The image is on screen edge to edge, and a window/level change reaches the screen."""
    for window, grey in (({"center": 0, "width": 1}, 255), ({"center": 70000, "width": 1}, 0)):
        page.evaluate("(w) => window.review.viewer.render(w)", window)
        for x, y in ((2, 2), (width // 2, height // 2), (width - 3, height - 3)):
            assert on_screen(page, x, y) == [grey, 255], (window, x, y)


def wait_drawn_levels(page, levels):
    """Wait until OpenSeadragon draws tiles of exactly ``levels`` (a coarser level stays
    drawn under a finer one until the finer tiles are loaded)."""
    page.wait_for_function(
        "(want) => JSON.stringify([...new Set(window.review.viewer.osd.world.getItemAt(0)"
        ".getTilesToDraw().map((t) => t.level))].sort()) === JSON.stringify(want)", arg=sorted(levels))


def test_fitted_image_is_drawn_from_the_half_resolution_level_and_zoomed_in_from_full(
    login, live_server, reading_room
):
    top = reading_room["top"]
    page = open_reader(login(reading_room["reader"]), live_server, reading_room["dataset"], top)
    page.evaluate("() => window.review.viewer.zoomTo(0.3, 400, 300)")  # as a 2500 px image fits a screen
    wait_drawn_levels(page, [0])
    assert_shown_with_live_window(page, 800, 600)
    page.evaluate("() => window.review.viewer.zoomTo(2, 400, 300)")
    wait_drawn_levels(page, [1])
    page.evaluate("() => window.review.viewer.preset('auto')")
    # one point in each of the four full-resolution tiles (400 px square): the screen shows
    # the windowed value there, blended at most with the neighbours it is interpolated from
    for x, y in ((300, 200), (500, 200), (300, 420), (500, 420)):
        around = page.evaluate("([x, y]) => [x - 1, x].flatMap((i) => [y - 1, y].map((j) => window.review.viewer.greyAt(i, j)))", [x, y])
        grey, alpha = on_screen(page, x, y)
        assert alpha == 255 and min(around) - 1 <= grey <= max(around) + 1, (x, y, grey, around)


def test_half_resolution_values_are_the_2x2_means_odd_edges_included(login, live_server, reading_room):
    page = open_reader(login(reading_room["reader"]), live_server, reading_room["dataset"], reading_room["top"])
    halved = page.evaluate(
        "async () => { const { halve } = await import('/static/review/viewer.js');"
        " const h = halve(Uint16Array.from([0, 4, 10, 8, 12, 20, 100, 200, 65535]), 3, 3);"
        " return [Array.from(h.values), h.width, h.height, h.values.constructor.name]; }")
    assert halved == [[6, 15, 150, 65535], 2, 2, "Uint16Array"]


def test_next_shows_each_image_on_screen_whatever_its_size(login, live_server, reading_room):
    """OpenSeadragon is reused for an image of the same size and re-opened for another."""
    dataset, (first, top, last) = reading_room["dataset"], reading_room["images"]
    small = ImageFactory(dataset=dataset, pixels=phantom(3)[:300, :500], width=500, height=300, bit_depth=16,
                         window_center=top.window_center, window_width=top.window_width)
    RankedImage.objects.filter(image=first).update(image=small)
    page = open_reader(login(reading_room["reader"]), live_server, dataset, top)
    assert_shown_with_live_window(page, 800, 600)
    for image, size in ((small, (500, 300)), (last, (800, 600)), (first, (800, 600))):
        page.evaluate("() => window.review.next()")
        wait_painted(page, image)
        assert_shown_with_live_window(page, *size)


def ahead_ready(page, image):
    page.wait_for_function(f"() => window.review.ahead()?.id === {image.pk} && window.review.ahead().payload")


def test_next_paints_the_prefetched_image_and_the_server_confirms_it(login, live_server, reading_room):
    dataset, top, following = reading_room["dataset"], reading_room["top"], reading_room["images"][0]
    page = open_reader(login(reading_room["reader"]), live_server, dataset, top)
    ahead_ready(page, following)
    assert not ImageLease.objects.filter(image=following).exists()  # prefetching leases nothing
    page.evaluate("() => window.review.next()")
    wait_painted(page, following)
    assert page.evaluate("() => performance.getEntriesByName('review:painted').length") == 2  # painted once
    assert page.evaluate("() => window.review.current().session.id") is not None
    assert ImageLease.objects.get(image=following).user == reading_room["reader"]
    following.refresh_from_db()
    assert following.status == ReviewStatus.IN_REVIEW


def reader_whose_guess_another_reader_took(login, live_server, reading_room, *also_taken):
    """The reader's page on the top image once it has prefetched the next one, which
    another reader then opens (with ``also_taken``); returns the page."""
    page = open_reader(login(reading_room["reader"]), live_server, reading_room["dataset"], reading_room["top"])
    guess = reading_room["images"][0]
    ahead_ready(page, guess)
    for image in (guess, *also_taken):
        review.open_image(image, UserFactory())
    return page


def test_when_another_reader_took_the_prefetched_image_next_shows_the_one_handed_out(
        login, live_server, reading_room):
    last = reading_room["images"][2]
    page = reader_whose_guess_another_reader_took(login, live_server, reading_room)
    page.evaluate("() => window.review.next()")
    wait_painted(page, last)
    assert page.evaluate("() => window.review.current().image.id") == last.pk
    assert ImageLease.objects.get(image=last).user == reading_room["reader"]
    assert_shown_with_live_window(page, 800, 600)


def test_when_nothing_is_left_after_painting_the_guess_the_page_returns_to_its_image(
        login, live_server, reading_room):
    top, last = reading_room["top"], reading_room["images"][2]
    page = reader_whose_guess_another_reader_took(login, live_server, reading_room, last)
    page.evaluate("() => window.review.next()")
    assert "nothing left" in page.inner_text("#toast")
    assert page.evaluate("() => [document.body.dataset.imageId, window.review.current().image.id]") == [
        str(top.pk), top.pk]
    assert page.evaluate("() => [window.review.ahead(), window.review.boxes().size]") == [None, 2]
    assert ImageLease.objects.get(image=top).user == reading_room["reader"]
