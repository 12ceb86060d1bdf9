// vaekit explorer, the latent pad (a scatter of the test latents under a marker), the sliders and a
// VQ-VAE's code grid.

import { $, S, api, axisValue, color, debounce, gaussian, moveAlong, run, status, zChanged } from "./state.js";

function padPoint(z) { const a = run().pad; return [axisValue(a, 0, z), axisValue(a, 1, z)]; }

export async function loadLatents() {
  if (!gaussian() || S.latents[S.primary]) return;
  const { data } = await api(`/api/latents?run=${S.primary}`);
  S.latents[S.primary] = data;
}

export function computePadRange() {
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

export function drawPad() {
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

export function drawMarker() {
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

export function setupPad() {
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
export function buildSliders() {
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
    input.setAttribute("aria-label", name);
    input.addEventListener("input", () => { moveAlong(axes, i, +input.value); zChanged(`slider-${i}`); });
    box.appendChild(label);
  });
}
export function syncSliders(source) {
  const axes = run().sliders;
  if (!axes) return;
  axes.vectors.forEach((_, i) => {
    const input = $(`slider-${i}`), value = axisValue(axes, i, S.z);
    if (source !== `slider-${i}`) input.value = value;
    input.nextElementSibling.textContent = value.toFixed(2);
  });
}

export function buildCodes() {
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
export function syncCodes(source) {
  if (gaussian()) return;
  S.z.forEach((v, i) => { if (source !== `code-${i}`) $(`code-${i}`).value = v; });
}
