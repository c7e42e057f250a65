// facefront studio page: plain JS, no build step, no third-party code. Talks only to its own gateway (/api/*).
"use strict";

const $ = (id) => document.getElementById(id);
const DEBOUNCE_MS = 150;        // a drag emits many moves; one render per pause
const DRAG_DEGREES = 60;        // dragging across the whole face box turns the head this much
const clientId = Math.random().toString(36).slice(2) + Date.now().toString(36);

const state = {
  models: {},          // name -> {name, pose, controls: [{name, min, max}], pose_range, weights}
  photo: null,         // {id, width, height, faces}
  photoUrl: null,
  yaw: 0, pitch: 0, roll: 0,
  controls: {},        // name -> value
  seq: 0,              // the newest render asked for; older answers are dropped
  shownSeq: 0,
  timer: null,
  inFlight: 0,
  started: 0,
  expectedMs: {},      // model -> last latency, to scale the progress bar
  resultUrl: null,
};

function showError(message) {
  const el = $("error");
  el.textContent = message;
  el.hidden = !message;
}

async function errorText(resp) {
  try {
    const body = await resp.json();
    if (body && body.error) return body.error;
  } catch (e) { /* not JSON: fall through */ }
  return `the studio answered ${resp.status}`;
}

async function api(path, options) {
  let resp;
  try {
    resp = await fetch(path, options);
  } catch (e) {
    throw new Error("the studio gateway cannot be reached; is `python -m studio` still running?");
  }
  return resp;
}

function currentModel() { return state.models[$("model").value]; }

function fmt(v) { return (Math.round(v * 10) / 10).toString(); }

// -- models -------------------------------------------------------------------------------------------------
async function loadModels() {
  const resp = await api("/api/models");
  if (!resp.ok) { $("server").textContent = "Triton not reachable"; throw new Error(await errorText(resp)); }
  const body = await resp.json();
  const skipped = Object.entries(body.skipped || {});
  $("server").textContent = `Triton ${body.triton}: ${body.models.length} models` +
    (skipped.length ? ` (${skipped.length} unusable: ${skipped.map(([k, v]) => `${k}: ${v}`).join("; ")})` : "");
  const select = $("model");
  select.textContent = "";
  for (const m of body.models) {
    state.models[m.name] = m;
    const opt = document.createElement("option");
    opt.value = m.name;
    opt.textContent = `${m.name} (weights: ${m.weights}${m.pose ? ", pose" : ""})`;
    select.appendChild(opt);
  }
  if (state.models.mesh3d) select.value = "mesh3d";   // weight-free: useful on any machine
  if (!body.models.length) throw new Error(`the Triton server at ${body.triton} serves no frontalization model`);
  modelChanged(false);
}

function clamp(v, range) { return Math.min(range[1], Math.max(range[0], v)); }

