// The X-ray viewer: OpenSeadragon for fit/zoom/pan, fed by one canvas that holds the
// window/levelled image. W/L changes re-render that canvas from the raw values and ask
// OpenSeadragon to redraw; the boxes (Annotorious) live in image pixel coordinates.
/* global OpenSeadragon */
import { applyLut, buildLut, presetWindow } from "./wl.js";

let opened = 0;

/** A single-tile OpenSeadragon source whose tile is our canvas (no network, no copy).
 * Each source needs its own canvas and tile URL (the key of OpenSeadragon's tile cache):
 * unloading the previous image's tile empties its canvas (width and height set to 0). */
function canvasTileSource(canvas) {
  const ctx = canvas.getContext("2d");
  const url = `wl-canvas-${++opened}`;
  const source = new OpenSeadragon.TileSource({
    width: canvas.width, height: canvas.height,
    tileSize: Math.max(canvas.width, canvas.height), minLevel: 0, maxLevel: 0,
  });
  Object.assign(source, {
    getTileUrl: () => url,
    downloadTileStart: (job) => job.finish(ctx),
    downloadTileAbort: () => {},
    createTileCache: (cache, data) => { cache._ctx = data; },
    destroyTileCache: (cache) => { cache._ctx = null; },
    getTileCacheData: (cache) => cache._ctx,
    getTileCacheDataAsImage: () => canvas,
    getTileCacheDataAsContext2D: (cache) => cache._ctx,
  });
  return source;
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
  const response = await fetch(url, { credentials: "same-origin" });
  if (!response.ok) throw new Error(`pixels: HTTP ${response.status}`);
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
  constructor(element, { onWindowChange }) {
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
   * into the same canvas and buffers, and OpenSeadragon keeps its tile source (no re-open). */
  show(pixels, meta) {
    const sameSize = pixels.width === this.pixels?.width && pixels.height === this.pixels?.height;
    this.pixels = pixels;
    this.invert = meta.photometric === "MONOCHROME1";
    this.defaultWindow = { center: meta.window_center, width: meta.window_width };
    if (sameSize) {
      this.render(this.defaultWindow);
      this.osd.viewport.goHome(true);
      return Promise.resolve();
    }
    this.canvas = document.createElement("canvas");
    Object.assign(this.canvas, { id: "wl-canvas", width: pixels.width, height: pixels.height });
    this.ctx = this.canvas.getContext("2d");
    this.imageData = this.ctx.createImageData(pixels.width, pixels.height);
    this.out32 = new Uint32Array(this.imageData.data.buffer);
    this.render(this.defaultWindow, false);
    return new Promise((resolve) => {
      this.osd.addOnceHandler("open", () => resolve());
      this.osd.open(canvasTileSource(this.canvas));
    });
  }

  /** Re-window from the raw values; returns the milliseconds spent (LUT + pixels + put). */
  render({ center, width }, redraw = true) {
    const started = performance.now();
    this.window = { center, width: Math.max(width, 1) };
    const lut = buildLut(this.window.center, this.window.width, this.pixels.maxValue, this.invert);
    applyLut(this.pixels.values, lut, this.out32);
    this.ctx.putImageData(this.imageData, 0, 0);
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
