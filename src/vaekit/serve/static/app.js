// vaekit explorer: one page over vaekit serve's JSON API. Plain DOM and 2-D canvas, nothing fetched
// from anywhere but this server. The state (z, seed, view) lives in the URL's hash so a view can be
// shared: every change rewrites it, and loading a URL with one restores it.
"use strict";

const $ = (id) => document.getElementById(id);
const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
  "#bcbd22", "#17becf"];
const S = {
  info: null, runs: [], primary: 0, z: [], label: 0, seed: 0, temperature: 1, prior: "", sampleClass: "",
  tool: "interpolate", interpA: 0, interpB: 1, spherical: false, dim: 0, limit: 3, groupA: "", groupB: "",
  scale: 2, marks: { a: new Set(), b: new Set() }, latents: {}, padRange: null,
};

// ------------------------------------------------------------------------------------------ helpers
function status(message) { $("status").textContent = message || ""; }

async function api(path, body, options = {}) {
  const started = performance.now();
  const response = await fetch(path, body === undefined ? options : {
    method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body), ...options,
  });
  const roundTrip = performance.now() - started;
  if (!response.ok) {
    let detail = response.statusText;
    try { const data = await response.json(); detail = typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail); } catch (e) { /* not JSON */ }
    throw new Error(`${response.status}: ${detail}`);
  }
  const data = await response.json();
  return { data, roundTrip, serverSeconds: parseFloat(response.headers.get("x-decode-seconds") || "NaN") };
}

function color(label) {
  if (label < 0) return "#888";
  return label < PALETTE.length ? PALETTE[label] : `hsl(${(label * 137.5) % 360}, 65%, 50%)`;
}
const run = () => S.runs[S.primary];
const gaussian = () => run().latent === "gaussian";
const dot = (a, b) => a.reduce((sum, v, i) => sum + v * b[i], 0);
function axisValue(axes, i, z) { return dot(z.map((v, j) => v - axes.origin[j]), axes.vectors[i]); }
function moveAlong(axes, i, value) {
  const delta = value - axisValue(axes, i, S.z);
  S.z = S.z.map((v, j) => v + delta * axes.vectors[i][j]);
}
function compatible(r) { return r.latent_dim === run().latent_dim && r.latent === run().latent; }
function labelFor(r) { return r.conditional ? S.label : undefined; }
function round4(v) { return Math.round(v * 1e4) / 1e4; }

// ------------------------------------------------------------------------------------------ URL state
function writeHash() {
  const p = new URLSearchParams();
  p.set("z", S.z.map((v) => (gaussian() ? round4(v) : v)).join(","));
  p.set("run", S.primary); p.set("seed", S.seed); p.set("t", S.temperature);
  if (S.prior) p.set("prior", S.prior);
  if (S.sampleClass !== "") p.set("class", S.sampleClass);
  p.set("label", S.label); p.set("view", S.tool);
  if (S.tool === "interpolate") { p.set("a", S.interpA); p.set("b", S.interpB); if (S.spherical) p.set("sph", 1); }
  if (S.tool === "traverse") { p.set("dim", S.dim); p.set("limit", S.limit); }
  if (S.tool === "attribute") {
    p.set("ga", S.groupA); p.set("gb", S.groupB); p.set("scale", S.scale);
    if (S.marks.a.size) p.set("ma", [...S.marks.a].join("."));
    if (S.marks.b.size) p.set("mb", [...S.marks.b].join("."));
  }
  history.replaceState(null, "", "#" + p.toString());
}

