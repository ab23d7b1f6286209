"""Audit records of box changes; connected in ``AnnotatorConfig.ready``.

``AnnotationRevision`` rows saved one by one (the review page, Label Studio, the API) are
recorded as ``annotation_changed`` with before/after. Revisions written in bulk (COCO
import, model proposals) send no ``post_save``; the revision table itself is their
record, and callers that want them audited call ``record_revision``.
"""

from __future__ import annotations

from django.db.models.signals import post_save

from annotator.audit.services import record_revision
from annotator.datasets.models import AnnotationRevision


def revision_saved(sender, instance: AnnotationRevision, created: bool, **kwargs) -> None:
    if created and not kwargs.get("raw"):
        record_revision(instance)


def connect() -> None:
    post_save.connect(revision_saved, sender=AnnotationRevision, dispatch_uid="audit-revision")
