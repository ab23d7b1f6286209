"""gunicorn's control socket lives in the deployment's VAR_DIR (issue 16, item 15)."""

from __future__ import annotations

import runpy
from pathlib import Path

CONF = Path(__file__).resolve().parents[2] / "platform" / "gunicorn.conf.py"


def test_each_deployment_has_its_own_control_socket(tmp_path, monkeypatch):
    sockets = []
    for name in ("one", "two"):
        monkeypatch.setenv("VAR_DIR", str(tmp_path / name))
        sockets.append(runpy.run_path(str(CONF))["control_socket"])
    assert sockets == [str(tmp_path / "one" / "gunicorn.ctl"), str(tmp_path / "two" / "gunicorn.ctl")]
    assert (tmp_path / "one").is_dir()
