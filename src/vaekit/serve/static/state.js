// vaekit explorer, shared state and helpers: the state (z, seed, view) lives in the URL's hash so a view
// can be shared; every change rewrites it, and loading a URL with one restores it.

export const $ = (id) => document.getElementById(id);
const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
  "#bcbd22", "#17becf"];
export const S = {
  info: null, runs: [], primary: 0, z: [], label: 0, seed: 0, temperature: null, prior: "", sampleClass: "",
  tool: "interpolate", interpA: 0, interpB: 1, spherical: false, dim: 0, limit: 3, groupA: "", groupB: "",
  scale: 2, marks: { a: new Set(), b: new Set() }, latents: {}, padRange: null,
};


// ------------------------------------------------------------------------------------------ helpers
export function status(message) { $("status").textContent = message || ""; }

export async function api(path, body, options = {}) {
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

export function color(label) {
  if (label < 0) return "#888";
  return label < PALETTE.length ? PALETTE[label] : `hsl(${(label * 137.5) % 360}, 65%, 50%)`;
}
export const run = () => S.runs[S.primary];
export const gaussian = () => run().latent === "gaussian";
export const dot = (a, b) => a.reduce((sum, v, i) => sum + v * b[i], 0);
export function axisValue(axes, i, z) { return dot(z.map((v, j) => v - axes.origin[j]), axes.vectors[i]); }
export function moveAlong(axes, i, value) {
  const delta = value - axisValue(axes, i, S.z);
  S.z = S.z.map((v, j) => v + delta * axes.vectors[i][j]);
}
export function compatible(r) { return r.latent_dim === run().latent_dim && r.latent === run().latent; }
export function labelFor(r) { return r.conditional ? S.label : undefined; }
export function round4(v) { return Math.round(v * 1e4) / 1e4; }
export function debounce(fn, ms) { let timer; return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); }; }

// Every change of z goes through here; app.js registers what follows it (decode, marker, URL, ...).
let zListener = () => {};
export function onZChange(listener) { zListener = listener; }
export function zChanged(source) { zListener(source); }

// ------------------------------------------------------------------------------------------ URL state
export function writeHash() {
  const p = new URLSearchParams();
  p.set("z", S.z.map((v) => (gaussian() ? round4(v) : v)).join(","));
  p.set("run", S.primary); p.set("seed", S.seed);
  if (S.temperature !== null) p.set("t", S.temperature);  // none: each run's own
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

export function readHash() {
  const p = new URLSearchParams(location.hash.slice(1));
  const int = (key, fallback) => (p.has(key) && Number.isFinite(+p.get(key)) ? Math.trunc(+p.get(key)) : fallback);
  const num = (key, fallback) => (p.has(key) && Number.isFinite(+p.get(key)) ? +p.get(key) : fallback);
  S.primary = Math.min(Math.max(int("run", 0), 0), S.runs.length - 1);
  S.seed = Math.max(int("seed", 0), 0); S.temperature = num("t", null);
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
