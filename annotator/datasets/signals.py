"""What the dataset area announces to the others.

``images_added`` (kwargs ``dataset_id``, ``image_ids``) is sent after the transaction that
stored new images commits, whatever way they came in (upload, web form, quick read,
COCO import). The learning area listens and queues their proposals; the dataset area
never imports the learning area.
"""

from django.dispatch import Signal

images_added = Signal()
