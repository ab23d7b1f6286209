"""Set up Django for a benchmark script run from the repository root.

Without DATABASE_URL the benchmark gets its own SQLite file under var/benchmarks, so it
never touches the demo's data.
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def setup_django() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("SECRET_KEY", "benchmark-only-secret-key-not-for-production-0123456789abcdef")
    if not os.environ.get("DATABASE_URL"):
        os.environ.setdefault("VAR_DIR", str(ROOT / "var" / "benchmarks"))
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