function modelChanged(render) {
  const m = currentModel();
  if (!m) return;
  state.yaw = state.pitch = state.roll = 0;
  state.controls = {};
  const roll = $("roll");
  if (m.pose) {
    roll.min = m.pose_range.roll[0]; roll.max = m.pose_range.roll[1];
  }
  roll.disabled = !m.pose;
  $("stage").classList.toggle("turnable", !!m.pose);
  $("pose-note").textContent = m.pose
    ? `Drag on the photo to turn the head (yaw ${m.pose_range.yaw.join("..")}°, pitch ${m.pose_range.pitch.join("..")}°).`
    : `${m.name} has no pose control: it only frontalizes.`;
  const box = $("controls");
  box.textContent = "";
  for (const c of m.controls) {
    state.controls[c.name] = 0;
    const label = document.createElement("label");
    label.textContent = c.name.replace(/_/g, " ");
    label.htmlFor = `control-${c.name}`;
    label.title = `${c.help ? c.help + ": " : ""}${c.min}..${c.max}, 0 = no change` +
      (c.source === "documented" ? " (documented range; the server did not state one)" : "");
    const input = document.createElement("input");
    const out = document.createElement("output");
    out.textContent = "0";
    if (c.switch) {                              // on/off: 1 or 0 (= no change)
      Object.assign(input, { type: "checkbox", id: `control-${c.name}` });
      input.addEventListener("change", () => {
        state.controls[c.name] = input.checked ? 1 : 0;
        out.textContent = input.checked ? "on" : "off";
        scheduleRender();
      });
      out.textContent = "off";
    } else {
      // step "any" before the value: a stepped grid from min need not contain 0, the rest value
      Object.assign(input, { type: "range", id: `control-${c.name}`, step: "any", min: c.min, max: c.max });
      input.value = 0;
      input.addEventListener("input", () => {
        state.controls[c.name] = Number(input.value);
        out.textContent = fmt(Number(input.value));
        scheduleRender();
      });
    }
    input.dataset.testid = `control-${c.name}`;
    input.dataset.control = c.name;
    input.title = label.title;
    box.append(label, input, out);
  }
  updatePose();
  if (render) scheduleRender(0);
}

function updatePose() {
  $("yaw").textContent = fmt(state.yaw);
  $("pitch").textContent = fmt(state.pitch);
  $("roll").value = state.roll;
  $("roll-value").textContent = fmt(state.roll);
}

// -- upload -------------------------------------------------------------------------------------------------
async function upload(file) {
  if (!file) return;
  showError("");
  $("photo-info").textContent = `checking ${file.name}…`;
  let resp;
  try {
    resp = await api("/api/photos", { method: "POST", body: file,
                                       headers: { "Content-Type": "application/octet-stream" } });
  } catch (e) { showError(e.message); $("photo-info").textContent = ""; return; }
  if (!resp.ok) {
    showError(`${file.name}: ${await errorText(resp)}`);
    $("photo-info").textContent = "";
    return;
  }
  const photo = await resp.json();
  state.photo = photo;
  if (state.photoUrl) URL.revokeObjectURL(state.photoUrl);
  state.photoUrl = URL.createObjectURL(file);
  const img = $("photo");
  img.src = state.photoUrl;
  $("stage").hidden = false;
  drawFaces();
  const f = photo.faces[0];
  $("photo-info").textContent = `${file.name}: ${photo.width}x${photo.height}, ${photo.faces.length} face(s); ` +
    `the largest (green) is used: yaw ${fmt(f.pose.yaw)}°, pitch ${fmt(f.pose.pitch)}°, roll ${fmt(f.pose.roll)}°`;
  for (const id of ["frontalize", "reset", "compare"]) $(id).disabled = false;
  $("tiles").textContent = "";
  $("compare-panel").hidden = true;
}

function drawFaces() {
  const stage = $("stage");
  for (const el of stage.querySelectorAll(".facebox")) el.remove();
  const p = state.photo;
  p.faces.forEach((f, i) => {
    const [x0, y0, x1, y1] = f.box;
    const el = document.createElement("div");
    el.className = "facebox " + (i === 0 ? "primary" : "other");
    el.dataset.testid = i === 0 ? "face-box" : "face-box-other";
    el.style.left = `${(100 * x0) / p.width}%`;
    el.style.top = `${(100 * y0) / p.height}%`;
    el.style.width = `${(100 * (x1 - x0)) / p.width}%`;
    el.style.height = `${(100 * (y1 - y0)) / p.height}%`;
    stage.appendChild(el);
  });
}

function setupDrop() {
  const drop = $("drop");
  $("upload").addEventListener("change", (e) => upload(e.target.files[0]));
  for (const ev of ["dragenter", "dragover"]) {
    drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.add("over"); });
  }
  for (const ev of ["dragleave", "drop"]) {
    drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.remove("over"); });
  }
  drop.addEventListener("drop", (e) => upload(e.dataTransfer.files[0]));
}

