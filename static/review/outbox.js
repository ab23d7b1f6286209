// Every edit is an operation in a draft kept in localStorage until the server has
// acknowledged it, so a reload, a dropped network or an expired session loses nothing.
// Operations are sent one at a time, in order, each with its own Idempotency-Key: a
// retried request is answered from the server's receipt, never applied twice.

import { request } from "./http.js";

const RETRY_MS = [500, 1000, 2000, 4000, 8000];

export class Outbox {
  /** handlers: request(op) -> {method, url, body}; applied(op, body); conflict(op, body);
   * refused(op, status, body); state(name, detail) with name online|offline|expired|saving|saved. */
  constructor(storageKey, handlers) {
    this.storageKey = storageKey;
    this.handlers = handlers;
    this.draft = JSON.parse(localStorage.getItem(storageKey) || "null");
    this.busy = false;
    this.paused = false;
    this.failures = 0;
    window.addEventListener("online", () => this.kick());
  }

  get ops() { return this.draft ? this.draft.ops : []; }
  get pending() { return this.ops.length; }

  /** The draft's extra state (box versions, ids, shapes) saved with the operations. */
  save(state) {
    if (!this.draft) this.draft = { ops: [] };
    this.draft.state = state;
    this.persist();
  }

  persist() {
    if (this.draft && this.draft.ops.length === 0 && !this.draft.keep) {
      localStorage.removeItem(this.storageKey);
    } else {
      localStorage.setItem(this.storageKey, JSON.stringify(this.draft));
    }
  }

  discard() {
    this.draft = null;
    localStorage.removeItem(this.storageKey);
  }

  /** Queue an operation; an update of a box whose previous change is still queued (not
   * in flight) is merged into it. */
  push(op, state) {
    if (!this.draft) this.draft = { ops: [] };
    const last = this.draft.ops[this.draft.ops.length - 1];
    const mergeable = last && !last.sent && last.localId === op.localId && op.kind === "update"
      && (last.kind === "update" || last.kind === "create");
    if (mergeable) {
      Object.assign(last.payload, op.payload);
    } else {
      this.draft.ops.push({ ...op, key: crypto.randomUUID(), sent: false });
    }
    this.draft.state = state;
    this.persist();
    this.kick();
  }

  dropOpsFor(localId) {
    this.draft.ops = this.draft.ops.filter((op) => op.localId !== localId);
    this.persist();
  }

  resume() { this.paused = false; this.kick(); }

  kick() {
    if (!this.busy && !this.paused) this.drain();
  }

  async drain() {
    this.busy = true;
    try {
      while (this.ops.length && !this.paused) {
        const op = this.ops[0];
        const outcome = await this.send(op);
        if (outcome === "retry") {
          const wait = RETRY_MS[Math.min(this.failures++, RETRY_MS.length - 1)];
          setTimeout(() => this.kick(), wait);
          return;
        }
        if (outcome === "stop") return;
        this.failures = 0;
        this.draft.ops.shift();
        this.persist();
      }
      if (!this.ops.length) this.handlers.state("saved");
    } finally {
      this.busy = false;
    }
  }

  async send(op) {
    const { method, url, body } = this.handlers.request(op);
    op.sent = true;
    this.persist();
    this.handlers.state("saving", this.ops.length);
    let response;
    try {
      response = await request(method, url, body, { "Idempotency-Key": op.key });
    } catch {
      this.handlers.state("offline");
      return "retry";
    }
    const { data } = response;
    if (response.ok) {
      this.handlers.applied(op, data);
      return "done";
    }
    if (response.status === 401 || (response.status === 403 && /credentials|CSRF/i.test(data.detail || ""))) {
      this.paused = true;
      this.handlers.state("expired");
      return "stop";
    }
    if (response.status === 409 && data.current) {
      this.paused = true;
      this.handlers.conflict(op, data);
      return "stop";
    }
    if (response.status >= 500) {
      this.handlers.state("offline", `server error ${response.status}`);
      return "retry";
    }
    this.handlers.refused(op, response.status, data);
    return "done";
  }

  /** Resolve when every queued operation is acknowledged (or the queue is paused). */
  async flush() {
    while (this.ops.length && !this.paused) {
      this.kick();
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    return this.ops.length === 0;
  }

  /** Re-send a conflicted operation on top of the server's version (new key: new body). */
  retryWithVersion(op) {
    op.key = crypto.randomUUID();
    op.sent = false;
    this.persist();
    this.resume();
  }
}
