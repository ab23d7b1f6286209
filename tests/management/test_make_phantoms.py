import json

import pytest
from django.core.management import CommandError, call_command
from PIL import Image


def test_make_phantoms_writes_a_coco_folder(tmp_path):
    call_command("make_phantoms", "--n", "3", "--size", "96", "--seed", "5", "--out", str(tmp_path))
    coco = json.loads((tmp_path / "annotations.json").read_text())
    assert len(coco["images"]) == 3 and len(coco["categories"]) >= 2
    first = Image.open(tmp_path / "images" / coco["images"][0]["file_name"])
    assert first.size == (96, 96) and first.mode.startswith("I;16")


def test_make_phantoms_refuses_silly_sizes(tmp_path):
    with pytest.raises(CommandError, match="--size at least 64"):
        call_command("make_phantoms", "--n", "3", "--size", "8", "--out", str(tmp_path))
