/* Built-in viewer.
 *
 * Data come from the project's DICOMweb (PS3.18): series metadata (10.4.1.1.2)
 * and frames (10.4.1.1.4) asked for as native little-endian octet streams, so
 * window/level, invert and zoom happen here in the browser, instantly, on the
 * stored values.  Colour images, 1-bit images and anything the native path
 * cannot read fall back to the server's rendered frames (10.4.1.1.3).
 * Neighbouring frames are prefetched nearest-first.  All text from DICOM goes
 * to the page through textContent (never innerHTML).
 */
(function () {
  "use strict";
  const config = JSON.parse(document.getElementById("viewer-config").textContent);
  const root = config.dicomwebRoot;
  const NATIVE_ACCEPT = 'multipart/related; type="application/octet-stream"; transfer-syntax=1.2.840.10008.1.2.1';
  const PREFETCH_PARALLEL = 4;
  const PRESETS = { 1: "-600,1500", 2: "300,1500", 3: "40,80", 4: "40,400" };

  // --- DICOM JSON helpers --------------------------------------------------
  const T = {
    SOPInstanceUID: "00080018", InstanceNumber: "00200013", Rows: "00280010", Columns: "00280011",
    BitsAllocated: "00280100", BitsStored: "00280101", PixelRepresentation: "00280103",
    SamplesPerPixel: "00280002", Photometric: "00280004", NumberOfFrames: "00280008",
    WindowCenter: "00281050", WindowWidth: "00281051", RescaleSlope: "00281053", RescaleIntercept: "00281052",
    PixelSpacing: "00280030", ImagerPixelSpacing: "00181164", SliceLocation: "00201041", SliceThickness: "00180050",
    PatientName: "00100010", PatientID: "00100020", PatientBirthDate: "00100030", PatientSex: "00100040",
    StudyDate: "00080020", StudyDescription: "00081030", SeriesDescription: "0008103E", SeriesNumber: "00200011",
    Modality: "00080060", InstitutionName: "00080080", AccessionNumber: "00080050",
  };
  function val(item, key, index = 0) {
    const el = item[T[key] || key];
    if (!el || !el.Value || el.Value.length <= index) return undefined;
    const v = el.Value[index];
    if (v && typeof v === "object" && "Alphabetic" in v) {
      return [v.Ideographic, v.Alphabetic].filter(Boolean).join(" / ").replaceAll("^", " ").trim();
    }
    return v;
  }
  function num(item, key, fallback, index = 0) {
    const v = Number(val(item, key, index));
    return Number.isFinite(v) ? v : fallback;
  }

  // --- Frame loading ---------------------------------------------------------
  function multipartBody(buffer, contentType) {
    const match = /boundary="?([^";]+)"?/i.exec(contentType || "");
    const bytes = new Uint8Array(buffer);
    if (!match) return buffer;
    let start = -1;
    for (let i = 0; i < Math.min(bytes.length - 3, 4096); i++) {
      if (bytes[i] === 13 && bytes[i + 1] === 10 && bytes[i + 2] === 13 && bytes[i + 3] === 10) { start = i + 4; break; }
    }
    if (start < 0) throw new Error("malformed multipart response");
    const closing = new TextEncoder().encode(`\r\n--${match[1]}`);
    let end = bytes.length;
    outer: for (let i = bytes.length - closing.length; i >= start; i--) {
      for (let j = 0; j < closing.length; j++) if (bytes[i + j] !== closing[j]) continue outer;
      end = i;
      break;
    }
    return buffer.slice(start, end);
  }

  class FrameRef {
    constructor(series, item, frameNumber) {
      this.series = series;
      this.item = item;
      this.frameNumber = frameNumber;
      this.sop = val(item, "SOPInstanceUID");
      this.rows = num(item, "Rows", 0);
      this.cols = num(item, "Columns", 0);
      this.bits = num(item, "BitsAllocated", 16);
      this.stored = num(item, "BitsStored", this.bits);
      this.signed = num(item, "PixelRepresentation", 0) === 1;
      this.samples = num(item, "SamplesPerPixel", 1);
      this.photometric = String(val(item, "Photometric") || "MONOCHROME2");
      this.slope = num(item, "RescaleSlope", 1);
      this.intercept = num(item, "RescaleIntercept", 0);
      const spacing = item[T.PixelSpacing] ? T.PixelSpacing : T.ImagerPixelSpacing;
      this.rowSpacing = num(item, spacing, 0, 0);
      this.colSpacing = num(item, spacing, 0, 1);
      this.wc = num(item, "WindowCenter", NaN);
      this.ww = num(item, "WindowWidth", NaN);
      this.data = null; // {kind: "native", pixels, min, max} | {kind: "image", image}
      this.promise = null;
    }
    get url() {
      return `${root}/studies/${config.studyInstanceUID}/series/${this.series.uid}/instances/${this.sop}/frames/${this.frameNumber}`;
    }
    get native() { return this.samples === 1 && [8, 16, 32].includes(this.bits) && this.rows > 0; }
    load() {
      if (!this.promise) this.promise = (this.native ? this.loadNative().catch(() => this.loadRendered()) : this.loadRendered())
        .then((data) => { this.data = data; return data; });
      return this.promise;
    }
    async loadNative() {
      const response = await fetch(this.url, { headers: { Accept: NATIVE_ACCEPT }, credentials: "same-origin" });
      if (!response.ok) throw new Error(`frame ${response.status}`);
      const body = multipartBody(await response.arrayBuffer(), response.headers.get("Content-Type"));
      const count = this.rows * this.cols;
      let pixels;
      if (this.bits === 8) pixels = this.signed ? new Int8Array(body, 0, count) : new Uint8Array(body, 0, count);
      else if (this.bits === 16) pixels = this.signed ? new Int16Array(body, 0, count) : new Uint16Array(body, 0, count);
      else pixels = this.signed ? new Int32Array(body, 0, count) : new Uint32Array(body, 0, count);
      if (this.stored < this.bits && this.bits <= 16) {
        // Keep only BitsStored bits (sign-extended when signed): PS3.5 8.1.1.
        const shift = 32 - this.stored;
        const mask = (1 << this.stored) - 1;
        for (let i = 0; i < pixels.length; i++) pixels[i] = this.signed ? (pixels[i] << shift) >> shift : pixels[i] & mask;
      }
      let min = Infinity, max = -Infinity;
      for (let i = 0; i < pixels.length; i++) { const v = pixels[i]; if (v < min) min = v; if (v > max) max = v; }
      return { kind: "native", pixels, min, max };
    }
    async loadRendered() {
      const image = new Image();
      image.decoding = "async";
      image.src = `${this.url}/rendered?accept=image/png`;
      await image.decode();
      return { kind: "image", image };
    }
  }

  class SeriesData {
    constructor(info) {
      this.uid = info.seriesInstanceUID;
      this.info = info;
      this.frames = [];
      this.ready = this.load();
    }
    async load() {
      const url = `${root}/studies/${config.studyInstanceUID}/series/${this.uid}/metadata`;
      const response = await fetch(url, { headers: { Accept: "application/dicom+json" }, credentials: "same-origin" });
      if (!response.ok) throw new Error(`metadata ${response.status}`);
      const items = (await response.json()).filter((item) => num(item, "Rows", 0) > 0);
      items.sort((a, b) => num(a, "InstanceNumber", 0) - num(b, "InstanceNumber", 0)
        || num(a, "SliceLocation", 0) - num(b, "SliceLocation", 0));
      for (const item of items) {
        const count = Math.max(1, num(item, "NumberOfFrames", 1));
        for (let f = 1; f <= count; f++) this.frames.push(new FrameRef(this, item, f));
      }
      return this;
    }
  }
  const seriesCache = new Map();
  function seriesData(uid) {
    const info = config.series.find((s) => s.seriesInstanceUID === uid);
    if (!info) return null;
    if (!seriesCache.has(uid)) seriesCache.set(uid, new SeriesData(info));
    return seriesCache.get(uid);
  }

  // --- Viewport ----------------------------------------------------------------
  const viewportsEl = document.getElementById("viewports");
  const viewports = [];
  let active = null;
  let tool = "scroll";
  let cineTimer = null;

  class Viewport {
    constructor() {
      this.el = document.createElement("div");
      this.el.className = "viewport";
      this.el.tabIndex = 0;
      this.canvas = document.createElement("canvas");
      this.el.appendChild(this.canvas);
      this.ov = {};
      for (const corner of ["tl", "tr", "bl", "br"]) {
        const div = document.createElement("div");
        div.className = `ov ov-${corner}`;
        this.el.appendChild(div);
        this.ov[corner] = div;
      }
      this.empty = document.createElement("div");
      this.empty.className = "vp-empty";
      this.el.appendChild(this.empty);
      this.scrollbar = document.createElement("div");
      this.scrollbar.className = "vp-scrollbar";
      this.scrollbar.appendChild(document.createElement("i"));
      this.el.appendChild(this.scrollbar);
      this.ctx = this.canvas.getContext("2d");
      this.buffer = document.createElement("canvas");
      this.bufferCtx = this.buffer.getContext("2d", { willReadFrequently: false });
      this.series = null;
      this.index = 0;
      this.measurements = new Map(); // frame index -> [{x1,y1,x2,y2}]
      this.resetView();
      this.bind();
    }
    resetView() {
      this.wc = NaN; this.ww = NaN; this.invert = false; this.rotation = 0; this.flipH = false; this.flipV = false;
      this.zoom = 0; this.panX = 0; this.panY = 0;
    }
    async show(uid, index) {
      const series = seriesData(uid);
      if (!series) return;
      this.series = series;
      this.empty.textContent = window.PACS.strings.loading || "…";
      this.resetView();
      this.measurements = new Map();
      this.el.dataset.series = uid;
      try {
        await series.ready;
      } catch (err) {
        this.empty.textContent = `${window.PACS.strings.failed || "Failed"}: ${err.message}`;
        return;
      }
      this.index = Math.min(index || 0, Math.max(0, series.frames.length - 1));
      this.empty.textContent = series.frames.length ? "" : (window.PACS.strings.noSeries || "No images");
      markThumbs();
      await this.go(this.index);
      this.prefetch();
    }
    get frame() { return this.series && this.series.frames[this.index]; }
    async go(index) {
      if (!this.series || !this.series.frames.length) return;
      const count = this.series.frames.length;
      this.index = Math.max(0, Math.min(count - 1, index));
      this.el.dataset.index = String(this.index);
      const frame = this.frame;
      if (!frame.data) {
        this.drawOverlay();
        try { await frame.load(); } catch (err) { this.empty.textContent = err.message; return; }
        if (frame !== this.frame) return; // scrolled on meanwhile
      }
      if (Number.isNaN(this.ww)) this.defaultWindow();
      this.render();
      this.prefetch();
    }
    defaultWindow() {
      const f = this.frame;
      if (Number.isFinite(f.wc) && Number.isFinite(f.ww) && f.ww > 0) { this.wc = f.wc; this.ww = f.ww; return; }
      this.autoWindow();
    }
    autoWindow() {
      const f = this.frame;
      if (!f.data || f.data.kind !== "native") { this.wc = 127.5; this.ww = 256; return; }
      const lo = f.data.min * f.slope + f.intercept, hi = f.data.max * f.slope + f.intercept;
      this.ww = Math.max(1, hi - lo); this.wc = (hi + lo) / 2;
    }
    prefetch() {
      if (!this.series) return;
      const frames = this.series.frames;
      const order = [];
      for (let d = 1; d < frames.length && order.length < 400; d++) {
        if (this.index + d < frames.length) order.push(frames[this.index + d]);
        if (this.index - d >= 0) order.push(frames[this.index - d]);
      }
      const pending = order.filter((f) => !f.promise);
      let running = 0;
      const next = () => {
        while (running < PREFETCH_PARALLEL && pending.length) {
          const f = pending.shift();
          if (f.promise) continue;
          running++;
          f.load().catch(() => {}).finally(() => { running--; next(); });
        }
      };
      next();
    }
    resize() {
      const ratio = window.devicePixelRatio || 1;
      const w = Math.max(1, Math.round(this.el.clientWidth * ratio)), h = Math.max(1, Math.round(this.el.clientHeight * ratio));
      if (this.canvas.width !== w || this.canvas.height !== h) { this.canvas.width = w; this.canvas.height = h; }
    }
    aspect() {
      const f = this.frame;
      return f && f.rowSpacing > 0 && f.colSpacing > 0 ? f.rowSpacing / f.colSpacing : 1;
    }
    fitZoom() {
      const f = this.frame;
      const w = f.cols, h = f.rows * this.aspect();
      const [bw, bh] = this.rotation % 180 ? [h, w] : [w, h];
      return Math.min(this.canvas.width / bw, this.canvas.height / bh);
    }
    transform() {
      const f = this.frame;
      const zoom = this.zoom || this.fitZoom();
      return new DOMMatrix()
        .translate(this.canvas.width / 2 + this.panX, this.canvas.height / 2 + this.panY)
        .rotate(this.rotation)
        .scale(zoom * (this.flipH ? -1 : 1), zoom * this.aspect() * (this.flipV ? -1 : 1))
        .translate(-f.cols / 2, -f.rows / 2);
    }
    toImage(clientX, clientY) {
      const rect = this.canvas.getBoundingClientRect();
      const ratio = this.canvas.width / rect.width;
      const p = this.transform().inverse().transformPoint(new DOMPoint((clientX - rect.left) * ratio, (clientY - rect.top) * ratio));
      return { x: p.x, y: p.y };
    }
    paintBuffer() {
      const f = this.frame;
      const data = f.data;
      if (this.buffer.width !== f.cols || this.buffer.height !== f.rows) { this.buffer.width = f.cols; this.buffer.height = f.rows; }
      if (data.kind === "image") {
        this.bufferCtx.filter = this.invert ? "invert(1)" : "none";
        this.bufferCtx.clearRect(0, 0, f.cols, f.rows);
        this.bufferCtx.drawImage(data.image, 0, 0, f.cols, f.rows);
        this.bufferCtx.filter = "none";
        return;
      }
      // VOI LUT over the stored-value range: one table lookup per pixel (PS3.3 C.11.2.1.2, linear).
      const low = this.wc - 0.5 - (this.ww - 1) / 2, width = Math.max(1, this.ww - 1);
      const inverted = this.invert !== (f.photometric === "MONOCHROME1");
      const grey = (stored) => {
        let y = (((stored * f.slope + f.intercept) - low) / width) * 255;
        y = y < 0 ? 0 : y > 255 ? 255 : y;
        return inverted ? 255 - y : y;
      };
      const image = this.bufferCtx.createImageData(f.cols, f.rows);
      const out = new Uint32Array(image.data.buffer);
      const pixels = data.pixels;
      const lo = data.min, size = data.max - data.min + 1;
      if (size <= 1 << 18) {
        const lut = new Uint8ClampedArray(size);
        for (let i = 0; i < size; i++) lut[i] = grey(i + lo);
        for (let i = 0; i < pixels.length; i++) {
          const g = lut[pixels[i] - lo];
          out[i] = 0xff000000 | (g << 16) | (g << 8) | g;
        }
      } else {
        for (let i = 0; i < pixels.length; i++) {
          const g = grey(pixels[i]) | 0;
          out[i] = 0xff000000 | (g << 16) | (g << 8) | g;
        }
      }
      this.bufferCtx.putImageData(image, 0, 0);
    }
    render() {
      this.resize();
      const ctx = this.ctx;
      ctx.setTransform(1, 0, 0, 1, 0, 0);
      ctx.fillStyle = "#000";
      ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
      const f = this.frame;
      if (!f || !f.data) { this.drawOverlay(); return; }
      this.paintBuffer();
      const m = this.transform();
      ctx.setTransform(m);
      ctx.imageSmoothingEnabled = (this.zoom || this.fitZoom()) < 3;
      ctx.drawImage(this.buffer, 0, 0);
      this.drawMeasurements(m);
      this.drawOverlay();
    }
    drawMeasurements(m) {
      const lines = this.measurements.get(this.index) || [];
      const ctx = this.ctx;
      ctx.setTransform(1, 0, 0, 1, 0, 0);
      ctx.lineWidth = 2 * (window.devicePixelRatio || 1);
      ctx.font = `${13 * (window.devicePixelRatio || 1)}px ui-monospace, monospace`;
      for (const line of lines) {
        const a = m.transformPoint(new DOMPoint(line.x1, line.y1)), b = m.transformPoint(new DOMPoint(line.x2, line.y2));
        ctx.strokeStyle = "#ffd400";
        ctx.beginPath(); ctx.moveTo(a.x, a.y); ctx.lineTo(b.x, b.y); ctx.stroke();
        ctx.fillStyle = "#ffd400";
        ctx.fillText(this.lengthText(line), b.x + 6, b.y - 6);
      }
    }
    lengthText(line) {
      const f = this.frame;
      const dx = line.x2 - line.x1, dy = line.y2 - line.y1;
      if (f.rowSpacing > 0 && f.colSpacing > 0) return `${Math.hypot(dx * f.colSpacing, dy * f.rowSpacing).toFixed(1)} mm`;
      return `${Math.hypot(dx, dy).toFixed(1)} px`;
    }
    drawOverlay() {
      const f = this.frame;
      const bar = this.scrollbar.firstElementChild;
      if (!f) { for (const k in this.ov) this.ov[k].textContent = ""; return; }
      const item = f.item;
      const count = this.series.frames.length;
      this.ov.tl.textContent = [val(item, "PatientName"), val(item, "PatientID"),
        [val(item, "PatientBirthDate"), val(item, "PatientSex")].filter(Boolean).join(" "),
        val(item, "InstitutionName")].filter(Boolean).join("\n");
      this.ov.tr.textContent = [val(item, "StudyDescription"), val(item, "StudyDate"), val(item, "AccessionNumber") ? `Acc ${val(item, "AccessionNumber")}` : "",
        `${val(item, "Modality") || ""} Se ${val(item, "SeriesNumber") ?? ""} ${val(item, "SeriesDescription") || ""}`].filter(Boolean).join("\n");
      const frameText = f.frameNumber > 1 || num(item, "NumberOfFrames", 1) > 1 ? ` fr ${f.frameNumber}` : "";
      this.ov.bl.textContent = [`Im ${this.index + 1}/${count}  #${val(item, "InstanceNumber") ?? ""}${frameText}`,
        f.rows ? `${f.cols}×${f.rows}` : "",
        val(item, "SliceLocation") !== undefined ? `Loc ${Number(val(item, "SliceLocation")).toFixed(1)}` : ""].filter(Boolean).join("\n");
      const zoom = this.zoom || (this.canvas.width ? this.fitZoom() : 1);
      this.ov.br.textContent = `W ${Math.round(this.ww)} L ${Math.round(this.wc)}${this.invert ? " INV" : ""}\nZoom ${(zoom / (window.devicePixelRatio || 1)).toFixed(2)}${this.rotation ? ` Rot ${this.rotation}°` : ""}`;
      bar.style.height = `${100 / count}%`;
      bar.style.top = `${(100 * this.index) / count}%`;
      this.el.dataset.wl = `${Math.round(this.wc)},${Math.round(this.ww)}`;
    }
    bind() {
      const el = this.el;
      el.addEventListener("pointerdown", (e) => this.pointerDown(e));
      el.addEventListener("contextmenu", (e) => e.preventDefault());
      el.addEventListener("wheel", (e) => {
        e.preventDefault();
        activate(this);
        if (e.ctrlKey) { this.zoomBy(e.deltaY < 0 ? 1.1 : 1 / 1.1); return; }
        this.go(this.index + (e.deltaY > 0 ? 1 : -1));
      }, { passive: false });
      el.addEventListener("focus", () => activate(this));
    }
    zoomBy(factor) {
      if (!this.frame) return;
      this.zoom = (this.zoom || this.fitZoom()) * factor;
      this.render();
    }
    pointerDown(e) {
      activate(this);
      if (!this.frame || !this.frame.data) return;
      e.preventDefault();
      this.el.setPointerCapture(e.pointerId);
      const mode = e.button === 2 ? "wl" : e.button === 1 ? "pan" : tool;
      const start = { x: e.clientX, y: e.clientY, wc: this.wc, ww: this.ww, index: this.index, zoom: this.zoom || this.fitZoom(),
        panX: this.panX, panY: this.panY };
      let line = null;
      if (mode === "length") {
        const p = this.toImage(e.clientX, e.clientY);
        line = { x1: p.x, y1: p.y, x2: p.x, y2: p.y };
        const list = this.measurements.get(this.index) || [];
        list.push(line);
        this.measurements.set(this.index, list);
      }
      const ratio = window.devicePixelRatio || 1;
      const move = (ev) => {
        const dx = ev.clientX - start.x, dy = ev.clientY - start.y;
        if (mode === "wl") {
          const f = this.frame;
          const range = f.data.kind === "native" ? Math.max(1, (f.data.max - f.data.min) * Math.abs(f.slope)) : 256;
          const step = range / 512;
          this.ww = Math.max(1, start.ww + dx * step);
          this.wc = start.wc + dy * step;
          this.render();
        } else if (mode === "scroll") {
          const rows = Math.round(dy / Math.max(4, 200 / this.series.frames.length));
          if (start.index + rows !== this.index) this.go(start.index + rows);
        } else if (mode === "zoom") {
          this.zoom = Math.max(0.05, start.zoom * Math.exp(-dy / 200));
          this.render();
        } else if (mode === "pan") {
          this.panX = start.panX + dx * ratio; this.panY = start.panY + dy * ratio;
          this.render();
        } else if (mode === "length" && line) {
          const p = this.toImage(ev.clientX, ev.clientY);
          line.x2 = p.x; line.y2 = p.y;
          this.render();
        }
      };
      const up = () => {
        this.el.removeEventListener("pointermove", move);
        this.el.removeEventListener("pointerup", up);
        this.el.removeEventListener("pointercancel", up);
        if (line && Math.hypot(line.x2 - line.x1, line.y2 - line.y1) < 1) {
          const list = this.measurements.get(this.index);
          list.splice(list.indexOf(line), 1);
          this.render();
        }
      };
      this.el.addEventListener("pointermove", move);
      this.el.addEventListener("pointerup", up);
      this.el.addEventListener("pointercancel", up);
    }
  }

  function activate(viewport) {
    if (active === viewport) return;
    viewports.forEach((v) => v.el.classList.toggle("active", v === viewport));
    active = viewport;
    markThumbs();
  }

  function markThumbs() {
    document.querySelectorAll(".thumb").forEach((t) => t.classList.toggle("current", !!active?.series && t.dataset.series === active.series.uid));
  }

  function setLayout(layout) {
    const [rows, cols] = layout.split("x").map(Number);
    const wanted = rows * cols;
    viewportsEl.className = `viewports layout-${layout}`;
    while (viewports.length < wanted) {
      const v = new Viewport();
      viewports.push(v);
      viewportsEl.appendChild(v.el);
      // New panes show the next series so "1x2" compares two series at once.
      const shown = viewports.map((x) => x.series?.uid).filter(Boolean);
      const next = config.series.find((s) => !shown.includes(s.seriesInstanceUID)) || config.series[0];
      if (next) v.show(next.seriesInstanceUID, 0);
    }
    while (viewports.length > wanted) viewports.pop().el.remove();
    if (!viewports.includes(active)) activate(viewports[0]);
    requestAnimationFrame(() => viewports.forEach((v) => v.render()));
  }

  function stopCine() {
    if (cineTimer) clearInterval(cineTimer);
    cineTimer = null;
    document.getElementById("cine-button").classList.remove("active");
  }
  function toggleCine() {
    if (cineTimer) { stopCine(); return; }
    const fps = Math.max(1, Math.min(60, Number(document.getElementById("fps").value) || 10));
    document.getElementById("cine-button").classList.add("active");
    cineTimer = setInterval(() => {
      if (!active?.series) return;
      const n = active.series.frames.length;
      const next = (active.index + 1) % n;
      if (active.series.frames[next].data || n === 1) active.go(next);
      else active.series.frames[next].load().then(() => active.go(next));
    }, 1000 / fps);
  }

  function applyPreset(value) {
    if (!active?.frame?.data) return;
    if (value === "default") active.defaultWindow();
    else if (value === "auto") active.autoWindow();
    else if (value) { const [c, w] = value.split(",").map(Number); active.wc = c; active.ww = w; }
    active.render();
  }

  function action(name) {
    const v = active;
    if (name === "tags") { openTags(); return; }
    if (name === "cine") { toggleCine(); return; }
    if (name === "overlay") { viewports.forEach((x) => x.el.classList.toggle("no-overlay")); return; }
    if (!v?.frame) return;
    if (name === "fit") { v.zoom = 0; v.panX = 0; v.panY = 0; }
    if (name === "invert") v.invert = !v.invert;
    if (name === "rotate") v.rotation = (v.rotation + 90) % 360;
    if (name === "fliph") v.flipH = !v.flipH;
    if (name === "flipv") v.flipV = !v.flipV;
    if (name === "reset") { const index = v.index; v.resetView(); v.measurements = new Map(); v.index = index; v.defaultWindow(); }
    v.render();
  }

  // --- Tag browser (server-rendered table of the instance, sequences included) ---
  async function openTags() {
    const f = active?.frame;
    if (!f) return;
    const dialog = document.getElementById("tag-dialog");
    const body = document.getElementById("tag-body");
    body.textContent = window.PACS.strings.loading || "…";
    dialog.showModal();
    const url = `/viewer/${config.studyInstanceUID}/tags/${f.series.uid}/${f.sop}/`;
    const response = await fetch(url, { credentials: "same-origin" });
    body.innerHTML = response.ok ? await response.text() : `${response.status}`; // autoescaped server fragment
    filterTags();
  }
  function filterTags() {
    const needle = document.getElementById("tag-filter").value.toLowerCase();
    document.querySelectorAll("#tag-body tr").forEach((tr) => {
      tr.hidden = needle && !tr.textContent.toLowerCase().includes(needle);
    });
  }
  document.getElementById("tag-filter").addEventListener("input", filterTags);

  // --- Wiring --------------------------------------------------------------------
  document.querySelectorAll("[data-tool]").forEach((button) => button.addEventListener("click", () => {
    tool = button.dataset.tool;
    document.querySelectorAll("[data-tool]").forEach((b) => b.classList.toggle("active", b === button));
  }));
  document.querySelectorAll("[data-action]").forEach((button) => button.addEventListener("click", () => action(button.dataset.action)));
  document.getElementById("preset").addEventListener("change", (e) => { applyPreset(e.target.value); e.target.value = ""; });
  document.getElementById("layout").addEventListener("change", (e) => setLayout(e.target.value));
  document.getElementById("thumbs").addEventListener("click", (e) => {
    const thumb = e.target.closest(".thumb");
    if (thumb && active) active.show(thumb.dataset.series, 0);
  });
  document.addEventListener("keydown", (e) => {
    if (e.target.closest("input, select, textarea, dialog")) return;
    const v = active;
    const keys = {
      ArrowDown: () => v.go(v.index + 1), ArrowRight: () => v.go(v.index + 1), ArrowUp: () => v.go(v.index - 1),
      ArrowLeft: () => v.go(v.index - 1), PageDown: () => v.go(v.index + 10), PageUp: () => v.go(v.index - 10),
      Home: () => v.go(0), End: () => v.go(Number.MAX_SAFE_INTEGER), " ": () => toggleCine(),
      "+": () => v.zoomBy(1.2), "=": () => v.zoomBy(1.2), "-": () => v.zoomBy(1 / 1.2),
      i: () => action("invert"), r: () => action("rotate"), h: () => action("fliph"), v: () => action("flipv"),
      f: () => action("fit"), Escape: () => action("reset"), t: () => action("tags"), o: () => action("overlay"),
    };
    if (PRESETS[e.key]) { applyPreset(PRESETS[e.key]); e.preventDefault(); return; }
    const fn = keys[e.key];
    if (fn && v) { fn(); e.preventDefault(); }
  });
  new ResizeObserver(() => viewports.forEach((v) => v.render())).observe(viewportsEl);

  // Start: the requested series (or the first) in one viewport.
  const first = config.initialSeries || config.series[0]?.seriesInstanceUID;
  const v0 = new Viewport();
  viewports.push(v0);
  viewportsEl.appendChild(v0.el);
  activate(v0);
  if (first) v0.show(first, 0);
  else v0.empty.textContent = window.PACS.strings.noSeries || "No series";
  window.pacsViewer = { viewports, action, applyPreset, setLayout }; // for keyboard-less automation and tests
})();