function readHash() {
  const p = new URLSearchParams(location.hash.slice(1));
  const int = (key, fallback) => (p.has(key) && Number.isFinite(+p.get(key)) ? Math.trunc(+p.get(key)) : fallback);
  const num = (key, fallback) => (p.has(key) && Number.isFinite(+p.get(key)) ? +p.get(key) : fallback);
  S.primary = Math.min(Math.max(int("run", 0), 0), S.runs.length - 1);
  S.seed = Math.max(int("seed", 0), 0); S.temperature = num("t", 1);
  S.prior = p.get("prior") || ""; S.sampleClass = p.get("class") || "";
  S.label = int("label", 0); S.tool = p.get("view") || "interpolate";
  S.interpA = int("a", 0); S.interpB = int("b", 1); S.spherical = p.has("sph");
  S.dim = int("dim", run().kl_order[0] || 0); S.limit = num("limit", 3);
  S.groupA = p.get("ga") || ""; S.groupB = p.get("gb") || ""; S.scale = num("scale", 2);
  const ints = (key) => new Set((p.get(key) || "").split(".").filter((v) => v !== "").map(Number));
  S.marks = { a: ints("ma"), b: ints("mb") };
  const z = (p.get("z") || "").split(",").filter((v) => v !== "").map(Number);
  return z.length === run().latent_dim && z.every(Number.isFinite) ? z : null;
}

// ------------------------------------------------------------------------------------------ decoding
// One request in flight per run; a z that changes meanwhile is sent when it returns (the latest only).
const inflight = {}, wanted = {};
function decodeAll() {
  S.runs.forEach((r, i) => {
    const img = $(`decoded-${i}`);
    if (!compatible(r)) { img.removeAttribute("src"); img.title = "this run's latent has another size"; return; }
    wanted[i] = true;
    if (!inflight[i]) pump(i);
  });
}
async function pump(i) {
  inflight[i] = true;
  while (wanted[i]) {
    wanted[i] = false;
    const z = S.z.slice(), label = labelFor(S.runs[i]);
    try {
      const { data, roundTrip, serverSeconds } = await api("/api/decode", { z, run: i, label, format: "base64" });
      const img = $(`decoded-${i}`);
      img.src = data.image; img.dataset.z = JSON.stringify(z);
      if (i === S.primary) {
        $("download-png").href = data.image;
        $("latency").textContent = `decode ${(serverSeconds * 1000).toFixed(1)} ms on the server · ${roundTrip.toFixed(1)} ms round trip`;
      }
      status("");
    } catch (error) { status(error.message); }
  }
  inflight[i] = false;
}

function debounce(fn, ms) { let timer; return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); }; }
const laterNeighbours = debounce(() => refreshNeighbours(), 120);
const laterStrips = debounce(() => refreshStrips(), 200);

function zChanged(source) {
  drawMarker(); syncSliders(source); syncCodes(source);
  $("z-value").textContent = JSON.stringify(S.z.map((v) => (gaussian() ? round4(v) : v)));
  $("z-value").dataset.z = JSON.stringify(S.z);
  const blob = new Blob([JSON.stringify({ run: run().name, model: run().model, z: S.z, label: run().conditional ? S.label : null })], { type: "application/json" });
  const link = $("download-z");
  if (link.href.startsWith("blob:")) URL.revokeObjectURL(link.href);
  link.href = URL.createObjectURL(blob);
  decodeAll(); writeHash();
  if (gaussian()) laterNeighbours();
  if (S.tool === "traverse" || S.tool === "labels" || S.tool === "attribute") laterStrips();
}

// ------------------------------------------------------------------------------------------ samples
async function resample() {
  $("seed-value").textContent = S.seed;
  const grids = $("sample-grids");
  await Promise.all(S.runs.map(async (r, i) => {
    const img = $(`sample-grid-${i}`);
    const caption = img.nextElementSibling;
    caption.textContent = r.can_sample ? r.name : `${r.name}: run vaekit train-prior on it to sample`;
    if (!r.can_sample) { img.removeAttribute("src"); return; }
    const body = { run: i, n: 36, seed: S.seed, temperature: S.temperature, format: "base64" };
    if (S.prior && r.priors.includes(S.prior)) body.prior = S.prior;
    if (S.sampleClass !== "" && r.samples_by_class) body.label = +S.sampleClass;
    try {
      const { data } = await api("/api/sample", body);
      img.src = data.image; img.dataset.seed = S.seed;
    } catch (error) { status(error.message); }
  }));
  grids.dataset.seed = S.seed;
  writeHash();
}

// ------------------------------------------------------------------------------------------ the pad
function padPoint(z) { const a = run().pad; return [axisValue(a, 0, z), axisValue(a, 1, z)]; }

async function loadLatents() {
  if (!gaussian() || S.latents[S.primary]) return;
  const { data } = await api(`/api/latents?run=${S.primary}`);
  S.latents[S.primary] = data;
}

