"""Files as the worker needs them: local paths, whatever storage holds them.

With the file-system storage a dataset's images are read in place; with a remote store
(S3-compatible, through django-storages) they are copied once into a per-worker cache
under ``VAR_DIR/cache``, so a worker on another machine trains and predicts on the same
files the web process stored.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.files.storage import default_storage

from annotator.datasets.models import Dataset, Image
from annotator.datasets.services.coco_export import dataset_media_prefix
from annotator.imaging import decode_image
from ml_backend.preprocessing import model_view


def storage_is_local() -> bool:
    try:
        default_storage.path("")
    except NotImplementedError:
        return False
    return True


def local_copy(name: str) -> Path:
    """A local path holding the stored file ``name`` (the file itself when local)."""
    if storage_is_local():
        return Path(default_storage.path(name))
    target = Path(settings.VAR_DIR) / "cache" / name
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".part")
        with default_storage.open(name, "rb") as source, open(partial, "wb") as out:
            shutil.copyfileobj(source, out)
        partial.replace(target)
    return target


def local_dataset_dir(dataset: Dataset, names: Iterable[str]) -> Path:
    """The local folder that a snapshot's ``file_name`` values (relative to the dataset's
    media prefix) resolve against, with every listed file present."""
    prefix = dataset_media_prefix(dataset)
    if storage_is_local():
        return Path(default_storage.path(prefix))
    for name in names:
        local_copy(prefix + name)
    return Path(settings.VAR_DIR) / "cache" / prefix




def model_pixels(image: Image) -> np.ndarray:
    """A stored image as the model sees it (``ml_backend.preprocessing.model_view``, the
    rule training applies too), decoded by the same code as every upload."""
    with default_storage.open(image.file.name, "rb") as stored:
        pixels = decode_image(stored.read(), image.file.name, max_pixels=settings.MAX_IMAGE_PIXELS).pixels
    return model_view(pixels, image.photometric_interpretation, image.bit_depth)