// -- drag to turn -------------------------------------------------------------------------------------------
function setupTurn() {
  const stage = $("stage");
  let start = null;
  stage.addEventListener("pointerdown", (e) => {
    const m = currentModel();
    if (!m || !m.pose || !state.photo) return;
    const rect = $("photo").getBoundingClientRect();
    const [x0, y0, x1, y1] = state.photo.faces[0].box;
    const scale = rect.width / state.photo.width;   // displayed pixels per photo pixel
    start = { x: e.clientX, y: e.clientY, yaw: state.yaw, pitch: state.pitch,
              w: Math.max(20, (x1 - x0) * scale), h: Math.max(20, (y1 - y0) * scale) };
    stage.setPointerCapture(e.pointerId);
    stage.classList.add("dragging");
    e.preventDefault();
  });
  stage.addEventListener("pointermove", (e) => {
    if (!start) return;
    const m = currentModel();
    // right = yaw toward image right (yaw > 0); up = chin up (pitch > 0): the project's pose convention
    state.yaw = clamp(start.yaw + ((e.clientX - start.x) / start.w) * DRAG_DEGREES, m.pose_range.yaw);
    state.pitch = clamp(start.pitch - ((e.clientY - start.y) / start.h) * DRAG_DEGREES, m.pose_range.pitch);
    state.yaw = Math.round(state.yaw * 10) / 10;
    state.pitch = Math.round(state.pitch * 10) / 10;
    updatePose();
    scheduleRender();
  });
  const end = () => { start = null; stage.classList.remove("dragging"); };
  stage.addEventListener("pointerup", end);
  stage.addEventListener("pointercancel", end);
  $("roll").addEventListener("input", (e) => {
    state.roll = Number(e.target.value);
    updatePose();
    scheduleRender();
  });
}

// -- render -------------------------------------------------------------------------------------------------
function scheduleRender(delay = DEBOUNCE_MS) {
  if (!state.photo) return;
  clearTimeout(state.timer);
  state.timer = setTimeout(render, delay);
}

function nonZeroControls() {
  const out = {};
  for (const [k, v] of Object.entries(state.controls)) if (v !== 0) out[k] = v;
  return out;
}

async function render() {
  const m = currentModel();
  if (!m || !state.photo) return;
  const seq = ++state.seq;
  const request = { photo: state.photo.id, model: m.name, yaw: state.yaw, pitch: state.pitch, roll: state.roll,
                    controls: nonZeroControls(), client: clientId, seq };
  startProgress(m.name);
  const t0 = performance.now();
  let resp;
  try {
    resp = await api("/api/render", { method: "POST", headers: { "Content-Type": "application/json" },
                                      body: JSON.stringify(request) });
  } catch (e) {
    if (seq === state.seq) { stopProgress(); showError(e.message); }
    return;
  }
  if (resp.status === 409) return;              // the gateway dropped it for a newer one
  if (seq !== state.seq) return;                // stale: a newer render was asked for meanwhile
  if (!resp.ok) { stopProgress(); showError(await errorText(resp)); return; }
  const blob = await resp.blob();
  if (seq !== state.seq) return;
  const ms = performance.now() - t0;
  stopProgress();
  showError("");
  state.expectedMs[m.name] = ms;
  state.shownSeq = seq;
  if (state.resultUrl) URL.revokeObjectURL(state.resultUrl);
  state.resultUrl = URL.createObjectURL(blob);
  const img = $("result");
  img.src = state.resultUrl;
  img.hidden = false;
  img.dataset.seq = seq;
  img.dataset.yaw = request.yaw;
  img.dataset.pitch = request.pitch;
  img.dataset.model = m.name;
  $("result-empty").hidden = true;
  const triton = resp.headers.get("X-Triton-Ms");
  $("latency").textContent = `${Math.round(ms)} ms` + (triton ? ` (Triton ${Math.round(Number(triton))} ms)` : "");
  const dl = $("download");
  dl.href = state.resultUrl;
  dl.download = `facefront-${m.name}-yaw${fmt(request.yaw)}-pitch${fmt(request.pitch)}.png`;
  dl.classList.remove("disabled");
}

