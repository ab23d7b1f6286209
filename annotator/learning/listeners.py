"""How the learning area reacts to the others' announcements (connected in
``AnnotatorConfig.ready``)."""

from __future__ import annotations

from django.db.models.signals import post_save

from annotator.audit.models import AuditAction
from annotator.audit.services import record_event
from annotator.datasets.signals import images_added
from annotator.learning.models import Promotion, PromotionKind
from annotator.learning.services.predictions import request_proposals


def propose_for_new_images(sender, dataset_id: int, image_ids: list[int], **kwargs) -> None:
    """New images get proposals from the production version, if there is one."""
    request_proposals(dataset_id, image_ids)


def promotion_saved(sender, instance: Promotion, created: bool, **kwargs) -> None:
    """Every change of the production version is audited (promotion or rollback)."""
    if not created or kwargs.get("raw"):
        return
    action = (
        AuditAction.VERSION_ROLLED_BACK if instance.kind == PromotionKind.ROLLBACK else AuditAction.VERSION_PROMOTED
    )
    record_event(
        None, instance.actor, action, dataset=instance.dataset, obj=instance.model_version,
        details={
            "serving_version": instance.serving_version,
            "kind": instance.kind,
            "previous_version": instance.previous_version_id,
            "reason": instance.reason,
        },
    )


def connect() -> None:
    images_added.connect(propose_for_new_images, dispatch_uid="learning-propose-new-images")
    post_save.connect(promotion_saved, sender=Promotion, dispatch_uid="audit-promotion")
