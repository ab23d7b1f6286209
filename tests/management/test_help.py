"""`manage.py help` lists the platform's commands before SECRET_KEY is set."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_help_works_without_a_secret_key():
    env = {key: value for key, value in os.environ.items() if key not in ("SECRET_KEY", "SECRET_KEY_FILE", "DEBUG")}
    result = subprocess.run([sys.executable, "manage.py", "help"], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "import_coco" in result.stdout and "fetch_weights" in result.stdout


def test_other_commands_still_need_the_secret_key():
    env = {key: value for key, value in os.environ.items() if key not in ("SECRET_KEY", "SECRET_KEY_FILE", "DEBUG")}
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode != 0 and "SECRET_KEY" in result.stderr
