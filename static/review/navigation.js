// Moving through the worklist: open, next (painting the prefetched guess at once),
// previous, finish, and prefetching the image "next" will most likely hand out.
import { getJson, postJson, refusal } from "./http.js";
import { fillClasses, refresh, setSaveState, showInfo, toast } from "./panel.js";
import { openOutbox } from "./saving.js";
import { drawAnnotations, viewer } from "./stage.js";
import { API, config, state } from "./state.js";
import { fetchPixels, prefetchPixels } from "./viewer.js";

const FINISHED = new Set(["labeled", "negative", "skipped"]);
const HEARTBEAT_MS = 60_000;

function boxesOf(payload) {
  return payload.boxes.map((s) => ({
    localId: `b${s.id}`, id: s.id, version: s.version, category: s.category, x: s.x, y: s.y, w: s.w, h: s.h,
    source: s.source, score: s.score, deleted: false,
  }));
}

const nextFrame = () => new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)));

/** Put an image (``pixels``: its pixels or their download) and its boxes (the draft's
 * when one is kept, else ``shown`` or the payload's) on screen; resolves on the frame
 * after they are painted, with the number of unsaved operations restored from the draft.
 * Saving waits for ``settle``. */
async function paint(payload, pixels, shown = null) {
  performance.mark("review:image-payload");
  state.current = payload;
  state.outbox = openOutbox(payload.image.id);
  const restored = state.outbox.draft?.state?.boxes;
  state.boxes = shown ?? new Map((restored || boxesOf(payload)).map((b) => [b.localId, b]));
  state.undoStack = [];
  state.redoStack = [];
  state.category = state.category ?? payload.categories[0]?.coco_id ?? null;
  fillClasses(payload.categories);
  showInfo(payload);
  const values = await pixels;
  performance.mark("review:pixels");
  await viewer.show(values, payload.image);
  drawAnnotations([...state.boxes.values()]);
  refresh();
  await nextFrame();
  performance.mark("review:painted");
  return restored ? state.outbox.pending : 0;
}

/** The server has handed ``payload`` (with its reading session) to the reader: save,
 * and prefetch the image "next" will most likely hand out after it. */
function settle(payload, restored) {
  state.current = payload;
  showInfo(payload);
  history.replaceState(null, "", `?image=${payload.image.id}&filter=${encodeURIComponent(config.filter)}`);
  document.body.dataset.imageId = String(payload.image.id);
  performance.mark("review:settled");
  prefetch(payload.upcoming);
  if (restored) toast(`Restored ${restored} unsaved change(s); saving now`);
  setSaveState(state.outbox.pending ? "saving" : "saved", state.outbox.pending);
  state.outbox.resume();
}

/** Download the image "next" will most likely hand out: its payload and pixels. */
function prefetch(upcoming) {
  const entry = upcoming ? { id: upcoming.id } : null;
  state.ahead = entry;
  if (!entry) return;
  Promise.all([getJson(upcoming.url), prefetchPixels(upcoming.pixels_url)]).then(([answer, pixels]) => {
    if (answer.ok) Object.assign(entry, { payload: answer.data, pixels });
  }).catch(() => {});
}

const sameBoxes = (a, b) => JSON.stringify(a.boxes) === JSON.stringify(b.boxes)
  && JSON.stringify(a.categories) === JSON.stringify(b.categories);

const unsaved = () => toast("Unsaved changes are waiting: resolve them first", "error");

/** Ask the server for an image and show it. With ``guess`` (the prefetched image "next"
 * will most likely hand out) the page paints it while the request runs; when the server
 * hands out another image, or other boxes, that one is painted instead, and when it hands
 * out none, the image the reader left comes back. */
async function navigate(url, body, emptyMessage, guess = null) {
  if (state.outbox && !(await state.outbox.flush())) return unsaved();
  performance.mark("review:navigate");
  const left = { payload: state.current, pixels: viewer.pixels, boxes: state.boxes };
  const pending = postJson(url, body);
  const restored = guess && (await paint(guess.payload, guess.pixels));
  const answer = await pending;
  const { data } = answer;
  if (!answer.ok || !data.image) {
    if (guess) {
      settle(left.payload, await paint(left.payload, left.pixels, left.boxes));
      state.ahead = null; // the guess was wrong: do not paint it again
    }
    return answer.ok ? toast(data.detail || emptyMessage) : toast(refusal(answer), "error");
  }
  if (guess?.payload.image.id === data.image.id && sameBoxes(guess.payload, data)) return settle(data, restored);
  settle(data, await paint(data, fetchPixels(data.image.pixels_url)));
}

export const next = () => navigate(`${API}/datasets/${config.dataset}/next/`,
  { filter: config.filter, after: state.current?.image.id }, "Nothing left", state.ahead?.payload ? state.ahead : null);
export const previous = () => navigate(`${API}/datasets/${config.dataset}/previous/`,
  { after: state.current?.image.id }, "No earlier image");
export const open = (id) => navigate(`${API}/images/${id}/open/`, {}, "");

export async function finish(outcome, reason = "") {
  if (!state.current) return;
  if (!(await state.outbox.flush())) return unsaved();
  const answer = await postJson(`${API}/images/${state.current.image.id}/finish/`, { outcome, reason });
  if (!answer.ok) return toast(refusal(answer), "error");
  state.outbox.discard();
  toast(`Saved as ${answer.data.status} (${Math.round(answer.data.seconds)} s)`);
  await next();
}

/** *Done, next*: finish as labeled, or only move on from an image already finished,
 * unless its boxes now contradict how it was finished (a box drawn on an image marked
 * "no fracture" makes it labeled). */
export function nextOrFinish() {
  const status = state.current?.image.status;
  const confirmed = [...state.boxes.values()].some((box) => box.source === "human");
  if (FINISHED.has(status) && !(status === "negative" && confirmed)) return next();
  return finish("labeled");
}

/** *No fracture* deletes the image's proposals: on an image with boxes it asks first. */
export function finishNegative() {
  const count = state.boxes.size;
  const question = `This image has ${count} box${count === 1 ? "" : "es"}. Mark it "no fracture" and delete ${count === 1 ? "it" : "them"}?`;
  if (count && !window.confirm(question)) return;
  return finish("negative");
}

/** Discard the draft and show the image as the server holds it. */
export function reload() {
  state.outbox?.discard();
  return open(state.current.image.id);
}

/** Keep the lease while the reader works. */
export function keepLease() {
  setInterval(() => {
    // offline, the next save or heartbeat renews the lease
    if (state.current?.session) postJson(`${API}/images/${state.current.image.id}/heartbeat/`).catch(() => {});
  }, HEARTBEAT_MS);
}
