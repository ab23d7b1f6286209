// Window/level on the full bit depth: stored values -> 8-bit grey through a lookup table
// built for the whole value range of the pixel type, so a W/L change costs one table
// build (<= 65536 entries) and one pass over the pixels.

const OPAQUE = 0xff000000;

/** RGBA words (little-endian canvas layout) for every stored value 0..maxValue. */
export function buildLut(center, width, maxValue, invert) {
  const lut = new Uint32Array(maxValue + 1);
  const low = center - width / 2;
  const scale = 255 / Math.max(width, 1e-6);
  for (let v = 0; v <= maxValue; v++) {
    let g = Math.round((v - low) * scale);
    g = g < 0 ? 0 : g > 255 ? 255 : g;
    if (invert) g = 255 - g;
    lut[v] = OPAQUE | (g << 16) | (g << 8) | g;
  }
  return lut;
}

export function applyLut(pixels, lut, out32) {
  for (let i = 0, n = pixels.length; i < n; i++) out32[i] = lut[pixels[i]];
}

/** Values at the given percentiles (0-100) of the image's anatomy, from a histogram of a
 * regular subsample. The lowest and highest values present are left out when others are:
 * they are padding, collimation or saturated background (a CR stores its collimated
 * border as 0, 43 % of the pixels of pydicom's RG3_UNCR.dcm), not anatomy. */
export function percentiles(pixels, maxValue, wanted) {
  const hist = new Uint32Array(maxValue + 1);
  const step = Math.max(1, Math.floor(pixels.length / 1_000_000));
  for (let i = 0; i < pixels.length; i += step) hist[pixels[i]]++;
  let lowest = 0, highest = maxValue;
  while (lowest < maxValue && !hist[lowest]) lowest++;
  while (highest > lowest && !hist[highest]) highest--;
  if (highest - lowest > 1) hist[lowest] = hist[highest] = 0;
  const count = hist.reduce((sum, n) => sum + n, 0);
  const out = [];
  let cumulative = 0, v = 0;
  for (const p of [...wanted].sort((a, b) => a - b)) {
    const target = (p / 100) * count;
    while (v < maxValue && cumulative + hist[v] < target) cumulative += hist[v++];
    out.push(v);
  }
  return out;
}

/** Window presets as percentile ranges of the image's own anatomy values, so they follow
 * its bit depth and exposure (the stored units of a PNG phantom, a CR or a DX are not
 * Hounsfield units): bone is the dense end with the soft tissue next to it for context,
 * soft tissue the less dense middle (bone saturates), auto the 0.5-99.5 % span.
 * MONOCHROME1 stores dense tissue as low values, so its ranges are mirrored. The image's
 * own window (DICOM Window Center/Width, else the server's) stays the default (Reset). */
const PRESETS = {
  auto: [0.5, 99.5],
  bone: [40, 99.9],
  soft: [5, 60],
};

export function presetWindow(pixels, maxValue, name, inverted) {
  let [lo, hi] = PRESETS[name];
  if (inverted) [lo, hi] = [100 - hi, 100 - lo];
  const [a, b] = percentiles(pixels, maxValue, [lo, hi]);
  return { center: (a + b) / 2, width: Math.max(b - a, 1) };
}
