"""``python -m ml_backend``: see ``ml_backend.cli``."""

import sys

from ml_backend.cli import main

sys.exit(main())