function computePadRange() {
  const axes = run().pad, data = S.latents[S.primary];
  if (!axes || !data) { S.padRange = null; return; }
  const points = data.means.map(padPoint);
  const us = points.map((p) => p[0]).sort((a, b) => a - b), vs = points.map((p) => p[1]).sort((a, b) => a - b);
  const q = (xs, f) => xs[Math.floor(f * (xs.length - 1))];
  const cu = (q(us, 0.005) + q(us, 0.995)) / 2, cv = (q(vs, 0.005) + q(vs, 0.995)) / 2;
  // one scale for both axes, so that distances on the pad are distances in latent space
  const half = 0.55 * Math.max(q(us, 0.995) - q(us, 0.005), q(vs, 0.995) - q(vs, 0.005), 1);
  S.padRange = { u0: cu - half, u1: cu + half, v0: cv - half, v1: cv + half, points, labels: data.labels };
  const pad = $("pad");
  Object.entries(S.padRange).slice(0, 4).forEach(([k, v]) => { pad.dataset[k] = v; });
}

function drawPad() {
  const canvas = $("pad"), ctx = canvas.getContext("2d"), box = S.padRange;
  const size = Math.round(canvas.clientWidth * (window.devicePixelRatio || 1)) || 300;
  if (canvas.width !== size) { canvas.width = size; canvas.height = size; }
  ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, size, size);
  if (!box) return;
  ctx.globalAlpha = 0.55;
  box.points.forEach(([u, v], i) => {
    ctx.fillStyle = color(box.labels[i]);
    ctx.fillRect((u - box.u0) / (box.u1 - box.u0) * size - 1.5, (box.v1 - v) / (box.v1 - box.v0) * size - 1.5, 3, 3);
  });
  ctx.globalAlpha = 1;
}

function drawMarker() {
  const marker = $("marker"), box = S.padRange;
  if (!box) { marker.hidden = true; return; }
  const [u, v] = padPoint(S.z);
  const x = (u - box.u0) / (box.u1 - box.u0), y = (box.v1 - v) / (box.v1 - box.v0);
  marker.hidden = false;
  marker.style.left = `${Math.min(Math.max(x, 0), 1) * 100}%`;
  marker.style.top = `${Math.min(Math.max(y, 0), 1) * 100}%`;
  marker.dataset.u = u; marker.dataset.v = v;
  // a z beyond the pad's range is pinned to its edge, drawn hollow
  marker.classList.toggle("outside", x < 0 || x > 1 || y < 0 || y > 1);
}

function padTo(u, v) { moveAlong(run().pad, 0, u); moveAlong(run().pad, 1, v); zChanged("pad"); }

function setupPad() {
  const pad = $("pad");
  const fromEvent = (event) => {
    const rect = pad.getBoundingClientRect(), box = S.padRange;
    const x = (event.clientX - rect.left) / rect.width, y = (event.clientY - rect.top) / rect.height;
    return [box.u0 + x * (box.u1 - box.u0), box.v1 - y * (box.v1 - box.v0)];
  };
  let pressed = false;
  pad.addEventListener("pointerdown", (e) => { if (!S.padRange) return; pressed = true; pad.setPointerCapture(e.pointerId); padTo(...fromEvent(e)); });
  pad.addEventListener("pointermove", (e) => {
    // a mouse decodes where it hovers; a finger or pen where it drags
    if (!S.padRange || (e.pointerType !== "mouse" && !pressed)) return;
    padTo(...fromEvent(e));
  });
  pad.addEventListener("pointerup", () => { pressed = false; });
  pad.addEventListener("pointercancel", () => { pressed = false; });
  pad.addEventListener("keydown", (e) => {
    const steps = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, 1], ArrowDown: [0, -1] }[e.key];
    if (!steps || !S.padRange) return;
    e.preventDefault();
    const box = S.padRange, step = (e.shiftKey ? 0.1 : 0.02) * (box.u1 - box.u0), [u, v] = padPoint(S.z);
    padTo(u + steps[0] * step, v + steps[1] * step);
  });
  window.addEventListener("resize", debounce(() => { drawPad(); drawMarker(); }, 100));
}

