// The viewer and its box layer: OpenSeadragon (viewer.js) with Annotorious on top, and
// the page's boxes turned into Annotorious annotations in image pixel coordinates.
/* global AnnotoriousOSD */
import { $, state } from "./state.js";
import { XrayViewer } from "./viewer.js";

const COLORS = { model: "#ffb020", human: "#39d98a" };

export const viewer = new XrayViewer($("viewer"));
export const anno = AnnotoriousOSD.createOSDAnnotator(viewer.osd, {
  drawingEnabled: false, drawingMode: "drag", autoSave: true, userSelectAction: "EDIT",
});
anno.setDrawingTool("rectangle");
anno.setStyle((a, style) => {
  const color = COLORS[state.boxes.get(a.id)?.source || "human"];
  return { stroke: color, strokeWidth: style?.selected ? 3 : 2, fill: color, fillOpacity: style?.selected ? 0.18 : 0.06 };
});

function toAnnotation(b) {
  return {
    id: b.localId, bodies: [],
    target: { annotation: b.localId, selector: { type: "RECTANGLE", geometry: {
      x: b.x, y: b.y, w: b.w, h: b.h, bounds: { minX: b.x, minY: b.y, maxX: b.x + b.w, maxY: b.y + b.h },
    } } },
  };
}

/** Change Annotorious without treating its events as the reader's edits. */
function withoutEvents(fn) {
  state.applying = true;
  try { fn(); } finally { state.applying = false; }
}

/** Show box ``b`` as it now is (removed when deleted). */
export function drawAnnotation(b) {
  withoutEvents(() => {
    const shown = anno.getAnnotationById(b.localId);
    if (b.deleted) {
      if (shown) anno.removeAnnotation(b.localId);
    } else if (shown) {
      anno.updateAnnotation(toAnnotation(b));
    } else {
      anno.addAnnotation(toAnnotation(b));
    }
  });
}

/** Replace every annotation with ``boxes`` (the deleted ones left out), none selected. */
export function drawAnnotations(boxes) {
  withoutEvents(() => {
    anno.cancelSelected();
    anno.setAnnotations(boxes.filter((b) => !b.deleted).map(toAnnotation));
  });
}

/** The box the reader has selected, as Annotorious shows it. Actions read it from there
 * at the moment of the key press: a copy kept from "selectionChanged" events could lag
 * behind (a D right after a click once left the box undeleted in the browser tests). */
export function selectedId() {
  return anno.getSelected()[0]?.id ?? null;
}

export function setSelection(localId) {
  withoutEvents(() => (localId ? anno.setSelected(localId) : anno.cancelSelected()));
}
