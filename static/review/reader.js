// The reading page: worklist navigation, box editing (Annotorious on OpenSeadragon),
// window/level, autosave through the outbox, conflicts, undo/redo and shortcuts.
// Data from the server is only ever written with textContent.
/* global AnnotoriousOSD */
import { Outbox } from "./outbox.js";
import { XrayViewer, fetchPixels, prefetchPixels } from "./viewer.js";

const config = JSON.parse(document.getElementById("review-config").textContent);
const $ = (id) => document.getElementById(id);
const API = "/api/review";
const FINISHED = new Set(["labeled", "negative", "skipped"]);
const HEARTBEAT_MS = 60_000;
const COLORS = { model: "#ffb020", human: "#39d98a" };

let current = null;          // the open image's payload
let boxes = new Map();       // localId -> {localId, id, version, category, x, y, w, h, source, score, deleted}
let category = null;         // class for new boxes
let undoStack = [];
let redoStack = [];
let outbox = null;
let applying = false;        // true while the page itself changes Annotorious

const viewer = new XrayViewer($("viewer"), { onWindowChange: showWindow });
const anno = AnnotoriousOSD.createOSDAnnotator(viewer.osd, {
  drawingEnabled: false, drawingMode: "drag", autoSave: true, userSelectAction: "EDIT",
});
anno.setDrawingTool("rectangle");
anno.setStyle((a, state) => {
  const box = boxes.get(a.id);
  const color = COLORS[box?.source || "human"];
  return { stroke: color, strokeWidth: state?.selected ? 3 : 2, fill: color, fillOpacity: state?.selected ? 0.18 : 0.06 };
});
window.review = { viewer, anno, boxes: () => boxes, outbox: () => outbox, current: () => current, ahead: () => ahead };

// --- helpers ----------------------------------------------------------------------------

function csrf() {
  const m = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return m ? decodeURIComponent(m[1]) : "";
}