// ------------------------------------------------------------------------------------------ sliders and codes
function buildSliders() {
  const box = $("sliders"); box.innerHTML = "";
  const axes = run().sliders;
  if (!axes) return;
  const projections = S.latents[S.primary] ? S.latents[S.primary].means.map((m) => axes.vectors.map((_, i) => axisValue(axes, i, m))) : [];
  axes.names.forEach((name, i) => {
    const id = axes.dims[i] !== null ? axes.dims[i] : i;
    const spread = projections.reduce((m, p) => Math.max(m, Math.abs(p[i])), 0);
    const limit = Math.max(3, Math.ceil(spread * 1.1));
    const label = document.createElement("label");
    label.innerHTML = `<span></span><input type="range" step="0.01"><output></output>`;
    label.querySelector("span").textContent = name;
    const input = label.querySelector("input");
    Object.assign(input, { min: -limit, max: limit, id: `slider-${i}` });
    input.dataset.testid = `latent-slider-${id}`; input.dataset.axis = i;
    input.setAttribute("data-testid", `latent-slider-${id}`);
    input.setAttribute("aria-label", name);
    input.addEventListener("input", () => { moveAlong(axes, i, +input.value); zChanged(`slider-${i}`); });
    box.appendChild(label);
  });
}
function syncSliders(source) {
  const axes = run().sliders;
  if (!axes) return;
  axes.vectors.forEach((_, i) => {
    const input = $(`slider-${i}`), value = axisValue(axes, i, S.z);
    if (source !== `slider-${i}`) input.value = value;
    input.nextElementSibling.textContent = value.toFixed(2);
  });
}

function buildCodes() {
  const box = $("codes"); box.innerHTML = "";
  $("codes-hint").hidden = gaussian();
  if (gaussian()) return;
  const [h, w] = run().grid;
  box.style.gridTemplateColumns = `repeat(${w}, 1fr)`;
  for (let i = 0; i < h * w; i++) {
    const input = document.createElement("input");
    Object.assign(input, { type: "number", min: 0, max: run().codebook_size - 1, step: 1, id: `code-${i}` });
    input.setAttribute("data-testid", `code-${i}`);
    input.setAttribute("aria-label", `code ${Math.floor(i / w)},${i % w}`);
    input.addEventListener("change", () => {
      const v = Math.trunc(+input.value);
      if (!(v >= 0 && v < run().codebook_size)) { status(`codes are whole numbers in 0..${run().codebook_size - 1}`); return; }
      S.z[i] = v; zChanged(`code-${i}`);
    });
    box.appendChild(input);
  }
}
function syncCodes(source) {
  if (gaussian()) return;
  S.z.forEach((v, i) => { if (source !== `code-${i}`) $(`code-${i}`).value = v; });
}

// ------------------------------------------------------------------------------------------ drawing
function setupDrawing() {
  const canvas = $("draw"), ctx = canvas.getContext("2d");
  const clear = () => { ctx.fillStyle = "#000"; ctx.fillRect(0, 0, canvas.width, canvas.height); };
  clear();
  let last = null, lastSent = 0;
  const at = (e) => { const r = canvas.getBoundingClientRect(); return [(e.clientX - r.left) * canvas.width / r.width, (e.clientY - r.top) * canvas.height / r.height]; };
  canvas.addEventListener("pointerdown", (e) => { canvas.setPointerCapture(e.pointerId); last = at(e); stroke(last, last); });
  canvas.addEventListener("pointermove", (e) => {
    if (!last) return;
    const point = at(e); stroke(last, point); last = point;
    if (performance.now() - lastSent > 150) { lastSent = performance.now(); encodeCanvas(); }
  });
  const end = () => { if (last) { last = null; encodeCanvas(); } };
  canvas.addEventListener("pointerup", end); canvas.addEventListener("pointercancel", end);
  function stroke(a, b) {
    Object.assign(ctx, { strokeStyle: "#fff", lineWidth: canvas.width / 13, lineCap: "round", lineJoin: "round" });
    ctx.beginPath(); ctx.moveTo(...a); ctx.lineTo(...b); ctx.stroke();
  }
  $("clear").addEventListener("click", () => {
    clear(); ["reconstruction", "model-input"].forEach((id) => $(id).removeAttribute("src")); $("guess").textContent = "";
  });
  $("upload").addEventListener("change", () => {
    const file = $("upload").files[0];
    if (file) { $("model-input").src = URL.createObjectURL(file); encodeBlob(file); }
  });
  $("frame").addEventListener("change", encodeCanvas);
}

