// Training dashboard: polls the dashboard API and redraws runs, versions and charts.
// Every value from the server is written with textContent (never innerHTML).
const root = document.getElementById("dashboard");
const csrf = document.querySelector("input[name=csrfmiddlewaretoken]").value;
const isAdmin = root.dataset.admin === "1";
const SVG = "http://www.w3.org/2000/svg";

function el(tag, text, attrs = {}) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  return node;
}

function fmt(value) {
  return value === null || value === undefined ? "–" : Number(value).toFixed(3);
}

async function post(url, body = {}) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
    body: JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  const message = document.getElementById("message");
  message.textContent = response.ok ? "Done." : data.detail || `Error ${response.status}`;
  message.className = response.ok ? "messages success" : "messages error";
  refresh();
}

function lossSparkline(losses) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 120 30");
  svg.setAttribute("class", "spark");
  const values = losses.map((point) => point.loss ?? Object.values(point).slice(1).reduce((a, b) => a + b, 0));
  if (values.length > 1) {
    const max = Math.max(...values), min = Math.min(...values);
    const points = values.map((v, i) => `${(i / (values.length - 1)) * 120},${28 - ((v - min) / (max - min || 1)) * 26}`);
    const line = document.createElementNS(SVG, "polyline");
    line.setAttribute("points", points.join(" "));
    svg.appendChild(line);
  }
  return svg;
}

function drawRuns(runs) {
  const body = document.querySelector("#runs tbody");
  body.replaceChildren(...runs.map((run) => {
    const row = el("tr", null, { "data-state": run.state });
    row.append(el("td", run.id), el("td", run.state + (run.cancel_requested ? " (cancelling)" : ""), { title: run.error || "" }), el("td", run.trigger));
    const progress = el("td");
    const bar = el("progress", null, { max: String(run.total_iterations || 1), value: String(run.iteration) });
    progress.append(bar, el("span", ` ${run.iteration}/${run.total_iterations}`));
    const loss = el("td");
    loss.append(lossSparkline(run.losses));
    row.append(progress, loss, el("td", `${run.base_version || "scratch"} → ${run.produced_version || "…"}`), el("td", run.worker_host));
    const actions = el("td");
    if (isAdmin && run.active) {
      const cancel = el("button", "Cancel", { type: "button", class: "secondary" });
      cancel.addEventListener("click", () => post(`/api/training-runs/${run.id}/cancel/`));
      actions.append(cancel);
    }
    if (run.error) actions.append(el("details", null)).lastChild.append(el("summary", "error"), el("pre", run.error));
    row.append(actions);
    return row;
  }));
}

function drawVersions(versions) {
  const body = document.querySelector("#versions tbody");
  body.replaceChildren(...versions.slice().reverse().map((version) => {
    const row = el("tr", null, { "data-status": version.status });
    row.append(el("td", version.name), el("td", version.status), el("td", fmt(version.map50)), el("td", fmt(version.map)),
      el("td", fmt(version.froc_2)), el("td", fmt(version.image_f1)), el("td", version.gate_reason, { class: "muted" }));
    const actions = el("td");
    if (isAdmin && version.status !== "production") {
      const promote = el("button", "Promote", { type: "button" });
      promote.addEventListener("click", () => post(`/api/model-versions/${version.id}/promote/`, { reason: "promoted from the dashboard" }));
      actions.append(promote);
    }
    row.append(actions);
    return row;
  }));
  drawMetricsChart(versions);
}

function drawMetricsChart(versions) {
  const svg = document.getElementById("metrics-chart");
  svg.replaceChildren();
  const series = [["map50", "#4fa3ff"], ["froc_2", "#5fd38d"], ["image_f1", "#ffb84f"]];
  const n = versions.length;
  series.forEach(([key, colour], index) => {
    const points = versions.map((v, i) => v[key] === null ? null : [40 + (n > 1 ? (i / (n - 1)) * 580 : 290), 180 - v[key] * 160]).filter(Boolean);
    const line = document.createElementNS(SVG, "polyline");
    line.setAttribute("points", points.map((p) => p.join(",")).join(" "));
    line.setAttribute("stroke", colour);
    line.setAttribute("fill", "none");
    svg.appendChild(line);
    for (const [x, y] of points) {  // a marker per version: one version is a single point
      const dot = document.createElementNS(SVG, "circle");
      dot.setAttribute("cx", String(x));
      dot.setAttribute("cy", String(y));
      dot.setAttribute("r", "3");
      dot.setAttribute("fill", colour);
      svg.appendChild(dot);
    }
    const label = document.createElementNS(SVG, "text");
    label.setAttribute("x", String(40 + index * 120));
    label.setAttribute("y", "14");
    label.setAttribute("fill", colour);
    label.textContent = key;
    svg.appendChild(label);
  });
  for (const tick of [0, 0.5, 1]) {
    const text = document.createElementNS(SVG, "text");
    text.setAttribute("x", "4");
    text.setAttribute("y", String(184 - tick * 160));
    text.setAttribute("fill", "#8d99a6");
    text.textContent = tick.toFixed(1);
    svg.appendChild(text);
  }
}

async function refresh() {
  const response = await fetch(root.dataset.api, { headers: { Accept: "application/json" } });
  if (!response.ok) return;
  const state = await response.json();
  document.getElementById("production").textContent = state.production ? ` ${state.production.name}` : " none yet";
  document.getElementById("serving").textContent = state.serving_version ? ` (${state.serving_version})` : "";
  document.getElementById("queue").textContent = ` ${state.review_queue}`;
  document.getElementById("labeled").textContent = ` ${state.labeled}`;
  document.getElementById("since").textContent = ` ${state.labeled_since_last_run}` +
    (state.policy.retrain_after_new_labels ? ` / ${state.policy.retrain_after_new_labels}` : "");
  drawRuns(state.runs);
  drawVersions(state.versions);
  document.getElementById("schedules").replaceChildren(...(state.schedules.length ? state.schedules.map((s) => el("li", `${s.name}: ${s.schedule}${s.enabled ? "" : " (disabled)"}`)) : [el("li", "No schedule.")]));
}

if (isAdmin) {
  document.getElementById("train-now").addEventListener("click", () => post(root.dataset.train));
  document.getElementById("rollback").addEventListener("click", () => post(root.dataset.rollback, { reason: "rolled back from the dashboard" }));
}
refresh();
setInterval(refresh, 2000);
