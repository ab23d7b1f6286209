// The dashboard's two charts, as SVG: a loss sparkline per run and the metrics of every
// version.
const SVG = "http://www.w3.org/2000/svg";

function svgNode(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

/** A run's loss history (the ``loss`` of each point, else the sum of its loss terms). */
export function lossSparkline(losses) {
  const svg = svgNode("svg", { viewBox: "0 0 120 30", class: "spark" });
  const values = losses.map((point) => point.loss ?? Object.values(point).slice(1).reduce((a, b) => a + b, 0));
  if (values.length > 1) {
    const max = Math.max(...values), min = Math.min(...values);
    const points = values.map((v, i) => `${(i / (values.length - 1)) * 120},${28 - ((v - min) / (max - min || 1)) * 26}`);
    svg.append(svgNode("polyline", { points: points.join(" ") }));
  }
  return svg;
}

const SERIES = [["map50", "#4fa3ff"], ["froc_2", "#5fd38d"], ["image_f1", "#ffb84f"]];

/** mAP50, FROC@2 and image F1 across ``versions`` (oldest first), a marker per version. */
export function drawMetricsChart(svg, versions) {
  const n = versions.length;
  const nodes = [];
  SERIES.forEach(([key, colour], index) => {
    const points = versions.filter((v) => v[key] !== null && v[key] !== undefined)
      .map((v) => [40 + (n > 1 ? (versions.indexOf(v) / (n - 1)) * 580 : 290), 180 - v[key] * 160]);
    nodes.push(svgNode("polyline", { points: points.map((p) => p.join(",")).join(" "), stroke: colour, fill: "none" }));
    for (const [cx, cy] of points) nodes.push(svgNode("circle", { cx, cy, r: 3, fill: colour }));
    nodes.push(svgNode("text", { x: 40 + index * 120, y: 14, fill: colour }, key));
  });
  for (const tick of [0, 0.5, 1]) {
    nodes.push(svgNode("text", { x: 4, y: 184 - tick * 160, fill: "#8d99a6" }, tick.toFixed(1)));
  }
  svg.replaceChildren(...nodes);
}
