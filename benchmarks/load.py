#!/usr/bin/env python
"""The web under load: 20 radiologists correcting proposals at once, then reconciliation.

    .venv/bin/python benchmarks/load.py            # 60 s of load
    .venv/bin/python benchmarks/load.py --quick    # 15 s, fewer images
    .venv/bin/python benchmarks/load.py --think 2 5 --results /tmp/paced   # readers' pace

Needs the local PostgreSQL (user postgres, trust auth) and Redis on 127.0.0.1, nothing
else. The script creates its own database (``fracture_load``), fills it with phantom
images (``ml_backend.phantoms``, 256 px) carrying two model proposals each, 20 radiologist
members with API tokens, starts gunicorn (``platform/gunicorn.conf.py``) on a free port
of 127.0.0.1 and runs locust headless (``benchmarks/locustfile.py``). Afterwards it
checks that every acknowledged save is exactly one ``AnnotationRevision`` (none lost,
none duplicated) and that every intended collision got 409, then drops the database.

Reports throughput, p50/p95/p99 per endpoint, status counts from gunicorn's access log
and the reconciliation; saves benchmarks/results/load[-quick].json.
Targets: save p95 <= 150 ms, zero 5xx, zero lost or duplicated writes. The run exits
with status 1, naming what broke, when a correctness target is missed (a 5xx, a lost or
duplicated write, a collision not answered 409); latency is reported, not enforced.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._django import RESULTS, ROOT, setup_django  # noqa: E402

POSTGRES = "postgresql://postgres@127.0.0.1:5432"
BROKER = "redis://127.0.0.1:6379/14"
IMAGE_SIZE = 256
SAVE_ENDPOINTS = ("box PATCH", "box POST", "box DELETE")
TARGET_SAVE_P95_MS = 150.0
ACCESS_LINE = re.compile(r'"[A-Z]+ /api/\S* HTTP/[\d.]+" (\d{3}) ')  # the scenario's requests only


def recreate_database(name: str, drop_only: bool = False) -> None:
    import psycopg

    with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not drop_only:
            admin.execute(f'CREATE DATABASE "{name}"')


def build(n_images: int, n_readers: int) -> tuple[int, list[str]]:
    """A dataset of ``n_images`` phantoms with two proposals each, and the readers'
    tokens. Boxes are written with the platform's own services."""
    from django.contrib.auth import get_user_model
    from knox.models import AuthToken

    from annotator.datasets.services.annotations import NewBox, create_boxes
    from annotator.datasets.services.ingest import store_image
    from annotator.datasets.services.membership import resolve_category
    from annotator.imaging import encode_png
    from annotator.models import AnnotationSource, Dataset, ImageSource, Membership, Role
    from ml_backend.phantoms import image_rng, render_phantom

    dataset = Dataset.objects.create(name="load")
    category = resolve_category(dataset, "fracture", 1)
    tokens = []
    for index in range(n_readers):
        user = get_user_model().objects.create_user(f"reader{index:02d}")
        Membership.objects.create(dataset=dataset, user=user, role=Role.RADIOLOGIST)
        tokens.append(AuthToken.objects.create(user)[1])
    proposals = []
    for index in range(n_images):
        rng = image_rng(7, index)
        pixels, _ = render_phantom(rng, IMAGE_SIZE, bit_depth=8)
        image = store_image(dataset, encode_png(pixels), f"phantom_{index:04d}.png", source=ImageSource.API).image
        for score in (0.9, 0.7):
            x, y = rng.uniform(0, IMAGE_SIZE - 60, size=2)
            proposals.append(NewBox(image, category, float(x), float(y), 40.0, 30.0,
                                    AnnotationSource.MODEL, score, "load.p1"))
    create_boxes(proposals)
    return dataset.pk, tokens


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_serving(url: str, server: subprocess.Popen, timeout: float = 90) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit("gunicorn exited before serving; see its log")
        try:
            urllib.request.urlopen(f"{url}/healthz", timeout=5)
            return
        except urllib.error.HTTPError:  # 503 (no Celery worker) is still an answer
            return
        except OSError:
            time.sleep(0.5)
    raise SystemExit("gunicorn did not answer in time")


