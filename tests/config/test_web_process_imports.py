"""The web process never imports torch (docs/architecture.md, "Boundaries")."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROBE = (
    "import sys, django; django.setup(); import config.wsgi; "
    "from django.urls import get_resolver; from django.urls.resolvers import URLResolver\n"
    "def walk(patterns):\n"
    "    for p in patterns:\n"
    "        if isinstance(p, URLResolver): walk(p.url_patterns)\n"
    "walk(get_resolver().url_patterns)\n"
    "print(sorted(m for m in ('torch', 'torchvision', 'modAL', 'detectron2') if m in sys.modules))"
)


def test_loading_every_view_imports_no_ml_framework():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings"}
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
