"""The locust scenario of ``benchmarks/load.py``: radiologists correcting proposals.

Each simulated reader (its own DRF token) loops: take the next worklist image, fetch it
with its proposals, move one box (PATCH with the version it saw and an Idempotency-Key),
sometimes add or delete a box, and sometimes *collide on purpose*: re-send another
reader's already-superseded version of a box, which must be refused with 409.

Read from the environment (set by ``load.py``): ``LOAD_DATASET`` (dataset id),
``LOAD_TOKENS`` (a JSON file with one token per reader), ``LOAD_SAVES`` (where every
acknowledged save is appended as a JSON line: annotation id, new version, kind) and
``LOAD_COLLISIONS`` (every intended collision and the status it got).
"""

from __future__ import annotations

import itertools
import json
import os
import random
import uuid
from collections import deque
from pathlib import Path

from locust import HttpUser, between, events, task

DATASET = os.environ.get("LOAD_DATASET", "0")
# Pause between a reader's actions, in seconds (benchmarks/load.py --think)
THINK_S = tuple(float(v) for v in os.environ.get("LOAD_THINK_S", "0.2,0.8").split(","))
TOKENS = json.loads(Path(os.environ["LOAD_TOKENS"]).read_text()) if "LOAD_TOKENS" in os.environ else []
_token_ids = itertools.count()
# (annotation id, version) pairs other readers have already saved past: re-sending one
# is a guaranteed stale write.
_superseded: deque[tuple[int, int]] = deque(maxlen=200)
# Boxes readers added: only these are deleted, so a collision never meets a deleted box.
_added: set[int] = set()
_logs: dict[str, object] = {}


def _log(name: str, record: dict) -> None:
    if name not in _logs:
        _logs[name] = open(os.environ[name], "a", buffering=1)
    _logs[name].write(json.dumps(record) + "\n")


@events.quitting.add_listener
def _close_logs(**_kwargs) -> None:
    for handle in _logs.values():
        handle.close()


class Radiologist(HttpUser):
    wait_time = between(*THINK_S)

    def on_start(self) -> None:
        self.client.headers["Authorization"] = f"Token {TOKENS[next(_token_ids) % len(TOKENS)]}"
        self.current: int | None = None

    def _save(self, method: str, path: str, name: str, kind: str, **kwargs) -> dict | None:
        """A box write; an acknowledged one is logged (id, new version, kind)."""
        headers = {"Idempotency-Key": str(uuid.uuid4())}
        with self.client.request(method, path, name=name, headers=headers, catch_response=True,
                                 **kwargs) as response:
            if response.status_code == 409:
                response.success()  # someone else's edit won: expected under load
                return None
            if not response.ok:
                response.failure(f"{response.status_code}: {response.text[:200]}")
                return None
            body = response.json()
            _log("LOAD_SAVES", {"id": body["id"], "version": body["version"], "kind": kind})
            return body

    @task
    def read_one_image(self) -> None:
        answer = self.client.post(f"/api/review/datasets/{DATASET}/next/", json={"after": self.current},
                                  name="next").json()
        if answer.get("image") is None:  # end of the worklist: start again from the top
            self.current = None
            return
        self.current = answer["image"]["id"]
        view = self.client.get(f"/api/review/images/{self.current}/", name="image").json()
        image, shown = view["image"], view["boxes"]
        if shown:
            self.move(image, random.choice([b for b in shown if b["id"] not in _added] or shown))
        roll, added = random.random(), [b for b in shown if b["id"] in _added]
        if roll < 0.25:
            self.add(image)
        elif roll < 0.4 and added:
            box = added[0]
            self._save("DELETE", f"/api/review/annotations/{box['id']}/?version={box['version']}",
                       "box DELETE", "delete")
        if random.random() < 0.15 and _superseded:
            self.collide()

    def move(self, image: dict, box: dict) -> None:
        x = max(0.0, min(box["x"] + random.uniform(-4, 4), image["width"] - box["w"]))
        y = max(0.0, min(box["y"] + random.uniform(-4, 4), image["height"] - box["h"]))
        saved = self._save("PATCH", f"/api/review/annotations/{box['id']}/", "box PATCH", "update",
                           json={"version": box["version"], "x": round(x, 2), "y": round(y, 2)})
        if saved is not None and box["id"] not in _added:
            _superseded.append((box["id"], box["version"]))

    def add(self, image: dict) -> None:
        w, h = random.uniform(12, 40), random.uniform(12, 40)
        saved = self._save("POST", f"/api/review/images/{image['id']}/annotations/", "box POST",
                           "create", json={"category": 1, "x": round(random.uniform(0, image["width"] - w), 2),
                         "y": round(random.uniform(0, image["height"] - h), 2),
                         "w": round(w, 2), "h": round(h, 2)})
        if saved is not None:
            _added.add(saved["id"])

    def collide(self) -> None:
        """Re-send a version another reader has already saved past: must answer 409."""
        box_id, stale = random.choice(_superseded)
        with self.client.patch(f"/api/review/annotations/{box_id}/", name="box PATCH (stale)",
                               json={"version": stale, "x": 1.0}, catch_response=True,
                               headers={"Idempotency-Key": str(uuid.uuid4())}) as response:
            _log("LOAD_COLLISIONS", {"id": box_id, "version": stale, "status": response.status_code})
            if response.status_code == 409:
                response.success()
            else:
                response.failure(f"stale save answered {response.status_code}")
