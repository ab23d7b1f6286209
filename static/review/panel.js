// The side panel and what is drawn over the image: box labels, the box list, the image's
// facts, the save state, the window readout and messages. Server data only ever goes in
// with textContent.
import { el, enableUnless } from "./dom.js";
import { $, categoryName, config, shownBoxes, state } from "./state.js";
import { selectedId, setSelection, viewer } from "./stage.js";

export function toast(message, kind = "info") {
  const el = $("toast");
  el.textContent = message;
  el.dataset.kind = kind;
  el.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { el.hidden = true; }, 5000);
}

const SAVE_STATES = {
  saving: (pending) => `Saving… (${pending} pending)`, saved: () => "All changes saved",
  offline: () => "Offline: changes kept, retrying", conflict: () => "Conflict: choose below",
  expired: () => "Session expired: sign in again, your changes are kept",
};

export function setSaveState(name, detail) {
  const el = $("save-state");
  el.dataset.state = name;
  el.textContent = SAVE_STATES[name]?.(detail) ?? name;
  $("login-link").hidden = name !== "expired";
  $("login-link").href = `/accounts/login/?next=${encodeURIComponent(location.pathname + location.search)}`;
}

export function showWindow(w) {
  $("wl-center").value = Math.round(w.center);
  $("wl-width").value = Math.round(w.width);
  $("wl-readout").textContent = `L ${Math.round(w.center)} / W ${Math.round(w.width)}`;
}

export function showInfo(payload) {
  const { image, rank } = payload;
  $("image-name").textContent = image.file_name;
  $("image-status").textContent = image.status;
  $("image-meta").textContent = `${image.width}×${image.height}, ${image.bit_depth}-bit ${image.photometric}`;
  $("rank-info").textContent = rank.position === null
    ? "not in the current ranking (id order)"
    : `#${rank.position + 1} by ${rank.strategy}, score ${rank.score.toFixed(3)}`;
  $("probability").textContent = payload.fracture_probability === null ? "–" : payload.fracture_probability.toFixed(2);
  $("model-info").textContent = describeModel(payload.model);
  if ($("accept-threshold")) $("accept-threshold").value = payload.display_threshold;
}

/** Which model read the image and what it learnt from, so a reader can judge its
 * proposals (e.g. a model trained only on synthetic phantoms, shown on a real knee). */
function describeModel(model) {
  if (!model) return "no model has read this image yet";
  const learnt = model.trained_on
    ? `trained on ${model.trained_on.images} images (${model.trained_on.boxes} boxes) of ${model.trained_on.dataset}`
    : "registered from a file";
  return `${model.name}, ${learnt}, started from ${model.init || "random weights"}`;
}

export function fillClasses(categories) {
  $("class-select").replaceChildren(...categories.map((c, i) =>
    el("option", i < 9 ? `${i + 1} · ${c.name}` : c.name, { value: String(c.coco_id) })));
}

export function placeLabels() {
  const layer = $("labels");
  layer.replaceChildren();
  if (!state.current) return;
  for (const b of shownBoxes()) {
    const p = viewer.imageToScreen(b.x, b.y);
    const label = el("span", b.source === "model" ? `${categoryName(b.category)} ${b.score.toFixed(2)}` : categoryName(b.category),
      { class: `box-label ${b.source}` });
    label.style.transform = `translate(${Math.round(p.x)}px, ${Math.round(p.y) - 18}px)`;
    layer.append(label);
  }
}

/** Why the model's opinion shows as a probability but no box: its best box scores
 * below the display threshold (the probability is the highest box score). */
function hiddenProposalsNote(proposals) {
  const { fracture_probability: probability, display_threshold: threshold } = state.current;
  if (proposals.length || probability === null || probability >= threshold) return "";
  return `No box is shown: the model's boxes all score below the display threshold ${threshold.toFixed(2)} ` +
    `(its best is ${probability.toFixed(2)}, the fracture probability).`;
}

function renderBoxList() {
  const shown = shownBoxes();
  const chosen = selectedId();
  $("box-list").replaceChildren(...shown.map((b) => {
    const row = el("li", null, { class: `${b.source}${b.localId === chosen ? " selected" : ""}`, "data-local-id": b.localId });
    row.append(el("span", categoryName(b.category)),
      el("span", b.source === "model" ? `proposal ${b.score.toFixed(2)}` : "confirmed", { class: "muted" }));
    row.addEventListener("click", () => select(b.localId));
    return row;
  }));
  const proposals = shown.filter((b) => b.source === "model");
  $("box-count").textContent = `${shown.length} box(es), ${proposals.length} proposal(s)`;
  const note = hiddenProposalsNote(proposals);
  $("box-note").textContent = note;
  $("box-note").hidden = !note;
  if (!config.canWrite) return;
  enableUnless($("accept"), state.boxes.get(chosen)?.source === "model" ? "" : "Select a proposal to accept it", "Enter");
  enableUnless($("accept-all"), proposals.length ? "" : "No proposal on this image", "A");
}

export function renderPanel() {
  renderBoxList();
  const chosen = state.boxes.get(selectedId());
  $("class-select").value = String(chosen ? chosen.category : state.category);
}

export function refresh() {
  placeLabels();
  renderPanel();
}

export function select(localId) {
  setSelection(localId);
  renderPanel();
}