def endpoint_table(stats_csv: Path) -> dict:
    """Locust's per-endpoint figures (ms), with the aggregate."""
    rows = {}
    with stats_csv.open() as handle:
        for row in csv.DictReader(handle):
            rows[f"{row['Type']} {row['Name']}".strip()] = {
                "requests": int(row["Request Count"]), "failures": int(row["Failure Count"]),
                "rps": round(float(row["Requests/s"]), 2),
                **{f"p{q}_ms": float(row[f"{q}%"]) for q in (50, 95, 99)},
                "max_ms": float(row["Max Response Time"]),
            }
    return rows


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def reconcile(saves: list[dict], collisions: list[dict], baseline: int) -> dict:
    """Acknowledged saves vs the revisions the run wrote (ids above ``baseline``)."""
    from annotator.models import AnnotationRevision

    written = Counter(AnnotationRevision.objects.filter(pk__gt=baseline).values_list("annotation_id", "version"))
    acknowledged = Counter((s["id"], s["version"]) for s in saves)
    return {
        "acknowledged_saves": sum(acknowledged.values()),
        "acknowledged_by_kind": dict(Counter(s["kind"] for s in saves)),
        "revisions_written": sum(written.values()),
        "lost": sum(1 for key in acknowledged if key not in written),
        "duplicated_revisions": sum(n - 1 for n in written.values() if n > 1),
        "acknowledged_twice": sum(n - 1 for n in acknowledged.values() if n > 1),
        "unacknowledged_revisions": sum(1 for key in written if key not in acknowledged),
        "intended_collisions": len(collisions),
        "collisions_answered_409": sum(c["status"] == 409 for c in collisions),
        "collision_statuses": dict(Counter(str(c["status"]) for c in collisions)),
    }


def run_load(url: str, dataset: int, tokens: list[str], work: Path, args) -> dict:
    """locust, headless, against ``url``; returns its table and its log files' records."""
    (work / "tokens.json").write_text(json.dumps(tokens))
    env = {**os.environ, "LOAD_DATASET": str(dataset), "LOAD_TOKENS": str(work / "tokens.json"),
           "LOAD_SAVES": str(work / "saves.jsonl"), "LOAD_COLLISIONS": str(work / "collisions.jsonl"),
           "LOAD_THINK_S": f"{args.think[0]},{args.think[1]}"}
    command = [str(Path(sys.executable).with_name("locust")), "-f", str(ROOT / "benchmarks" / "locustfile.py"),
               "--headless", "-u", str(args.users), "-r", str(args.spawn_rate), "-t", f"{args.duration}s",
               "--host", url, "--csv", str(work / "locust"), "--only-summary", "--stop-timeout", "10"]
    with (work / "locust.log").open("w") as log:
        subprocess.run(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, check=False)
    return {"endpoints": endpoint_table(work / "locust_stats.csv"),
            "saves": read_lines(work / "saves.jsonl"), "collisions": read_lines(work / "collisions.jsonl")}


