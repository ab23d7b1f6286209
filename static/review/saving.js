// The outbox's side of the page: which request each queued edit is, what the server's
// answer changes, and the conflict view when another reader changed the box first.
import { redrawBox } from "./boxes.js";
import { refresh, setSaveState, toast } from "./panel.js";
import { Outbox } from "./outbox.js";
import { $, API, categoryName, config, geometry, state } from "./state.js";

function requestFor(op) {
  const b = state.boxes.get(op.localId);
  switch (op.kind) {
    case "create": return { method: "POST", url: `${API}/images/${op.imageId}/annotations/`, body: op.payload };
    case "update": return { method: "PATCH", url: `${API}/annotations/${b.id}/`, body: { version: b.version, ...op.payload } };
    case "delete": return { method: "DELETE", url: `${API}/annotations/${b.id}/?version=${b.version}` };
    case "accept": return { method: "POST", url: `${API}/annotations/${b.id}/accept/`, body: { version: b.version } };
    case "acceptAll": return { method: "POST", url: `${API}/images/${op.imageId}/accept-all/`, body: op.payload };
    default: throw new Error(`unknown operation ${op.kind}`);
  }
}

function persistState() {
  state.outbox?.save({ boxes: [...state.boxes.values()] });
}

function applied(op, data) {
  const acknowledged = op.kind === "acceptAll" ? data.accepted : [data];
  for (const answer of acknowledged) {
    const b = op.localId ? state.boxes.get(op.localId) : [...state.boxes.values()].find((x) => x.id === answer.id);
    if (!b) continue;
    Object.assign(b, { id: answer.id, version: answer.version, source: b.deleted ? b.source : answer.source });
  }
  persistState();
  refresh();
}

function refused(op, status, data) {
  toast(`Not saved (${status}): ${data.detail || "refused"}`, "error");
  if (op.kind === "create") {
    const b = state.boxes.get(op.localId);
    b.deleted = true;
    state.outbox.dropOpsFor(op.localId);
    redrawBox(b);
  }
}

function describe(box) {
  if (!box || box.is_deleted) return "deleted";
  const g = [box.x, box.y, box.w, box.h].map((v) => Math.round(v)).join(", ");
  return `${categoryName(box.category)} at [${g}] (${box.source === "model" ? "proposal" : "confirmed"})`;
}

function conflict(op, data) {
  setSaveState("conflict");
  const b = state.boxes.get(op.localId);
  const theirs = data.current;
  $("conflict-theirs").textContent = `${describe(theirs)}${theirs.author ? `, by ${theirs.author}` : ""} — version ${theirs.version}`;
  $("conflict-mine").textContent = op.kind === "delete" ? "delete this box" : describe({ ...b, is_deleted: false, source: "human" });
  const dialog = $("conflict");
  dialog.hidden = false;
  $("conflict-keep").onclick = () => {
    dialog.hidden = true;
    b.version = theirs.version;
    if (theirs.is_deleted && op.kind !== "delete") {
      Object.assign(op, { kind: "create", payload: { category: b.category, ...geometry(b) } });
      b.id = null;
    } else if (theirs.is_deleted) {
      state.outbox.dropOpsFor(op.localId);
    }
    state.outbox.retryWithVersion(op);
  };
  $("conflict-theirs-btn").onclick = () => {
    dialog.hidden = true;
    state.outbox.dropOpsFor(op.localId);
    Object.assign(b, {
      version: theirs.version, category: theirs.category, x: theirs.x, y: theirs.y, w: theirs.w, h: theirs.h,
      source: theirs.source, deleted: theirs.is_deleted,
    });
    persistState();
    redrawBox(b);
    state.outbox.resume();
  };
}

/** The outbox of image ``imageId``, paused until the server has handed the image out;
 * its draft (edits not acknowledged yet) is restored from localStorage. */
export function openOutbox(imageId) {
  const outbox = new Outbox(`review-draft:${config.user}:${imageId}`,
    { request: requestFor, applied, refused, conflict, state: setSaveState });
  outbox.paused = true;
  return outbox;
}