// MNIST's own framing (LeCun et al.): the digit's bounding box scaled into the central 20x20 of 28x28,
// then shifted so that its centre of mass is the image's centre. A drawing that fills the canvas is
// otherwise far from anything the model was trained on.
function mnistFramed(source) {
  const w = source.width, h = source.height, pixels = source.getContext("2d").getImageData(0, 0, w, h).data;
  let x0 = w, y0 = h, x1 = -1, y1 = -1;
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    if (pixels[4 * (y * w + x)] > 0) { x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y); }
  }
  if (x1 < 0) return source;  // nothing drawn
  const scale = (20 / 28) * w / Math.max(x1 - x0 + 1, y1 - y0 + 1);
  const scaled = document.createElement("canvas"); scaled.width = w; scaled.height = h;
  const sctx = scaled.getContext("2d");
  sctx.fillStyle = "#000"; sctx.fillRect(0, 0, w, h);
  const bw = (x1 - x0 + 1) * scale, bh = (y1 - y0 + 1) * scale;
  sctx.drawImage(source, x0, y0, x1 - x0 + 1, y1 - y0 + 1, (w - bw) / 2, (h - bh) / 2, bw, bh);
  const data = sctx.getImageData(0, 0, w, h).data;
  let mass = 0, mx = 0, my = 0;
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) { const v = data[4 * (y * w + x)]; mass += v; mx += v * x; my += v * y; }
  const framed = document.createElement("canvas"); framed.width = w; framed.height = h;
  const fctx = framed.getContext("2d");
  fctx.fillStyle = "#000"; fctx.fillRect(0, 0, w, h);
  fctx.drawImage(scaled, Math.round(w / 2 - mx / mass), Math.round(h / 2 - my / mass));
  return framed;
}

let encoding = null, encodeAgain = false;
async function drawingBlob() {
  const canvas = $("frame").checked ? mnistFramed($("draw")) : $("draw");
  const url = canvas.toDataURL("image/png");
  $("model-input").src = url;  // what the model is given, shown beside its reconstruction
  return (await fetch(url)).blob();
}
function encodeCanvas() {
  if (encoding) { encodeAgain = true; return; }
  $("draw").dataset.busy = "true";  // until the latest stroke is encoded
  encoding = drawingBlob().then(encodeBlob).finally(() => {
    encoding = null;
    if (encodeAgain) { encodeAgain = false; encodeCanvas(); } else $("draw").dataset.busy = "false";
  });
}
async function encodeBlob(blob) {
  const form = new FormData(); form.append("file", blob, "drawing.png");
  const query = `run=${S.primary}` + (run().conditional ? `&label=${S.label}` : "");
  try {
    const { data } = await api(`/api/encode?${query}`, undefined, { method: "POST", body: form });
    const img = $("reconstruction");
    img.src = data.image || data.reconstruction; img.dataset.z = JSON.stringify(data.z);
    const guess = data.guess;
    $("guess").textContent = guess ? `looks like ${guess.name} (${(100 * guess.confidence).toFixed(0)}% by the ${guess.source === "classifier" ? "classifier" : "nearest test images"})` : "";
    if (guess) $("guess").dataset.label = guess.label;
    S.z = data.z; zChanged("draw");
  } catch (error) { status(error.message); }
}