async function call(method, url, body) {
  const response = await fetch(url, {
    method, credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRFToken": csrf() },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: response.status, data: await response.json().catch(() => ({})) };
}

function toast(message, kind = "info") {
  const el = $("toast");
  el.textContent = message;
  el.dataset.kind = kind;
  el.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { el.hidden = true; }, 5000);
}

function setSaveState(name, detail) {
  const el = $("save-state");
  el.dataset.state = name;
  el.textContent = {
    saving: `Saving… (${detail} pending)`, saved: "All changes saved", offline: "Offline: changes kept, retrying",
    expired: "Session expired: sign in again, your changes are kept", conflict: "Conflict: choose below",
  }[name] || name;
  $("login-link").hidden = name !== "expired";
  $("login-link").href = `/accounts/login/?next=${encodeURIComponent(location.pathname + location.search)}`;
}

const categoryName = (cocoId) => current.categories.find((c) => c.coco_id === cocoId)?.name ?? `class ${cocoId}`;
const snapshot = (b) => ({ category: b.category, x: b.x, y: b.y, w: b.w, h: b.h, deleted: !!b.deleted });
const geometry = (b) => ({ x: b.x, y: b.y, w: b.w, h: b.h });

function clampToImage(g) {
  const W = current.image.width, H = current.image.height;
  const x0 = Math.min(Math.max(g.x, 0), W), y0 = Math.min(Math.max(g.y, 0), H);
  const x1 = Math.min(Math.max(g.x + g.w, 0), W), y1 = Math.min(Math.max(g.y + g.h, 0), H);
  return { x: x0, y: y0, w: x1 - x0, h: y1 - y0 };
}

function toAnnotation(b) {
  return {
    id: b.localId, bodies: [],
    target: { annotation: b.localId, selector: { type: "RECTANGLE", geometry: {
      x: b.x, y: b.y, w: b.w, h: b.h, bounds: { minX: b.x, minY: b.y, maxX: b.x + b.w, maxY: b.y + b.h },
    } } },
  };
}

function withoutEvents(fn) {
  applying = true;
  try { fn(); } finally { applying = false; }
}

function persistState() {
  outbox?.save({ boxes: [...boxes.values()] });
}

// --- drawing: state -> Annotorious, labels and side panel ---------------------------------

function redrawBox(b) {
  withoutEvents(() => {
    if (b.deleted) {
      if (anno.getAnnotationById(b.localId)) anno.removeAnnotation(b.localId);
    } else if (anno.getAnnotationById(b.localId)) {
      anno.updateAnnotation(toAnnotation(b));
    } else {
      anno.addAnnotation(toAnnotation(b));
    }
  });
  refresh();
}

function refresh() {
  placeLabels();
  renderPanel();
}

function placeLabels() {
  const layer = $("labels");
  layer.replaceChildren();
  if (!current) return;
  for (const b of boxes.values()) {
    if (b.deleted) continue;
    const p = viewer.imageToScreen(b.x, b.y);
    const label = document.createElement("span");
    label.className = `box-label ${b.source}`;
    label.textContent = b.source === "model" ? `${categoryName(b.category)} ${b.score.toFixed(2)}` : categoryName(b.category);
    label.style.transform = `translate(${Math.round(p.x)}px, ${Math.round(p.y) - 18}px)`;
    layer.append(label);
  }
}

function renderPanel() {
  const list = $("box-list");
  list.replaceChildren();
  const shown = [...boxes.values()].filter((b) => !b.deleted);
  for (const b of shown) {
    const row = document.createElement("li");
    row.className = `${b.source}${b.localId === selectedId() ? " selected" : ""}`;
    row.dataset.localId = b.localId;
    const name = document.createElement("span");
    name.textContent = categoryName(b.category);
    const info = document.createElement("span");
    info.className = "muted";
    info.textContent = b.source === "model" ? `proposal ${b.score.toFixed(2)}` : "confirmed";
    row.append(name, info);
    row.addEventListener("click", () => select(b.localId));
    list.append(row);
  }
  $("box-count").textContent = `${shown.length} box(es), ${shown.filter((b) => b.source === "model").length} proposal(s)`;
  const chosen = boxes.get(selectedId());
  $("class-select").value = String(chosen ? chosen.category : category);
}

/** The box the reader has selected, as Annotorious shows it. Actions read it from there
 * at the moment of the key press: a copy kept from "selectionChanged" events could lag
 * behind (a D right after a click once left the box undeleted in the browser tests). */
function selectedId() {
  return anno.getSelected()[0]?.id ?? null;
}

function select(localId) {
  withoutEvents(() => (localId ? anno.setSelected(localId) : anno.cancelSelected()));
  renderPanel();
}

viewer.osd.addHandler("update-viewport", placeLabels);

// --- edits -> outbox ----------------------------------------------------------------------

function record(localId, before, after) {
  undoStack.push({ localId, before, after });
  redoStack = [];
}

function queue(op) {
  outbox.push({ imageId: current.image.id, ...op }, { boxes: [...boxes.values()] });
}

function createBox(localId, g, cls, { remember = true } = {}) {
  const b = { localId, id: null, version: null, category: cls, ...clampToImage(g), source: "human", score: null, deleted: false };
  boxes.set(localId, b);
  queue({ kind: "create", localId, payload: { category: b.category, ...geometry(b) } });
  if (remember) record(localId, { deleted: true }, snapshot(b));
  redrawBox(b);
  return b;
}

function changeBox(localId, changes, { remember = true } = {}) {
  const b = boxes.get(localId);
  if (!b || b.deleted) return;
  const before = snapshot(b);
  Object.assign(b, changes);
  Object.assign(b, clampToImage(b));
  b.source = "human";
  queue({ kind: "update", localId, payload: { category: b.category, ...geometry(b) } });
  if (remember) record(localId, before, snapshot(b));
  redrawBox(b);
}

function deleteBox(localId, { remember = true } = {}) {
  const b = boxes.get(localId);
  if (!b || b.deleted) return;
  const before = snapshot(b);
  b.deleted = true;
  queue({ kind: "delete", localId });
  if (remember) record(localId, before, snapshot(b));
  redrawBox(b);
}

function restoreBox(localId, target) {
  // a deleted box comes back as a new box on the server
  const b = boxes.get(localId);
  Object.assign(b, { ...target, deleted: false, id: null, version: null, source: "human" });
  queue({ kind: "create", localId, payload: { category: b.category, ...geometry(b) } });
  redrawBox(b);
}

function applySnapshot(localId, target) {
  const b = boxes.get(localId);
  if (target.deleted) deleteBox(localId, { remember: false });
  else if (b.deleted) restoreBox(localId, target);
  else changeBox(localId, { category: target.category, ...geometry(target) }, { remember: false });
}

function undo() {
  const step = undoStack.pop();
  if (!step) return toast("Nothing to undo");
  applySnapshot(step.localId, step.before);
  redoStack.push(step);
}

function redo() {
  const step = redoStack.pop();
  if (!step) return toast("Nothing to redo");
  applySnapshot(step.localId, step.after);
  undoStack.push(step);
}

function acceptSelected() {
  const b = boxes.get(selectedId());
  if (!b || b.deleted || b.source !== "model") return toast("Select a proposal to accept");
  b.source = "human";
  queue({ kind: "accept", localId: b.localId });
  redrawBox(b);
}

function acceptAll() {
  const threshold = Number($("accept-threshold").value);
  let n = 0;
  for (const b of boxes.values()) {
    if (!b.deleted && b.source === "model" && b.score >= threshold) { b.source = "human"; n++; redrawBox(b); }
  }
  queue({ kind: "acceptAll", localId: null, payload: { threshold } });
  toast(`Accepted ${n} proposal(s) scoring ≥ ${threshold}`);
}

// Drag pans the image; in draw mode (E, or while Shift is held) drag draws a box.
let drawMode = false;
function setDrawMode(on) {
  drawMode = on && config.canWrite;
  anno.setDrawingEnabled(drawMode);
  $("draw-mode").setAttribute("aria-pressed", String(drawMode));
  $("draw-mode").textContent = drawMode ? "Drawing boxes (E)" : "Draw boxes (E)";
}

function setClass(cocoId) {
  if (!current.categories.some((c) => c.coco_id === cocoId)) return;
  const chosen = boxes.get(selectedId());
  if (chosen && !chosen.deleted) changeBox(chosen.localId, { category: cocoId });
  else { category = cocoId; renderPanel(); }
}

anno.on("createAnnotation", (a) => {
  if (applying) return;
  const g = a.target.selector.geometry;
  createBox(a.id, g, category);
  select(a.id);
});
anno.on("updateAnnotation", (a) => {
  const b = boxes.get(a.id);
  const g = a.target.selector.geometry;
  if (applying || !b || ["x", "y", "w", "h"].every((k) => Math.abs(b[k] - g[k]) < 1e-6)) return;
  changeBox(a.id, { x: g.x, y: g.y, w: g.w, h: g.h });
});
anno.on("deleteAnnotation", (a) => { if (!applying) deleteBox(a.id); });
anno.on("selectionChanged", () => renderPanel());

// --- outbox <-> server --------------------------------------------------------------------

function requestFor(op) {
  const b = boxes.get(op.localId);
  switch (op.kind) {
    case "create": return { method: "POST", url: `${API}/images/${op.imageId}/annotations/`, body: op.payload };
    case "update": return { method: "PATCH", url: `${API}/annotations/${b.id}/`, body: { version: b.version, ...op.payload } };
    case "delete": return { method: "DELETE", url: `${API}/annotations/${b.id}/?version=${b.version}` };
    case "accept": return { method: "POST", url: `${API}/annotations/${b.id}/accept/`, body: { version: b.version } };
    case "acceptAll": return { method: "POST", url: `${API}/images/${op.imageId}/accept-all/`, body: op.payload };
    default: throw new Error(`unknown operation ${op.kind}`);
  }
}

function applied(op, data) {
  const acknowledged = op.kind === "acceptAll" ? data.accepted : [data];
  for (const state of acknowledged) {
    const b = op.localId ? boxes.get(op.localId) : [...boxes.values()].find((x) => x.id === state.id);
    if (!b) continue;
    Object.assign(b, { id: state.id, version: state.version, source: b.deleted ? b.source : state.source });
  }
  persistState();
  refresh();
}

function refused(op, status, data) {
  toast(`Not saved (${status}): ${data.detail || "refused"}`, "error");
  if (op.kind === "create") {
    const b = boxes.get(op.localId);
    b.deleted = true;
    outbox.dropOpsFor(op.localId);
    redrawBox(b);
  }
}

function describe(state) {
  if (!state || state.is_deleted) return "deleted";
  const g = [state.x, state.y, state.w, state.h].map((v) => Math.round(v)).join(", ");
  return `${categoryName(state.category)} at [${g}] (${state.source === "model" ? "proposal" : "confirmed"})`;
}

function conflict(op, data) {
  setSaveState("conflict");
  const b = boxes.get(op.localId);
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
      outbox.dropOpsFor(op.localId);
    }
    outbox.retryWithVersion(op);
  };
  $("conflict-theirs-btn").onclick = () => {
    dialog.hidden = true;
    outbox.dropOpsFor(op.localId);
    Object.assign(b, {
      version: theirs.version, category: theirs.category, x: theirs.x, y: theirs.y, w: theirs.w, h: theirs.h,
      source: theirs.source, deleted: theirs.is_deleted,
    });
    persistState();
    redrawBox(b);
    outbox.resume();
  };
}

