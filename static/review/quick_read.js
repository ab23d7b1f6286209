// Polls a quick read until the worker has answered, then draws its boxes over the preview.
import { getJson } from "./http.js";

const POLL_MS = 1000;
const $ = (id) => document.getElementById(id);

function render(read) {
  const state = { queued: "Analysing…", done: "Done.", failed: "The analysis failed: " }[read.state] ?? read.state;
  $("qr-state").textContent = read.state === "failed" ? state + read.error : state;
  $("qr-model").textContent = read.serving_version ? `(model ${read.serving_version})` : "";
  if (read.state !== "done") return;
  $("qr-probability").textContent = read.fracture_probability.toFixed(2);
  const figure = $("qr-figure");
  figure.querySelectorAll(".qr-box").forEach((el) => el.remove());
  for (const box of read.boxes) {
    const [x, y, w, h] = box.bbox;
    const el = document.createElement("div");
    el.className = "qr-box";
    Object.assign(el.style, {
      left: `${(100 * x) / read.width}%`, top: `${(100 * y) / read.height}%`,
      width: `${(100 * w) / read.width}%`, height: `${(100 * h) / read.height}%`,
    });
    const label = document.createElement("span");
    label.textContent = `${box.category_name} ${box.score.toFixed(2)}`;
    el.append(label);
    figure.append(el);
  }
}

async function poll(read) {
  render(read);
  if (read.state !== "queued") return;
  await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  const answer = await getJson(`/api/review/quick-reads/${read.id}/`);
  if (answer.ok) poll(answer.data);
}

poll(JSON.parse($("quick-read").textContent));
