"""Splits from lists: which split each file name belongs to, and where a duplicated image goes.

A split list is a text or CSV file with one file name per line (its first column); a
header row such as FracAtlas' ``image_id`` is recognised by not naming an image file.
Names are matched by their base name, as the authors' lists give bare names.

When pixel-identical copies are listed in different splits, the image is kept once in the
split that measures the model (test over val over train over pool), so that an image the
model is evaluated on is never trained on.
"""

from __future__ import annotations

import csv
from pathlib import Path, PurePosixPath

from annotator.datasets.models import Split
from annotator.errors import InvalidInput

# The authors' names for our splits (FracAtlas ships ``valid.csv``).
LIST_NAMES = {"train": Split.TRAIN.value, "valid": Split.VAL.value, "val": Split.VAL.value, "test": Split.TEST.value}
# Where an image listed in several splits is kept: the first of these it is listed in.
EVALUATION_FIRST = (Split.TEST.value, Split.VAL.value, Split.TRAIN.value, Split.POOL.value)


class SplitListError(InvalidInput):
    """A split list that cannot be used; the message names the file and the reason."""


def _names_in(path: Path, image_suffixes: set[str]) -> list[str]:
    try:
        with path.open(newline="", encoding="utf-8") as stream:
            cells = [row[0].strip() for row in csv.reader(stream) if row and row[0].strip()]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise SplitListError(f"{path}: cannot be read: {exc}") from exc
    if cells and PurePosixPath(cells[0]).suffix.lower() not in image_suffixes:
        cells = cells[1:]  # a header row
    return cells


def read_split_lists(lists: dict[str, Path], image_suffixes: set[str]) -> dict[str, str]:
    """``{split: list file}`` -> ``{base name: split}``. A name in two lists is refused:
    the lists would contradict themselves."""
    split_of: dict[str, str] = {}
    listed_in: dict[str, Path] = {}
    for split, path in lists.items():
        for name in _names_in(path, image_suffixes):
            base = PurePosixPath(name).name
            if base in split_of and split_of[base] != split:
                raise SplitListError(f"{base} is listed in both {listed_in[base]} and {path}")
            split_of[base], listed_in[base] = split, path
    return split_of


def split_lists_in(folder: Path) -> dict[str, Path]:
    """The split lists of a folder: ``train``, ``valid`` (or ``val``) and ``test``, as
    ``.csv`` or ``.txt``; at least one must be there."""
    if not folder.is_dir():
        raise SplitListError(f"{folder}: is not a folder")
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        split = LIST_NAMES.get(path.stem.lower())
        if split is None or path.suffix.lower() not in (".csv", ".txt"):
            continue
        if split in found:
            raise SplitListError(f"{folder}: both {found[split].name} and {path.name} list the {split} split")
        found[split] = path
    if not found:
        raise SplitListError(f"{folder}: holds no train/valid/test list (.csv or .txt)")
    return found


def evaluation_split(splits) -> str:
    """The split a group of copies is kept in: the most evaluative of ``splits``."""
    present = set(splits)
    return next(split for split in EVALUATION_FIRST if split in present)