const outboxHandlers = { request: requestFor, applied, refused, conflict, state: setSaveState };

// --- images -------------------------------------------------------------------------------

function showWindow(w) {
  $("wl-center").value = Math.round(w.center);
  $("wl-width").value = Math.round(w.width);
  $("wl-readout").textContent = `L ${Math.round(w.center)} / W ${Math.round(w.width)}`;
}

function showInfo(payload) {
  const { image, rank } = payload;
  $("image-name").textContent = image.file_name;
  $("image-status").textContent = image.status;
  $("image-meta").textContent = `${image.width}×${image.height}, ${image.bit_depth}-bit ${image.photometric}`;
  $("rank-info").textContent = rank.position === null
    ? "not in the current ranking (id order)"
    : `#${rank.position + 1} by ${rank.strategy}, score ${rank.score.toFixed(3)}`;
  $("probability").textContent = payload.fracture_probability === null ? "–" : payload.fracture_probability.toFixed(2);
  $("accept-threshold").value = payload.display_threshold;
}

function fillClasses(categories) {
  const select = $("class-select");
  select.replaceChildren();
  categories.forEach((c, i) => {
    const option = document.createElement("option");
    option.value = String(c.coco_id);
    option.textContent = i < 9 ? `${i + 1} · ${c.name}` : c.name;
    select.append(option);
  });
}

