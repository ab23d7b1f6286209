"""Matching the boxes of pixel-identical copies, and splits from lists (no database)."""

from __future__ import annotations

import pytest

from annotator.datasets.models import CopyVerdict, ReviewStatus
from annotator.datasets.services.copies import CopyBox, CopyRead, box_iou, reconcile
from annotator.datasets.services.splits import (
    SplitListError,
    evaluation_split,
    read_split_lists,
    split_lists_in,
)

SUFFIXES = {".jpg", ".png"}


def fractured(name, *bboxes, category=0):
    return CopyRead(name, CopyVerdict.FRACTURED, tuple(CopyBox(category, b) for b in bboxes))


def test_iou_of_xywh_boxes():
    iou = box_iou([(0, 0, 10, 10), (5, 0, 10, 10)], [(0, 0, 10, 10)])
    assert iou.shape == (2, 1)
    assert iou[0, 0] == pytest.approx(1.0) and iou[1, 0] == pytest.approx(50 / 150)


def test_agreeing_boxes_are_kept_once_with_both_copies_and_their_iou():
    # IoU of these two: 90 / 110 = 0.818
    result = reconcile([fractured("a.jpg", (10, 10, 10, 10)), fractured("b.jpg", (11, 10, 10, 10))])
    assert result.status == ReviewStatus.LABELED and result.conflict == ""
    (kept,) = result.boxes
    assert kept.box.bbox == (10, 10, 10, 10)  # the first copy's box
    assert [(copy, box) for copy, box, _ in kept.sources] == [(0, 0), (1, 0)]
    assert kept.sources[1][2] == pytest.approx(90 / 110)
    assert result.matched() == [kept] and result.disputed() == []


def test_boxes_below_half_overlap_do_not_agree_and_make_a_conflict():
    # IoU 50 / 150 = 0.33
    result = reconcile([fractured("a.jpg", (0, 0, 10, 10)), fractured("b.jpg", (5, 0, 10, 10))])
    assert result.status == ReviewStatus.CONFLICT
    assert len(result.boxes) == 2 and len(result.disputed()) == 2  # the union, for the reader
    assert "box [0, 0, 10, 10] (class 0) of a.jpg has no match (IoU >= 0.5) in b.jpg" in result.conflict
    assert "box [5, 0, 10, 10] (class 0) of b.jpg has no match (IoU >= 0.5) in a.jpg" in result.conflict


def test_an_extra_box_in_one_copy_is_a_conflict_the_shared_one_is_not_disputed():
    result = reconcile([fractured("a.jpg", (0, 0, 10, 10), (40, 40, 5, 5)), fractured("b.jpg", (0, 0, 10, 10))])
    assert result.status == ReviewStatus.CONFLICT
    assert [k.box.bbox for k in result.disputed()] == [(40, 40, 5, 5)]
    assert [k.box.bbox for k in result.matched()] == [(0, 0, 10, 10)]


def test_matching_is_one_to_one_and_by_class():
    # b's two boxes both overlap a's one box; only the better one joins it
    result = reconcile([fractured("a.jpg", (0, 0, 10, 10)), fractured("b.jpg", (1, 0, 10, 10), (0, 0, 10, 10))])
    assert [len(k.sources) for k in result.boxes] == [2, 1]
    assert result.boxes[0].sources[1][1] == 1  # b's identical box, IoU 1
    other_class = reconcile([fractured("a.jpg", (0, 0, 10, 10)), fractured("b.jpg", (0, 0, 10, 10), category=1)])
    assert other_class.status == ReviewStatus.CONFLICT and len(other_class.boxes) == 2


def test_fractured_against_negative_is_a_conflict():
    result = reconcile([fractured("a.jpg", (0, 0, 10, 10)), CopyRead("b.jpg", CopyVerdict.NEGATIVE)])
    assert result.status == ReviewStatus.CONFLICT
    assert result.conflict == "a.jpg has 1 box but b.jpg is negative"
    assert len(result.disputed()) == 1


def test_three_copies_agreeing_keep_one_box():
    result = reconcile([fractured(n, (0, 0, 10, 10)) for n in ("a.jpg", "b.jpg", "c.jpg")])
    assert result.status == ReviewStatus.LABELED
    assert [len(k.sources) for k in result.boxes] == [3]


@pytest.mark.parametrize(
    ("verdicts", "status"),
    [
        ((CopyVerdict.NEGATIVE, CopyVerdict.NEGATIVE), ReviewStatus.NEGATIVE),
        ((CopyVerdict.UNLABELED, CopyVerdict.UNLABELED), ReviewStatus.UNLABELED),
        ((CopyVerdict.UNLABELED, CopyVerdict.NEGATIVE), ReviewStatus.NEGATIVE),
    ],
)
def test_copies_without_boxes(verdicts, status):
    result = reconcile([CopyRead(f"{i}.jpg", v) for i, v in enumerate(verdicts)])
    assert (result.status, result.conflict, result.boxes) == (status, "", [])


def test_split_lists_with_a_header_and_valid_meaning_val(tmp_path):
    (tmp_path / "train.csv").write_text("image_id\nIMG1.jpg\nIMG2.jpg\n")
    (tmp_path / "valid.csv").write_text("image_id\nIMG3.jpg\n")
    (tmp_path / "test.txt").write_text("sub/IMG4.jpg\n")
    (tmp_path / "notes.md").write_text("not a list")
    lists = split_lists_in(tmp_path)
    assert set(lists) == {"train", "val", "test"}
    assert read_split_lists(lists, SUFFIXES) == {"IMG1.jpg": "train", "IMG2.jpg": "train", "IMG3.jpg": "val",
                                                 "IMG4.jpg": "test"}


def test_a_name_in_two_lists_is_refused(tmp_path):
    (tmp_path / "train.csv").write_text("a.jpg\n")
    (tmp_path / "test.csv").write_text("a.jpg\n")
    with pytest.raises(SplitListError, match=r"a\.jpg is listed in both .*test\.csv and .*train\.csv"):
        read_split_lists(split_lists_in(tmp_path), SUFFIXES)


def test_a_folder_without_lists_is_refused(tmp_path):
    with pytest.raises(SplitListError, match="holds no train/valid/test list"):
        split_lists_in(tmp_path)


def test_evaluation_split_wins():
    assert evaluation_split(["train", "val"]) == "val"
    assert evaluation_split(["train", "test", "val"]) == "test"
    assert evaluation_split(["pool", "train"]) == "train"
