// The reading page: wires the controls and keyboard shortcuts to the page's modules and
// opens the first image. The modules, by job: state.js (the one mutable state),
// stage.js (viewer and box layer), panel.js (side panel), boxes.js (edits and undo),
// saving.js (outbox and conflicts), navigation.js (worklist), http.js (requests).
import { acceptAll, acceptSelected, deleteSelected, redo, setClass, setDrawMode, undo } from "./boxes.js";
import { finish, finishNegative, keepLease, next, nextOrFinish, open, previous, reload } from "./navigation.js";
import { placeLabels, select, showWindow, toast } from "./panel.js";
import { anno, viewer } from "./stage.js";
import { $, config, state } from "./state.js";

window.review = {
  viewer, anno, next, previous,
  boxes: () => state.boxes, outbox: () => state.outbox, current: () => state.current, ahead: () => state.ahead,
};

viewer.onWindowChange = showWindow;
viewer.osd.addHandler("update-viewport", placeLabels);

function openSkip() {
  $("skip-dialog").hidden = false;
  $("skip-reason").focus();
}

function closeDialogs() {
  $("help").hidden = true;
  $("skip-dialog").hidden = true;
  select(null);
}

const actions = {
  next: nextOrFinish, previous, undo, redo, acceptAll, acceptSelected, skip: openSkip, reload,
  negative: finishNegative, delete: deleteSelected,
  help: () => { $("help").hidden = !$("help").hidden; },
  draw: () => setDrawMode(!state.drawMode),
  fit: () => viewer.fit(),
};

const KEYS = {
  n: actions.next, p: actions.previous, a: actions.acceptAll, Enter: actions.acceptSelected,
  e: actions.draw, d: actions.delete, Delete: actions.delete, f: actions.negative, s: actions.skip, h: actions.fit,
  r: () => viewer.preset("reset"), t: () => viewer.preset("auto"), b: () => viewer.preset("bone"),
  g: () => viewer.preset("soft"), z: actions.undo, Z: actions.redo, y: actions.redo, "?": actions.help,
  Escape: closeDialogs,
};

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
for (const button of document.querySelectorAll("[data-action]")) {
  button.addEventListener("click", () => actions[button.dataset.action]());
}

document.addEventListener("keydown", (e) => {
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  if (e.target.closest("input, textarea, select")) { if (e.key === "Escape") e.target.blur(); return; }
  if (!state.current) return;
  if (/^[1-9]$/.test(e.key)) {
    const c = state.current.categories[Number(e.key) - 1];
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
document.addEventListener("keyup", (e) => { if (e.key === "Shift") anno.setDrawingEnabled(state.drawMode); });

keepLease();
const wanted = new URLSearchParams(location.search).get("image");
(wanted ? open(wanted) : next()).catch((err) => toast(String(err), "error"));