/** Put an image (``pixels``: its pixels or their download) and its boxes (the draft's
 * when one is kept, else ``shown`` or the payload's) on screen; resolves on the frame
 * after they are painted, with the number of unsaved operations restored from the draft.
 * Saving waits for ``settle``. */
async function paint(payload, pixels, shown = null) {
  performance.mark("review:image-payload");
  current = payload;
  outbox = new Outbox(`review-draft:${config.user}:${payload.image.id}`, outboxHandlers);
  outbox.paused = true;
  const restored = outbox.draft?.state?.boxes;
  boxes = shown ?? new Map((restored || payload.boxes.map((s) => ({
    localId: `b${s.id}`, id: s.id, version: s.version, category: s.category, x: s.x, y: s.y, w: s.w, h: s.h,
    source: s.source, score: s.score, deleted: false,
  }))).map((b) => [b.localId, b]));
  undoStack = [];
  redoStack = [];
  category = category ?? payload.categories[0]?.coco_id ?? null;
  fillClasses(payload.categories);
  showInfo(payload);
  const values = await pixels;
  performance.mark("review:pixels");
  await viewer.show(values, payload.image);
  withoutEvents(() => {
    anno.cancelSelected();
    anno.setAnnotations([...boxes.values()].filter((b) => !b.deleted).map(toAnnotation));
  });
  refresh();
  await new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)));
  performance.mark("review:painted");
  return restored ? outbox.pending : 0;
}

/** The server has handed ``payload`` (with its reading session) to the reader: save,
 * and prefetch the image "next" will most likely hand out after it. */
function settle(payload, restored) {
  current = payload;
  showInfo(payload);
  history.replaceState(null, "", `?image=${payload.image.id}&filter=${encodeURIComponent(config.filter)}`);
  document.body.dataset.imageId = String(payload.image.id);
  performance.mark("review:settled");
  prefetch(payload.upcoming);
  if (restored) toast(`Restored ${restored} unsaved change(s); saving now`);
  setSaveState(outbox.pending ? "saving" : "saved", outbox.pending);
  outbox.resume();
}

// The image "next" will most likely hand out, once its payload and pixels have arrived.
let ahead = null;

function prefetch(upcoming) {
  const entry = upcoming ? { id: upcoming.id } : null;
  ahead = entry;
  if (!entry) return;
  Promise.all([call("GET", upcoming.url), prefetchPixels(upcoming.pixels_url)]).then(([{ status, data }, pixels]) => {
    if (status === 200) Object.assign(entry, { payload: data, pixels });
  }).catch(() => {});
}

const sameBoxes = (a, b) => JSON.stringify(a.boxes) === JSON.stringify(b.boxes)
  && JSON.stringify(a.categories) === JSON.stringify(b.categories);

/** Ask the server for an image and show it. With ``guess`` (the prefetched image "next"
 * will most likely hand out) the page paints it while the request runs; when the server
 * hands out another image, or other boxes, that one is painted instead, and when it hands
 * out none, the image the reader left comes back. */