function startProgress(model) {
  state.started = performance.now();
  const expected = state.expectedMs[model] || 1000;
  const bar = $("progress");
  clearInterval(state.progressTimer);
  state.progressTimer = setInterval(() => {
    const elapsed = performance.now() - state.started;
    if (elapsed < 300) return;                  // fast renders show no bar at all
    bar.hidden = false;
    if (state.expectedMs[model]) bar.value = Math.min(0.95, elapsed / expected);
    else bar.removeAttribute("value");          // no earlier render of this model: indeterminate
    $("progress-text").textContent = `rendering… ${(elapsed / 1000).toFixed(1)} s` +
      (state.expectedMs[model] ? ` of ~${(expected / 1000).toFixed(1)} s` : "");
  }, 100);
}

function stopProgress() {
  clearInterval(state.progressTimer);
  $("progress").hidden = true;
  $("progress-text").textContent = "";
}

// -- compare ------------------------------------------------------------------------------------------------
async function compareAll() {
  if (!state.photo) return;
  showError("");
  const tiles = $("tiles");
  tiles.textContent = "";
  $("compare-panel").hidden = false;
  const photoId = state.photo.id;
  // One model at a time: run together they would share the CPU and each latency would include the others'.
  const jobs = Object.values(state.models).map((m) => {
    const tile = document.createElement("div");
    tile.className = "tile";
    tile.dataset.testid = "compare-tile";
    tile.dataset.model = m.name;
    const h = document.createElement("h3");
    h.textContent = `${m.name} (weights: ${m.weights})`;
    const img = document.createElement("img");
    img.alt = `${m.name} output`;
    const lat = document.createElement("p");
    lat.textContent = "queued…";
    lat.dataset.testid = "compare-latency";
    const res = document.createElement("p");
    res.dataset.testid = "compare-residual";
    tile.append(h, img, lat, res);
    tiles.appendChild(tile);
    return { m, tile, img, lat, res };
  });
  for (const { m, tile, img, lat, res } of jobs) {
    if (!state.photo || state.photo.id !== photoId) return;   // a new photo was uploaded meanwhile
    lat.textContent = "running…";
    const t0 = performance.now();
    let resp;
    try {
      resp = await api("/api/compare", { method: "POST", headers: { "Content-Type": "application/json" },
                                         body: JSON.stringify({ photo: photoId, model: m.name }) });
    } catch (e) { lat.textContent = e.message; tile.classList.add("failed"); tile.dataset.done = "1"; continue; }
    if (!resp.ok) {
      lat.textContent = await errorText(resp);
      tile.classList.add("failed");
      tile.dataset.done = "1";
      continue;
    }
    const body = await resp.json();
    img.src = body.image;
    lat.textContent = `latency ${Math.round(body.latency_ms)} ms (page: ${Math.round(performance.now() - t0)} ms)`;
    res.textContent = body.residual
      ? `residual yaw ${fmt(body.residual.yaw)}°, pitch ${fmt(body.residual.pitch)}°`
      : `residual: ${body.note || "not measured"}`;
    tile.dataset.done = "1";
  }
}

// -- wiring -------------------------------------------------------------------------------------------------
function init() {
  setupDrop();
  setupTurn();
  $("model").addEventListener("change", () => modelChanged(!$("result").hidden));
  $("frontalize").addEventListener("click", () => {
    state.yaw = state.pitch = state.roll = 0;
    updatePose();
    scheduleRender(0);
  });
  $("reset").addEventListener("click", () => modelChanged(true));
  $("compare").addEventListener("click", compareAll);
  loadModels().catch((e) => showError(e.message));
}

document.addEventListener("DOMContentLoaded", init);
