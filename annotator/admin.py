"""Django's admin entry point: each area registers its own models."""

from annotator.audit import admin as audit_admin  # noqa: F401
from annotator.datasets import admin as datasets_admin  # noqa: F401
from annotator.labelstudio import admin as labelstudio_admin  # noqa: F401
from annotator.learning import admin as learning_admin  # noqa: F401
