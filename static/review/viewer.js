// The X-ray viewer: OpenSeadragon for fit/zoom/pan, fed by canvases that hold the
// window/levelled image at half and full resolution. W/L changes re-render them from the
// raw values and ask OpenSeadragon to redraw; the boxes (Annotorious) live in image pixel
// coordinates.
/* global OpenSeadragon */
import { fetchBinary } from "./http.js";
import { applyLut, buildLut, presetWindow } from "./wl.js";

let opened = 0;

/** A two-level OpenSeadragon source whose tiles are our canvases (no network, no copy):
 * level 0 is the image at half resolution in one tile, level 1 the full resolution in
 * 2x2 tiles (fewer for a narrow image). Zoomed out to fit the screen, OpenSeadragon draws
 * level 0, a quarter of the pixels to scale in software. (Level 1 must not be a single
 * tile: OpenSeadragon keeps drawing a loaded single-tile level instead of a coarser one.)
 * Each source needs its own tile URLs (the keys of OpenSeadragon's tile cache):
 * unloading the previous image's tiles empties their canvases (width and height set to 0). */
function canvasTileSource(levels, tileSize) {
  const id = ++opened;
  const contexts = new Map();
  levels.forEach((level, index) => {
    for (const tile of level.tiles) contexts.set(`wl-canvas-${id}-${index}-${tile.column}-${tile.row}`, tile.ctx);
  });
  const { width, height } = levels.at(-1);
  const source = new OpenSeadragon.TileSource({
    width, height, tileSize, minLevel: 0, maxLevel: levels.length - 1,
  });
  Object.assign(source, {
    getTileUrl: (level, x, y) => `wl-canvas-${id}-${level}-${x}-${y}`,
    downloadTileStart: (job) => job.finish(contexts.get(job.src)),
    downloadTileAbort: () => {},
    createTileCache: (cache, data) => { cache._ctx = data; },
    destroyTileCache: (cache) => { cache._ctx = null; },
    getTileCacheData: (cache) => cache._ctx,
    getTileCacheDataAsImage: (cache) => cache._ctx.canvas,
    getTileCacheDataAsContext2D: (cache) => cache._ctx,
  });
  return source;
}

/** The 2x2 means of ``values`` (a ``width`` x ``height`` array), same type: the
 * half-resolution level's stored values (an odd last row or column is averaged alone). */
export function halve(values, width, height) {
  const w = (width + 1) >> 1, h = (height + 1) >> 1;
  const out = new values.constructor(w * h);
  for (let y = 0; y < h; y++) {
    const top = 2 * y * width, bottom = Math.min(2 * y + 1, height - 1) * width;
    for (let x = 0, o = y * w; x < w; x++, o++) {
      const left = 2 * x, right = Math.min(left + 1, width - 1);
      out[o] = (values[top + left] + values[top + right] + values[bottom + left] + values[bottom + right] + 2) >> 2;
    }
  }
  return { values: out, width: w, height: h };
}

/** A resolution level: its stored values, the RGBA buffer they are windowed into, and
 * the canvases of its tiles (``tileSize`` square, the last row and column cut to fit). */
function canvasLevel({ values, width, height }, tileSize) {
  const imageData = new ImageData(width, height);
  const tiles = [];
  for (let row = 0; row * tileSize < height; row++) {
    for (let column = 0; column * tileSize < width; column++) {
      const x = column * tileSize, y = row * tileSize;
      const canvas = Object.assign(document.createElement("canvas"), {
        width: Math.min(tileSize, width - x), height: Math.min(tileSize, height - y),
      });
      tiles.push({ column, row, x, y, ctx: canvas.getContext("2d") });
    }
  }
  return { values, width, height, imageData, out32: new Uint32Array(imageData.data.buffer), tiles };
}

const prefetched = new Map(); // url -> Promise of pixels (at most the upcoming image)

/** Start downloading the pixels the reader will most likely open next; returns the download. */
export function prefetchPixels(url) {
  if (!prefetched.has(url)) {
    prefetched.clear();
    const pending = download(url);
    pending.catch(() => prefetched.delete(url));
    prefetched.set(url, pending);
  }
  return prefetched.get(url);
}

export function fetchPixels(url) {
  const pending = prefetched.get(url);
  prefetched.delete(url);
  return pending ?? download(url);
}

async function download(url) {
  const response = await fetchBinary(url);
  const header = (name) => Number(response.headers.get(name));
  const buffer = await response.arrayBuffer();
  const bytes = header("X-Bytes-Per-Pixel");
  return {
    width: header("X-Width"), height: header("X-Height"), bitDepth: header("X-Bit-Depth"),
    // Little-endian on the wire; every browser platform is little-endian.
    values: bytes === 2 ? new Uint16Array(buffer) : new Uint8Array(buffer),
    maxValue: bytes === 2 ? 0xffff : 0xff,
  };
}

