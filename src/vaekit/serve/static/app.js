// vaekit explorer, the entry point: decoding, samples, controls, start-up. The page is plain ES modules
// over vaekit serve's JSON API, DOM and 2-D canvas only, nothing fetched from anywhere but this server.

import { refreshNeighbours, setupDrawing } from "./draw.js";
import {
  buildCodes, buildSliders, computePadRange, drawMarker, drawPad, loadLatents, setupPad, syncCodes, syncSliders,
} from "./latent.js";
import {
  $, S, api, color, compatible, debounce, gaussian, labelFor, onZChange, readHash, round4, run, status, writeHash,
  zChanged,
} from "./state.js";
import { refreshStrips, selectTool } from "./walks.js";

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

const laterNeighbours = debounce(() => refreshNeighbours(), 120);
const laterStrips = debounce(() => refreshStrips(), 200);

onZChange((source) => {
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
});

// ------------------------------------------------------------------------------------------ samples
async function resample() {
  $("seed-value").textContent = S.seed;
  const grids = $("sample-grids");
  await Promise.all(S.runs.map(async (r, i) => {
    const img = $(`sample-grid-${i}`);
    const caption = img.nextElementSibling;
    caption.textContent = r.can_sample ? r.name : `${r.name}: run vaekit train-prior on it to sample`;
    if (!r.can_sample) { img.removeAttribute("src"); return; }
    // until the slider moves, each run samples at its own temperature (an hvae's chosen ones)
    const body = { run: i, n: 36, seed: S.seed, format: "base64" };
    if (S.temperature !== null) body.temperature = S.temperature;
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

// ------------------------------------------------------------------------------------------ setup
function options(select, entries) {
  select.innerHTML = "";
  entries.forEach(([value, text]) => { const o = document.createElement("option"); o.value = value; o.textContent = text; select.appendChild(o); });
}

function buildRunViews() {
  const size = (r) => (r.latent !== "gaussian" ? `${r.grid.join("×")} codes of ${r.codebook_size}`
    : r.latent_groups ? `z ${r.latent_dim}: the top of ${r.latent_groups} groups, the rest at their prior means`
    : `z ${r.latent_dim}`);
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
  options($("prior"), [["", anyFitted ? "fitted where fitted" : "trained with"], ["trained", "trained with"], ...(anyFitted ? [["fitted", "fitted"]] : [])]);
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
  $("temperature").value = S.temperature ?? 1;
  $("temperature-value").textContent = S.temperature === null ? "the run's" : S.temperature.toFixed(2);
  const isGaussian = gaussian();
  ["sliders", "random-z", "origin-z", "walk-section"].forEach((id) => { $(id).hidden = !isGaussian; });
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
  // a URL pasted or edited by hand (the page's own rewrites use replaceState, which fires no hashchange)
  window.addEventListener("hashchange", () => start(readHash()));
}
function clampIndex(value) { return Math.min(Math.max(Math.trunc(+value) || 0, 0), run().n_reference - 1); }

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