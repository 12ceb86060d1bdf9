// vaekit explorer, the drawing canvas (and uploads), encoded by the server; the nearest test images.

import { $, S, api, run, status, zChanged } from "./state.js";
import { selectTool } from "./walks.js";

// ------------------------------------------------------------------------------------------ drawing
export function setupDrawing() {
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
export async function refreshNeighbours() {
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