export class XrayViewer {
  /** ``onWindowChange(window)`` is called on every window change; set it when ready. */
  constructor(element, { onWindowChange = null } = {}) {
    this.element = element;
    this.onWindowChange = onWindowChange;
    this.osd = OpenSeadragon({
      element, drawer: "canvas", animationTime: 0, showNavigationControl: false,
      zoomPerScroll: 1.25, maxZoomPixelRatio: 8, visibilityRatio: 0.2,
      gestureSettingsMouse: { clickToZoom: false, dblClickToZoom: false },
      gestureSettingsTouch: { pinchToZoom: true },
      crossOriginPolicy: false, preserveImageSizeOnResize: true,
    });
    this.installWindowDrag();
  }

  /** Show new raw pixels with the image's stored window, fitted to the screen; resolves
   * once OpenSeadragon will draw them. An image of the size already shown is rendered
   * into the same canvases and buffers, and OpenSeadragon keeps its tile source (no re-open). */
  show(pixels, meta) {
    const sameSize = pixels.width === this.pixels?.width && pixels.height === this.pixels?.height;
    this.pixels = pixels;
    this.invert = meta.photometric === "MONOCHROME1";
    this.defaultWindow = { center: meta.window_center, width: meta.window_width };
    const half = halve(pixels.values, pixels.width, pixels.height);
    if (sameSize) {
      this.levels[0].values = half.values;
      this.levels[1].values = pixels.values;
      this.render(this.defaultWindow);
      this.osd.viewport.goHome(true);
      return Promise.resolve();
    }
    const tileSize = Math.max(half.width, half.height);
    this.levels = [canvasLevel(half, tileSize), canvasLevel(pixels, tileSize)];
    this.render(this.defaultWindow, false);
    return new Promise((resolve) => {
      this.osd.addOnceHandler("open", () => resolve());
      this.osd.open(canvasTileSource(this.levels, tileSize));
    });
  }

  /** Grey level (0-255) the current window gives image pixel (x, y) at full resolution. */
  greyAt(x, y) {
    const full = this.levels.at(-1);
    return full.imageData.data[(y * full.width + x) * 4];
  }

  /** Re-window both levels from the raw values; returns the milliseconds spent
   * (LUT + pixels + put). */
  render({ center, width }, redraw = true) {
    const started = performance.now();
    this.window = { center, width: Math.max(width, 1) };
    const lut = buildLut(this.window.center, this.window.width, this.pixels.maxValue, this.invert);
    for (const level of this.levels) {
      applyLut(level.values, lut, level.out32);
      for (const { x, y, ctx } of level.tiles) {
        ctx.putImageData(level.imageData, -x, -y, x, y, ctx.canvas.width, ctx.canvas.height);
      }
    }
    this.lut = lut;
    if (redraw) this.osd.forceRedraw();
    this.onWindowChange?.(this.window);
    return performance.now() - started;
  }

  preset(name) {
    if (name === "reset") return this.render(this.defaultWindow);
    return this.render(presetWindow(this.pixels.values, this.pixels.maxValue, name, this.invert));
  }

  /** Right-drag changes the window: horizontal = width, vertical = level. */
  installWindowDrag() {
    let start = null;
    this.element.addEventListener("contextmenu", (e) => e.preventDefault());
    this.element.addEventListener("pointerdown", (e) => {
      if (e.button !== 2 || !this.pixels) return;
      start = { x: e.clientX, y: e.clientY, ...this.window };
      this.element.setPointerCapture(e.pointerId);
      e.stopPropagation();
    }, true);
    this.element.addEventListener("pointermove", (e) => {
      if (!start) return;
      const perPixel = Math.max(this.window.width, 64) / 256;
      this.render({
        center: start.center + (e.clientY - start.y) * perPixel,
        width: Math.max(1, start.width + (e.clientX - start.x) * perPixel * 2),
      });
      e.stopPropagation();
    }, true);
    const end = () => { start = null; };
    this.element.addEventListener("pointerup", end, true);
    this.element.addEventListener("pointercancel", end, true);
  }

  /** Back to the whole image fitted to the screen. */
  fit() {
    this.osd.viewport.goHome();
  }

  imageToScreen(x, y) {
    const p = this.osd.viewport.imageToViewerElementCoordinates(new OpenSeadragon.Point(x, y));
    return { x: p.x, y: p.y };
  }

  /** Zoom so that one image pixel is ``scale`` screen pixels, centred on (x, y). */
  zoomTo(scale, x, y) {
    const vp = this.osd.viewport;
    vp.zoomTo(vp.imageToViewportZoom(scale), undefined, true);
    vp.panTo(vp.imageToViewportCoordinates(new OpenSeadragon.Point(x, y)), true);
  }
}
