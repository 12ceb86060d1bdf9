// vaekit explorer, walks: interpolation, traversal, every label, attribute vectors; one strip per run.

import { $, S, api, compatible, labelFor, status, writeHash } from "./state.js";

// ------------------------------------------------------------------------------------------ walks
export function selectTool(tool) {
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
export async function refreshStrips() {
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