// ------------------------------------------------------------------------------------------ neighbours
async function refreshNeighbours() {
  const box = $("neighbours");
  try {
    const { data } = await api("/api/neighbours", { run: S.primary, z: S.z, k: 8 });
    box.innerHTML = "";
    data.indices.forEach((index, n) => {
      const card = document.createElement("div");
      card.className = "card"; card.dataset.index = index;
      card.classList.toggle("in-a", S.marks.a.has(index)); card.classList.toggle("in-b", S.marks.b.has(index));
      const label = data.labels[n], name = label >= 0 && run().classes[label] !== undefined ? run().classes[label] : "";
      card.innerHTML = `<img alt="test image ${index}"><span></span><br>`;
      card.querySelector("img").src = `/api/test-image/${index}?run=${S.primary}`;
      card.querySelector("span").textContent = `#${index} ${name}`;
      card.querySelector("img").addEventListener("click", () => goTo(index));
      const actions = [["go", () => goTo(index)], ["from", () => setInterp("a", index)], ["to", () => setInterp("b", index)],
        ["A", () => toggleMark("a", index)], ["B", () => toggleMark("b", index)]];
      actions.forEach(([text, act]) => {
        const b = document.createElement("button"); b.type = "button"; b.textContent = text;
        b.title = { go: "move z here", from: "interpolate from this image", to: "interpolate to this image", A: "mark for group A", B: "mark for group B" }[text];
        b.addEventListener("click", act); card.appendChild(b);
      });
      box.appendChild(card);
    });
  } catch (error) { status(error.message); }
}
function goTo(index) { S.z = S.latents[S.primary].means[index].slice(); zChanged("neighbour"); }
function setInterp(which, index) {
  if (which === "a") S.interpA = index; else S.interpB = index;
  selectTool("interpolate");
}
function toggleMark(group, index) {
  const set = S.marks[group];
  if (set.has(index)) set.delete(index); else set.add(index);
  (S.marks[group === "a" ? "b" : "a"]).delete(index);
  if (set.size && S[group === "a" ? "groupA" : "groupB"] === "") S[group === "a" ? "groupA" : "groupB"] = "marked";
  selectTool("attribute"); refreshNeighbours();
}

// ------------------------------------------------------------------------------------------ walks
function selectTool(tool) {
  S.tool = tool;
  document.querySelectorAll("input[name=tool]").forEach((r) => { r.checked = r.value === tool; });
  ["interpolate", "traverse", "attribute"].forEach((t) => { $(`tool-${t}`).hidden = t !== tool; });
  $("interp-a").value = S.interpA; $("interp-b").value = S.interpB; $("spherical").checked = S.spherical;
  $("interp-a-img").src = `/api/test-image/${S.interpA}?run=${S.primary}`;
  $("interp-b-img").src = `/api/test-image/${S.interpB}?run=${S.primary}`;
  $("traverse-dim").value = S.dim; $("traverse-limit").value = S.limit;
  $("group-a").value = S.groupA; $("group-b").value = S.groupB; $("attr-scale").value = S.scale;
  $("marked").textContent = `marked: ${S.marks.a.size} in A, ${S.marks.b.size} in B`;
  writeHash(); refreshStrips();
}

function group(value, marks) {
  if (value === "marked") return { indices: [...marks] };
  return value === "" ? null : { label: +value };
}

let stripGeneration = 0;
async function refreshStrips() {
  const box = $("strips"), generation = ++stripGeneration;
  const requests = S.runs.map((r, i) => {
    if (r.latent !== "gaussian") return null;
    if (S.tool === "interpolate") return ["/api/interpolate", { run: i, start: S.interpA, end: S.interpB, steps: 10, spherical: S.spherical, format: "base64" }];
    if (!compatible(r)) return null;
    const label = labelFor(r);
    if (S.tool === "traverse") return ["/api/traverse", { run: i, z: S.z, dim: S.dim, limit: S.limit, steps: 11, label, format: "base64" }];
    if (S.tool === "labels") return r.conditional ? ["/api/labels", { run: i, z: S.z }] : null;
    const a = group(S.groupA, S.marks.a), b = group(S.groupB, S.marks.b);
    if (!a || !b) return null;
    return ["/api/attribute", { run: i, z: S.z, a, b, scale: S.scale, steps: 9, label, format: "base64" }];
  });
  const figures = await Promise.all(requests.map(async (request, i) => {
    if (!request) return null;
    try {
      if (request[0] === "/api/labels") {  // answered as PNG bytes
        const response = await fetch(request[0], { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(request[1]) });
        if (!response.ok) throw new Error(`${response.status}: ${(await response.json()).detail}`);
        return [i, URL.createObjectURL(await response.blob())];
      }
      return [i, (await api(...request)).data.image];
    } catch (error) { status(error.message); return null; }
  }));
  if (generation !== stripGeneration) return;  // a newer walk was asked for meanwhile
  box.innerHTML = "";
  figures.filter(Boolean).forEach(([i, src]) => {
    const figure = document.createElement("figure");
    figure.innerHTML = `<img data-testid="strip-${i}" alt="walk"><figcaption></figcaption>`;
    Object.assign(figure.querySelector("img").dataset, { tool: S.tool, z: JSON.stringify(S.z) });
    figure.querySelector("img").src = src;
    figure.querySelector("figcaption").textContent = `${S.runs[i].name}: ${S.tool}`;
    box.appendChild(figure);
  });
  if (!box.children.length) box.textContent = S.tool === "attribute" ? "Pick two groups: classes, or images marked A and B among the nearest test images." : "";
}

