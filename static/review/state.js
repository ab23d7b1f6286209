// The reading page's one mutable state, shared by its modules, and the page's settings.
export const config = JSON.parse(document.getElementById("review-config").textContent);
export const $ = (id) => document.getElementById(id);
export const API = "/api/review";

export const state = {
  current: null,     // the open image's payload
  boxes: new Map(),  // localId -> {localId, id, version, category, x, y, w, h, source, score, deleted}
  category: null,    // class for new boxes
  undoStack: [],
  redoStack: [],
  outbox: null,      // the open image's Outbox
  applying: false,   // true while the page itself changes Annotorious
  drawMode: false,   // drag draws boxes (E) instead of panning
  ahead: null,       // the image "next" will most likely hand out: {id, payload?, pixels?}
};

export const categoryName = (cocoId) =>
  state.current.categories.find((c) => c.coco_id === cocoId)?.name ?? `class ${cocoId}`;
export const geometry = (b) => ({ x: b.x, y: b.y, w: b.w, h: b.h });
export const snapshot = (b) => ({ category: b.category, ...geometry(b), deleted: !!b.deleted });
export const shownBoxes = () => [...state.boxes.values()].filter((b) => !b.deleted);
