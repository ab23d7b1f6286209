// Box edits and their undo: every edit changes the page's state, is queued in the
// outbox for the server, is remembered for undo/redo and is drawn.
import { refresh, renderPanel, select, toast } from "./panel.js";
import { anno, drawAnnotation, selectedId } from "./stage.js";
import { $, config, geometry, snapshot, state } from "./state.js";

function clampToImage(g) {
  const W = state.current.image.width, H = state.current.image.height;
  const x0 = Math.min(Math.max(g.x, 0), W), y0 = Math.min(Math.max(g.y, 0), H);
  const x1 = Math.min(Math.max(g.x + g.w, 0), W), y1 = Math.min(Math.max(g.y + g.h, 0), H);
  return { x: x0, y: y0, w: x1 - x0, h: y1 - y0 };
}

export function redrawBox(b) {
  drawAnnotation(b);
  refresh();
}

function record(localId, before, after) {
  state.undoStack.push({ localId, before, after });
  state.redoStack = [];
}

function queue(op) {
  state.outbox.push({ imageId: state.current.image.id, ...op }, { boxes: [...state.boxes.values()] });
}

function createBox(localId, g, cls) {
  const b = { localId, id: null, version: null, category: cls, ...clampToImage(g), source: "human", score: null, deleted: false };
  state.boxes.set(localId, b);
  queue({ kind: "create", localId, payload: { category: b.category, ...geometry(b) } });
  record(localId, { deleted: true }, snapshot(b));
  redrawBox(b);
}

function changeBox(localId, changes, { remember = true } = {}) {
  const b = state.boxes.get(localId);
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
  const b = state.boxes.get(localId);
  if (!b || b.deleted) return;
  const before = snapshot(b);
  b.deleted = true;
  queue({ kind: "delete", localId });
  if (remember) record(localId, before, snapshot(b));
  redrawBox(b);
}

function restoreBox(localId, target) {
  // a deleted box comes back as a new box on the server
  const b = state.boxes.get(localId);
  Object.assign(b, { ...target, deleted: false, id: null, version: null, source: "human" });
  queue({ kind: "create", localId, payload: { category: b.category, ...geometry(b) } });
  redrawBox(b);
}

function applySnapshot(localId, target) {
  const b = state.boxes.get(localId);
  if (target.deleted) deleteBox(localId, { remember: false });
  else if (b.deleted) restoreBox(localId, target);
  else changeBox(localId, { category: target.category, ...geometry(target) }, { remember: false });
}

export function undo() {
  const step = state.undoStack.pop();
  if (!step) return toast("Nothing to undo");
  applySnapshot(step.localId, step.before);
  state.redoStack.push(step);
}

export function redo() {
  const step = state.redoStack.pop();
  if (!step) return toast("Nothing to redo");
  applySnapshot(step.localId, step.after);
  state.undoStack.push(step);
}

export function acceptSelected() {
  const b = state.boxes.get(selectedId());
  if (!b || b.deleted || b.source !== "model") return toast("Select a proposal to accept");
  b.source = "human";
  queue({ kind: "accept", localId: b.localId });
  redrawBox(b);
}

export function acceptAll() {
  const threshold = Number($("accept-threshold").value);
  let n = 0;
  for (const b of state.boxes.values()) {
    if (!b.deleted && b.source === "model" && b.score >= threshold) { b.source = "human"; n++; redrawBox(b); }
  }
  queue({ kind: "acceptAll", localId: null, payload: { threshold } });
  toast(`Accepted ${n} proposal(s) scoring ≥ ${threshold}`);
}

export function deleteSelected() {
  const id = selectedId();
  if (id) deleteBox(id);
}

/** The class of the selected box, or else of the next box drawn. */
export function setClass(cocoId) {
  if (!state.current.categories.some((c) => c.coco_id === cocoId)) return;
  const chosen = state.boxes.get(selectedId());
  if (chosen && !chosen.deleted) changeBox(chosen.localId, { category: cocoId });
  else { state.category = cocoId; renderPanel(); }
}

/** Drag pans the image; in draw mode (E, or while Shift is held) drag draws a box. */
export function setDrawMode(on) {
  if (!config.canWrite) return;
  state.drawMode = on;
  anno.setDrawingEnabled(state.drawMode);
  $("draw-mode").setAttribute("aria-pressed", String(state.drawMode));
  $("draw-mode").textContent = state.drawMode ? "Drawing boxes (E)" : "Draw boxes (E)";
}

/** The reader's edits in Annotorious (never the page's own changes: ``state.applying``). */
anno.on("createAnnotation", (a) => {
  if (state.applying) return;
  createBox(a.id, a.target.selector.geometry, state.category);
  select(a.id);
});
anno.on("updateAnnotation", (a) => {
  const b = state.boxes.get(a.id);
  const g = a.target.selector.geometry;
  if (state.applying || !b || ["x", "y", "w", "h"].every((k) => Math.abs(b[k] - g[k]) < 1e-6)) return;
  changeBox(a.id, { x: g.x, y: g.y, w: g.w, h: g.h });
});
anno.on("deleteAnnotation", (a) => { if (!state.applying) deleteBox(a.id); });
anno.on("selectionChanged", () => renderPanel());