// ------------------------------------------------------------------------------------------ setup
function options(select, entries) {
  select.innerHTML = "";
  entries.forEach(([value, text]) => { const o = document.createElement("option"); o.value = value; o.textContent = text; select.appendChild(o); });
}

function buildRunViews() {
  const size = (r) => (r.latent === "gaussian" ? `z ${r.latent_dim}` : `${r.grid.join("×")} codes of ${r.codebook_size}`);
  $("runs").textContent = S.runs.map((r) => `${r.name} (${r.model}, ${size(r)}, ${r.dataset})`).join(" · ");
  $("sample-grids").innerHTML = ""; $("decoded").innerHTML = "";
  S.runs.forEach((r, i) => {
    const suffix = i === 0 ? "" : `-${i}`;
    $("sample-grids").insertAdjacentHTML("beforeend", `<figure><img id="sample-grid-${i}" data-testid="sample-grid${suffix}" class="pixels" alt="samples"><figcaption></figcaption></figure>`);
    $("decoded").insertAdjacentHTML("beforeend", `<figure><img id="decoded-${i}" data-testid="decoded${suffix}" class="pixels" alt="decoded z"><figcaption></figcaption></figure>`);
    $("sample-grids").lastChild.querySelector("figcaption").textContent = r.name;
    $("decoded").lastChild.querySelector("figcaption").textContent = r.name;
  });
}

function buildControls() {
  const r = run(), classes = r.classes;
  options($("primary"), S.runs.map((x, i) => [i, x.name])); $("primary").value = S.primary;
  $("primary-label").hidden = S.runs.length < 2;
  const anyFitted = S.runs.some((x) => x.priors.includes("fitted"));
  options($("prior"), [["", anyFitted ? "fitted where fitted" : "N(0, I)"], ["standard", "N(0, I)"], ...(anyFitted ? [["fitted", "fitted"]] : [])]);
  $("prior").value = S.prior;
  const byClass = S.runs.some((x) => x.samples_by_class);
  $("sample-class-label").hidden = !byClass;
  options($("sample-class"), [["", "any"], ...classes.map((c, i) => [i, c])]); $("sample-class").value = S.sampleClass;
  const conditional = S.runs.some((x) => x.conditional);
  $("label-label").hidden = !conditional; $("tool-labels").hidden = !conditional;
  options($("label"), classes.map((c, i) => [i, c])); $("label").value = S.label;
  const traverse = r.kl_order.map((d) => [d, `z${d} · KL ${r.kl[d].toFixed(2)}`]);
  options($("traverse-dim"), traverse);
  const groups = [["", "–"], ...classes.map((c, i) => [i, `class ${c}`]), ["marked", "marked images"]];
  options($("group-a"), groups); options($("group-b"), groups);
  $("frame").checked = ["mnist", "kmnist", "fashion-mnist"].includes(r.dataset) && r.image_shape[0] === 1;
  const max = r.n_reference - 1;
  $("interp-a").max = max; $("interp-b").max = max;
  $("temperature").value = S.temperature; $("temperature-value").textContent = S.temperature.toFixed(2);
  const isGaussian = gaussian();
  ["pad-box", "sliders", "random-z", "origin-z", "walk-section"].forEach((id) => { $(id).hidden = !isGaussian; });
  $("neighbours").hidden = !isGaussian; $("neighbours").previousElementSibling.hidden = !isGaussian;
  $("pad-box").hidden = !isGaussian || !r.pad;
  $("pad-axes").textContent = r.pad ? `pad: ${r.pad.names[0]} → right, ${r.pad.names[1]} ↑ up; ${r.n_reference} test images` : "";
  $("legend").innerHTML = "";
  classes.forEach((c, i) => { const s = document.createElement("span"); s.innerHTML = `<i style="background:${color(i)}"></i>`; s.append(c); $("legend").appendChild(s); });
}

