"""The review page in real headless Chromium against the live server."""

import pytest

from annotator.models import Annotation, Image, ReviewStatus
from tests.browser.conftest import image_at, open_reader, screen, wait_painted, wait_saved

pytestmark = pytest.mark.django_db(transaction=True)


def drag(page, start, end, steps=8):
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(*end, steps=steps)
    page.mouse.up()


def draw_box(page, start, end):
    """Annotorious' click mode: click one corner, move, click the opposite corner."""
    page.mouse.click(*start)
    page.mouse.move(*end, steps=5)
    page.mouse.click(*end)


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


def geometry(annotation):
    annotation.refresh_from_db()
    return (annotation.x, annotation.y, annotation.w, annotation.h)


def test_edit_boxes_at_two_zoom_levels_and_everything_persists(login, live_server, reading_room):
    top, (moved, deleted) = reading_room["top"], reading_room["proposals"]
    page = open_reader(login(reading_room["reader"]), live_server, reading_room["dataset"], top)

    # fit zoom: move the first proposal by dragging it, then resize it by its corner handle
    centre = screen(page, 260, 190)
    page.mouse.click(*centre)
    target = (centre[0] + 40, centre[1] + 30)
    drag(page, centre, target)
    (sx, sy), (tx, ty) = image_at(page, *centre), image_at(page, *target)
    expected_moved = (200 + tx - sx, 150 + ty - sy, 120, 80)
    eventually(lambda: near(geometry(moved), expected_moved) or pytest.fail(f"{geometry(moved)} != {expected_moved}"))
    corner = screen(page, expected_moved[0] + 120, expected_moved[1] + 80)
    corner_target = (corner[0] + 30, corner[1] + 20)
    drag(page, corner, corner_target)
    (cx, cy), (ctx_, cty) = image_at(page, *corner), image_at(page, *corner_target)
    expected_moved = (expected_moved[0], expected_moved[1], 120 + ctx_ - cx, 80 + cty - cy)
    eventually(lambda: near(geometry(moved), expected_moved) or pytest.fail(f"{geometry(moved)} != {expected_moved}"))

    # fit zoom: draw a new box
    start, end = screen(page, 60, 60), screen(page, 140, 120)
    draw_box(page, start, end)
    first_drawn = (*image_at(page, *start), *image_at(page, *end))

    # 2x zoom: draw another box and give it the second class
    page.evaluate("() => window.review.viewer.zoomTo(2, 420, 420)")
    start, end = screen(page, 380, 400), screen(page, 440, 460)
    draw_box(page, start, end)
    second_drawn = (*image_at(page, *start), *image_at(page, *end))
    page.keyboard.press("2")

    # back to fit: delete the other proposal
    page.evaluate("() => window.review.viewer.osd.viewport.goHome(true)")
    page.mouse.click(*screen(page, 545, 400))
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
    deleted.refresh_from_db()
    assert deleted.is_deleted

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
    eventually(lambda: Image.objects.get(pk=other.pk).status == ReviewStatus.NEGATIVE or pytest.fail("not negative"))
