"""Every box write leaves an append-only revision."""

import pytest

from annotator.datasets.services.annotations import InvalidBox, NewBox, create_boxes
from annotator.models import AnnotationRevision, RevisionAction
from tests.factories import CategoryFactory, ImageFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_created_boxes_have_a_first_revision_with_who_and_what(media_root):
    category = CategoryFactory(coco_id=2)
    image = ImageFactory(dataset=category.dataset)
    author = UserFactory()
    (box,) = create_boxes([NewBox(image, category, 3, 4, 10, 11)], actor=author, reason="drawn")
    revision = AnnotationRevision.objects.get(annotation=box)
    assert (revision.version, revision.action, revision.actor, revision.reason) == (1, RevisionAction.CREATED, author, "drawn")
    assert revision.before is None
    assert revision.after == {"category": 2, "x": 3, "y": 4, "w": 10, "h": 11, "source": "human",
                              "score": None, "serving_version": "", "is_deleted": False}


def test_revisions_cannot_be_changed_or_deleted(media_root):
    category = CategoryFactory()
    (box,) = create_boxes([NewBox(ImageFactory(dataset=category.dataset), category, 0, 0, 5, 5)])
    revision = box.revisions.get()
    revision.reason = "rewritten history"
    with pytest.raises(TypeError, match="append-only"):
        revision.save()
    with pytest.raises(TypeError, match="append-only"):
        revision.delete()
    with pytest.raises(TypeError, match="append-only"):
        AnnotationRevision.objects.filter(pk=revision.pk).update(reason="x")
    with pytest.raises(TypeError, match="append-only"):
        AnnotationRevision.objects.all().delete()
    assert AnnotationRevision.objects.get().reason == ""


@pytest.mark.parametrize("box", [(60, 40, 10, 10), (1, 1, 0, 3), (float("nan"), 1, 2, 2), (-3, 0, 4, 4)])
def test_invalid_boxes_are_refused_and_nothing_is_stored(media_root, box):
    category = CategoryFactory()
    image = ImageFactory(dataset=category.dataset)  # 64 x 48
    with pytest.raises(InvalidBox):
        create_boxes([NewBox(image, category, 1, 1, 5, 5), NewBox(image, category, *box)])
    assert not image.annotations.exists() and not AnnotationRevision.objects.exists()


def test_a_box_edit_never_leaves_a_finished_status_contradicting_the_boxes(media_root):
    """Drawn on an image marked "no fracture", or the last box of a labeled image
    deleted: the image goes back in review, to be finished again."""
    from annotator.datasets.services.annotations import add_box, delete_box
    from annotator.models import Image, ReviewStatus
    from tests.factories import CategoryFactory, ImageFactory, UserFactory

    reader = UserFactory()
    image = ImageFactory(status=ReviewStatus.NEGATIVE)
    CategoryFactory(dataset=image.dataset, coco_id=1)
    box = add_box(image, 1, 2, 2, 10, 10, reader)
    assert Image.objects.get(pk=image.pk).status == ReviewStatus.IN_REVIEW

    Image.objects.filter(pk=image.pk).update(status=ReviewStatus.LABELED)
    delete_box(box.pk, box.version, reader)
    assert Image.objects.get(pk=image.pk).status == ReviewStatus.IN_REVIEW