function wire() {
  $("resample").addEventListener("click", () => { S.seed += 1; resample(); });
  $("temperature").addEventListener("change", () => { S.temperature = +$("temperature").value; resample(); });
  $("temperature").addEventListener("input", () => { $("temperature-value").textContent = (+$("temperature").value).toFixed(2); });
  $("prior").addEventListener("change", () => { S.prior = $("prior").value; resample(); });
  $("sample-class").addEventListener("change", () => { S.sampleClass = $("sample-class").value; resample(); });
  $("label").addEventListener("change", () => { S.label = +$("label").value; zChanged("label"); });
  $("primary").addEventListener("change", async () => { S.primary = +$("primary").value; await start(null); });
  $("random-z").addEventListener("click", () => { S.z = S.z.map(() => { const u = 1 - Math.random(), v = Math.random(); return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v); }); zChanged("random"); });
  $("origin-z").addEventListener("click", () => { S.z = S.z.map(() => 0); zChanged("origin"); });
  document.querySelectorAll("input[name=tool]").forEach((r) => r.addEventListener("change", () => selectTool(r.value)));
  $("interp-a").addEventListener("change", () => { S.interpA = clampIndex($("interp-a").value); selectTool("interpolate"); });
  $("interp-b").addEventListener("change", () => { S.interpB = clampIndex($("interp-b").value); selectTool("interpolate"); });
  $("spherical").addEventListener("change", () => { S.spherical = $("spherical").checked; selectTool("interpolate"); });
  $("traverse-dim").addEventListener("change", () => { S.dim = +$("traverse-dim").value; selectTool("traverse"); });
  $("traverse-limit").addEventListener("change", () => { S.limit = Math.min(Math.max(+$("traverse-limit").value || 3, 0.5), 10); selectTool("traverse"); });
  $("group-a").addEventListener("change", () => { S.groupA = $("group-a").value; selectTool("attribute"); });
  $("group-b").addEventListener("change", () => { S.groupB = $("group-b").value; selectTool("attribute"); });
  $("attr-scale").addEventListener("change", () => { S.scale = Math.min(Math.max(+$("attr-scale").value || 1, 0.5), 5); selectTool("attribute"); });
  $("clear-marks").addEventListener("click", () => { S.marks = { a: new Set(), b: new Set() }; selectTool("attribute"); refreshNeighbours(); });
  window.addEventListener("hashchange", () => { if (location.hash.slice(1) !== lastHash()) start(readHash()); });
}
function clampIndex(value) { return Math.min(Math.max(Math.trunc(+value) || 0, 0), run().n_reference - 1); }
function lastHash() { return new URLSearchParams(location.hash.slice(1)).toString(); }

async function initialZ() {
  if (gaussian()) return S.latents[S.primary].means[0].slice();  // the first test image: a real picture
  const image = await (await fetch(`/api/test-image/0?run=${S.primary}`)).blob();
  const form = new FormData(); form.append("file", image, "test.png");
  const { data } = await api(`/api/encode?run=${S.primary}`, undefined, { method: "POST", body: form });
  return data.z;
}

async function start(z) {
  await loadLatents();
  computePadRange(); buildControls(); buildSliders(); buildCodes(); drawPad();
  S.z = z || (await initialZ());
  selectTool(S.tool); zChanged("start"); resample();
  document.body.dataset.ready = "true";
}

async function main() {
  try {
    S.info = (await api("/api/info")).data; S.runs = S.info.runs;
    buildRunViews(); setupPad(); setupDrawing(); wire();
    await start(readHash());
  } catch (error) { status(`the explorer could not start: ${error.message}`); }
}
main();
