"""Every model of the one ``annotator`` app, imported from the area that owns it.

Django finds an app's models through this module; the models themselves live with their
product area (``annotator/<area>/models.py``), so the single app label keeps the
migrations valid.
"""

from annotator.audit.models import *  # noqa: F403
from annotator.datasets.models import *  # noqa: F403
from annotator.labelstudio.models import *  # noqa: F403
from annotator.learning.models import *  # noqa: F403
from annotator.review.models import *  # noqa: F403
from annotator.web.models import *  # noqa: F403
