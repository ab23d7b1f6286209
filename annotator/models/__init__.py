"""The annotator's models, one module per concern:

- ``dataset``: datasets, members, categories, images, boxes and their revisions.
- ``learning``: model versions, predictions, rankings, training runs and policies.
"""

from annotator.models.audit import *  # noqa: F403
from annotator.models.dataset import *  # noqa: F403
from annotator.models.learning import *  # noqa: F403
from annotator.models.review import *  # noqa: F403
