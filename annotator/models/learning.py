"""Migration 0002 names ``annotator.models.learning.weights_storage_path`` as an upload
path; migrations are never edited, so that path stays importable here."""

from annotator.learning.models import weights_storage_path

__all__ = ["weights_storage_path"]