async function navigate(url, body, emptyMessage, guess = null) {
  if (outbox && !(await outbox.flush())) return toast("Unsaved changes are waiting: resolve them first", "error");
  performance.mark("review:navigate");
  const left = { payload: current, pixels: viewer.pixels, boxes };
  const answer = call("POST", url, body);
  const restored = guess && (await paint(guess.payload, guess.pixels));
  const { status, data } = await answer;
  if (status !== 200 || !data.image) {
    if (guess) {
      settle(left.payload, await paint(left.payload, left.pixels, left.boxes));
      ahead = null; // the guess was wrong: do not paint it again
    }
    return status === 200 ? toast(data.detail || emptyMessage) : toast(data.detail || `HTTP ${status}`, "error");
  }
  if (guess?.payload.image.id === data.image.id && sameBoxes(guess.payload, data)) return settle(data, restored);
  settle(data, await paint(data, fetchPixels(data.image.pixels_url)));
}

const next = () => navigate(`${API}/datasets/${config.dataset}/next/`, { filter: config.filter, after: current?.image.id },
  "Nothing left", ahead?.payload ? ahead : null);
const previous = () => navigate(`${API}/datasets/${config.dataset}/previous/`, { after: current?.image.id }, "No earlier image");
const open = (id) => navigate(`${API}/images/${id}/open/`, {}, "");
Object.assign(window.review, { next, previous });

async function finish(outcome, reason = "") {
  if (!current) return;
  if (!(await outbox.flush())) return toast("Unsaved changes are waiting: resolve them first", "error");
  const { status, data } = await call("POST", `${API}/images/${current.image.id}/finish/`, { outcome, reason });
  if (status !== 200) return toast(data.detail || `HTTP ${status}`, "error");
  outbox.discard();
  toast(`Saved as ${data.status} (${Math.round(data.seconds)} s)`);
  await next();
}

function nextOrFinish() {
  if (FINISHED.has(current?.image.status)) return next();
  return finish("labeled");
}

// --- controls -----------------------------------------------------------------------------

function openSkip() {
  $("skip-dialog").hidden = false;
  $("skip-reason").focus();
}

$("skip-form").addEventListener("submit", (e) => {
  e.preventDefault();
  $("skip-dialog").hidden = true;
  finish("skipped", $("skip-reason").value);
  $("skip-reason").value = "";
});
$("skip-cancel").addEventListener("click", () => { $("skip-dialog").hidden = true; });
$("class-select").addEventListener("change", (e) => setClass(Number(e.target.value)));
$("wl-apply").addEventListener("click", () => viewer.render({ center: Number($("wl-center").value), width: Number($("wl-width").value) }));
for (const button of document.querySelectorAll("[data-preset]")) {
  button.addEventListener("click", () => viewer.preset(button.dataset.preset));
}
const actions = {
  next: nextOrFinish, previous, undo, redo, acceptAll, acceptSelected, skip: openSkip,
  negative: () => finish("negative"), delete: () => { const id = selectedId(); if (id) deleteBox(id); },
  help: () => { $("help").hidden = !$("help").hidden; },
  draw: () => setDrawMode(!drawMode),
  reload: () => { outbox?.discard(); open(current.image.id); },
};
for (const button of document.querySelectorAll("[data-action]")) {
  button.addEventListener("click", () => actions[button.dataset.action]());
}

const KEYS = {
  n: actions.next, p: actions.previous, a: actions.acceptAll, Enter: actions.acceptSelected,
  e: actions.draw, d: actions.delete, Delete: actions.delete, f: actions.negative, s: actions.skip,
  r: () => viewer.preset("reset"), t: () => viewer.preset("auto"), b: () => viewer.preset("bone"),
  g: () => viewer.preset("soft"), z: actions.undo, Z: actions.redo, y: actions.redo, "?": actions.help,
  Escape: () => { $("help").hidden = true; $("skip-dialog").hidden = true; select(null); },
};

document.addEventListener("keydown", (e) => {
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  if (e.target.closest("input, textarea, select")) { if (e.key === "Escape") e.target.blur(); return; }
  if (!current) return;
  if (/^[1-9]$/.test(e.key)) {
    const c = current.categories[Number(e.key) - 1];
    if (c) setClass(c.coco_id);
  } else if (KEYS[e.key]) {
    KEYS[e.key]();
  } else {
    return;
  }
  e.preventDefault();
  e.stopPropagation();
}, true);

document.addEventListener("keydown", (e) => { if (e.key === "Shift" && config.canWrite) anno.setDrawingEnabled(true); });
document.addEventListener("keyup", (e) => { if (e.key === "Shift") anno.setDrawingEnabled(drawMode); });

setInterval(() => { if (current?.session) call("POST", `${API}/images/${current.image.id}/heartbeat/`); }, HEARTBEAT_MS);

const wanted = new URLSearchParams(location.search).get("image");
(wanted ? open(wanted) : next()).catch((err) => toast(String(err), "error"));
