// Training dashboard: polls the dashboard API and redraws runs, versions and charts.
// Every value from the server is written with textContent (never innerHTML).
import { el, enableUnless } from "../review/dom.js";
import { getJson, postJson, refusal } from "../review/http.js";
import { drawMetricsChart, lossSparkline } from "./charts.js";

const root = document.getElementById("dashboard");
const $ = (id) => document.getElementById(id);
const REFRESH_MS = 2000;
const ONLY_ADMINS = "Only admins of this dataset can do this";

function fmt(value) {
  return value === null || value === undefined ? "–" : Number(value).toFixed(3);
}

/** "about 4 min left" for a run's estimate in seconds. */
function timeLeft(seconds) {
  if (seconds < 60) return "under a minute left";
  const minutes = Math.round(seconds / 60);
  return minutes < 60 ? `about ${minutes} min left` : `about ${Math.floor(minutes / 60)} h ${minutes % 60} min left`;
}

function button(label, onClick, className = "") {
  const node = el("button", label, { type: "button", class: className });
  node.addEventListener("click", onClick);
  return node;
}

async function post(url, body = {}) {
  const answer = await postJson(url, body);
  const message = $("message");
  message.textContent = answer.ok ? "Done." : refusal(answer);
  message.className = answer.ok ? "messages success" : "messages error";
  refresh();
}

function stateCell(run) {
  const cell = el("td", run.state + (run.cancel_requested ? " (cancelling)" : ""), { title: run.error || "" });
  if (run.stop_reason) cell.append(el("div", run.stop_reason, { class: "muted stop-reason" }));
  return cell;
}

function progressCell(run) {
  const cell = el("td");
  cell.append(el("progress", null, { max: String(run.total_iterations || 1), value: String(run.iteration) }),
    el("span", ` ${run.iteration}/${run.total_iterations}`));
  if (run.active && run.eta_seconds !== null && run.eta_seconds !== undefined) {
    cell.append(el("div", timeLeft(run.eta_seconds), { class: "muted eta" }));
  }
  return cell;
}

function runActions(run, canAdminister) {
  const cell = el("td");
  if (canAdminister && run.active) {
    cell.append(button("Cancel", () => post(`/api/training-runs/${run.id}/cancel/`), "secondary"));
  }
  if (run.error) {
    const details = el("details");
    details.append(el("summary", "error"), el("pre", run.error));
    cell.append(details);
  }
  return cell;
}

function drawRuns(runs, canAdminister) {
  $("runs").tBodies[0].replaceChildren(...runs.map((run) => {
    const row = el("tr", null, { "data-state": run.state });
    const loss = el("td");
    loss.append(lossSparkline(run.losses));
    row.append(el("td", run.id), stateCell(run), el("td", run.trigger), progressCell(run), loss,
      el("td", `${run.base_version || "scratch"} → ${run.produced_version || "…"}`), el("td", run.worker_host),
      runActions(run, canAdminister));
    return row;
  }));
}

function drawVersions(versions, canAdminister) {
  $("versions").tBodies[0].replaceChildren(...versions.slice().reverse().map((version) => {
    const row = el("tr", null, { "data-status": version.status });
    const start = version.parent ? `from ${version.parent}` : version.init || "random";
    row.append(el("td", version.name), el("td", version.status), el("td", start, { class: "muted" }),
      el("td", fmt(version.map50)), el("td", fmt(version.map)),
      el("td", fmt(version.froc_2)), el("td", fmt(version.image_f1)), el("td", version.gate_reason, { class: "muted" }));
    const actions = el("td");
    if (canAdminister && version.status !== "production") {
      actions.append(button("Promote", () => post(`/api/model-versions/${version.id}/promote/`,
        { reason: "promoted from the dashboard" })));
    }
    row.append(actions);
    return row;
  }));
  drawMetricsChart($("metrics-chart"), versions);
}

/** Train now and Roll back are disabled, saying why, when they cannot act. A rollback
 * re-promotes the version production had before (the server names it: rollback_to). */
function drawActions(state) {
  const admin = state.can_administer ? "" : ONLY_ADMINS;
  enableUnless($("train-now"), admin || (state.runs.some((run) => run.active) ? "A run is already queued or running" : ""));
  const target = state.rollback_to ? "" : "There is no earlier production version to roll back to";
  enableUnless($("rollback"), admin || target);
}

function drawSchedules(schedules) {
  $("schedules").replaceChildren(...(schedules.length
    ? schedules.map((s) => el("li", `${s.name}: ${s.schedule}${s.enabled ? "" : " (disabled)"}`))
    : [el("li", "No schedule.")]));
}

async function refresh() {
  const answer = await getJson(root.dataset.api);
  if (!answer.ok) return;
  const state = answer.data;
  $("production").textContent = state.production ? ` ${state.production.name}` : " none yet";
  $("serving").textContent = state.serving_version ? ` (${state.serving_version})` : "";
  $("queue").textContent = ` ${state.review_queue}`;
  $("labeled").textContent = ` ${state.labeled}`;
  $("since").textContent = ` ${state.labeled_since_last_run}` +
    (state.policy.retrain_after_new_labels ? ` / ${state.policy.retrain_after_new_labels}` : "");
  drawActions(state);
  drawRuns(state.runs, state.can_administer);
  drawVersions(state.versions, state.can_administer);
  drawSchedules(state.schedules);
  root.dataset.refreshed = String(Number(root.dataset.refreshed || 0) + 1);
}

$("train-now").addEventListener("click", () => post(root.dataset.train));
$("rollback").addEventListener("click", () => post(root.dataset.rollback, { reason: "rolled back from the dashboard" }));
refresh();
setInterval(refresh, REFRESH_MS);
