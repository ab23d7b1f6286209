"""gunicorn settings for the web process (``gunicorn -c platform/gunicorn.conf.py``).

The web process never imports torch, so sync workers stay small; requests that need a
model go to Celery. Tune with WEB_CONCURRENCY, PORT, BIND and GUNICORN_TIMEOUT.
"""

import multiprocessing
import os
from pathlib import Path

bind = os.environ.get("BIND", f"127.0.0.1:{os.environ.get('PORT', '8000')}")
workers = int(os.environ.get("WEB_CONCURRENCY", min(4, multiprocessing.cpu_count() * 2)))
threads = int(os.environ.get("WEB_THREADS", "2"))
worker_class = "gthread"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = 30
accesslog = "-"
errorlog = "-"
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
# uploads of large DICOM files: stream through, never hold many in memory
limit_request_field_size = 16384
# gunicorn's control socket (gunicornc) in this deployment's VAR_DIR, not the user's
# shared default (~/.gunicorn/gunicorn.ctl), which a second instance on the host would take.
var_dir = Path(os.environ.get("VAR_DIR") or Path(__file__).resolve().parent.parent / "var").expanduser()
var_dir.mkdir(parents=True, exist_ok=True)
control_socket = os.environ.get("GUNICORN_CONTROL_SOCKET", str(var_dir / "gunicorn.ctl"))