def error_records(log: str, limit: int = 5) -> list[str]:
    """The first ``limit`` ERROR records of the server log, tracebacks included (Django
    logs every 5xx with its traceback), so that a failed run says why. The benchmark's
    own readiness probe (``/healthz`` answers 503 without a worker) is left out."""
    records = re.split(r"\n(?=\d{4}-\d\d-\d\d \d\d:\d\d:\d\d|\d+\.\d+\.\d+\.\d+ - )", log)
    errors = [r for r in records if " ERROR " in r.split("\n", 1)[0] and "/healthz" not in r.split("\n", 1)[0]]
    return errors[:limit]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="15 s of load on fewer images")
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--spawn-rate", type=float, default=5)
    parser.add_argument("--duration", type=int, default=None, help="seconds (60; quick: 15)")
    parser.add_argument("--images", type=int, default=None, help="phantoms (400; quick: 60)")
    parser.add_argument("--think", type=float, nargs=2, default=(0.2, 0.8), metavar=("MIN", "MAX"),
                        help="seconds each reader pauses between actions (default 0.2 0.8: saturating)")
    parser.add_argument("--database", default="fracture_load")
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder of the JSON file")
    args = parser.parse_args()
    args.duration = args.duration or (15 if args.quick else 60)
    args.images = args.images or (60 if args.quick else 400)

    work = Path(tempfile.mkdtemp(prefix="load-benchmark-"))
    recreate_database(args.database)
    os.environ.update({"DATABASE_URL": f"{POSTGRES}/{args.database}", "CELERY_BROKER_URL": BROKER,
                       "SECRET_KEY": "load-benchmark-only-secret-key-not-for-production-0123456789", "MEDIA_ROOT": str(work / "media"),
                       "VAR_DIR": str(work / "var")})
    server = None
    try:
        setup_django()
        from django.db import connections

        from annotator.models import AnnotationRevision

        dataset, tokens = build(args.images, args.users)
        baseline = AnnotationRevision.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
        connections.close_all()
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        access_log = (work / "gunicorn.log").open("w")
        server = subprocess.Popen(
            [str(Path(sys.executable).with_name("gunicorn")), "config.wsgi:application",
             "-c", str(ROOT / "platform" / "gunicorn.conf.py")],
            cwd=ROOT, env={**os.environ, "BIND": f"127.0.0.1:{port}"}, stdout=access_log,
            stderr=subprocess.STDOUT)
        wait_until_serving(url, server)
        started = time.perf_counter()
        load = run_load(url, dataset, tokens, work, args)
        elapsed = time.perf_counter() - started
        server.terminate()
        server.wait(timeout=60)
        access_log.close()
        log = (work / "gunicorn.log").read_text()
        statuses = Counter(ACCESS_LINE.findall(log))
        result = summarise(args, load, statuses, reconcile(load["saves"], load["collisions"], baseline), elapsed)
        result["gunicorn_workers_booted"] = log.count("Booting worker")
        result["server_error_records"] = error_records(log)
        connections.close_all()
    finally:
        if server is not None and server.poll() is None:
            server.kill()
        recreate_database(args.database, drop_only=True)
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / f"load{'-quick' if args.quick else ''}.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    shutil.rmtree(work, ignore_errors=True)
    failures = broken_guarantees(result)
    if failures:
        sys.exit("load benchmark: " + "; ".join(failures))


# Targets that are correctness, not speed: any miss makes the run fail (exit status 1).
GUARANTEES = {
    "zero_5xx": "the server answered 5xx",
    "no_lost_or_duplicated": "acknowledged saves were lost or written twice",
    "every_collision_409": "an intended edit collision was not answered 409",
}


def broken_guarantees(result: dict) -> list[str]:
    """What went wrong that must never go wrong; latency targets are reported only."""
    return [message for target, message in GUARANTEES.items() if not result["targets"][target]]


def summarise(args, load: dict, statuses: Counter, reconciliation: dict, elapsed: float) -> dict:
    endpoints = load["endpoints"]
    saves = {name: row for name, row in endpoints.items() if name.split(" ", 1)[-1] in SAVE_ENDPOINTS}
    server_errors = sum(n for code, n in statuses.items() if code.startswith("5"))
    worst_save_p95 = max((row["p95_ms"] for row in saves.values()), default=None)
    return {
        "benchmark": "load", "mode": "quick" if args.quick else "full",
        "data": "synthetic phantoms (ml_backend.phantoms), 256 px, two model proposals each",
        "machine": f"{os.cpu_count()} cores, CPU only, shared with other work; locust, gunicorn, "
                   "PostgreSQL and Redis all on this machine",
        "load_average_at_end": [round(v, 2) for v in os.getloadavg()],
        "users": args.users, "spawn_rate": args.spawn_rate, "think_s": list(args.think), "duration_s": args.duration,
        "images": args.images, "locust_wall_s": round(elapsed, 1),
        "gunicorn_config": "platform/gunicorn.conf.py (gthread; WEB_CONCURRENCY / WEB_THREADS as set)",
        "throughput_rps": endpoints.get("Aggregated", {}).get("rps"),
        "endpoints": endpoints,
        "http_statuses": dict(sorted(statuses.items())),
        "server_errors_5xx": server_errors,
        "reconciliation": reconciliation,
        "targets": {
            "save_p95_ms": TARGET_SAVE_P95_MS, "worst_save_p95_ms": worst_save_p95,
            "save_p95_met": worst_save_p95 is not None and worst_save_p95 <= TARGET_SAVE_P95_MS,
            "zero_5xx": server_errors == 0,
            "no_lost_or_duplicated": reconciliation["lost"] == 0
            and reconciliation["duplicated_revisions"] == 0 and reconciliation["acknowledged_twice"] == 0,
            "every_collision_409": reconciliation["collisions_answered_409"] == reconciliation["intended_collisions"],
        },
    }


if __name__ == "__main__":
    main()
