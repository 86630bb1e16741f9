// roadedge console: polls the preview server's /api/* and draws the lists, the stats and the map. No build step,
// nothing from the internet: the map is a plain canvas (no tiles).
//
// The map's projection (tests/test_console_browser.py recomputes it): a local equirectangular projection around
// the centre of the bounding box of the drive track and the defects (lat0, lon0):
//   x = R * (lon - lon0) * cos(lat0), y = R * (lat - lat0)       (radians, R = 6371008.8 m: metres east, north)
//   k = min((W - 2 * PAD) / spanX, (H - 2 * PAD) / spanY)         (pixels per metre; spans at least MIN_SPAN_M)
//   px = W / 2 + x * k, py = H / 2 - y * k                        (CSS pixels of the canvas, W x H)
// window.roadedgeMap holds the last drawing: {lat0, lon0, k, width, height, pad, minSpan, markers: [{id, label,
// lat, lon, x, y}]}.
"use strict";

const R = 6371008.8;
const PAD = 24;
const MIN_SPAN_M = 50;
const POLL_MS = 2000;
const state = { classes: {}, defects: [], events: [], track: [], label: "", since: "", generation: 0 };

function $(id) { return document.getElementById(id); }

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "style") node.style.cssText = value; else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

function fmt(value, digits) {
  return value === null || value === undefined ? "-" : Number(value).toFixed(digits);
}

function when(iso) { return iso ? iso.replace("T", " ").replace(/\.\d+Z$/, "Z") : "-"; }

function classCell(label) {
  const known = state.classes[label];
  return el("td", { title: known ? known.name : label },
    el("span", { class: "swatch", style: "background:" + colorOf(label) }), label + (known ? " " + known.name : ""));
}

function colorOf(label) { return (state.classes[label] || { color: "#c8c8c8" }).color; }

function filterQuery() {
  const params = new URLSearchParams();
  if (state.label) params.set("class", state.label);
  if (state.since) params.set("since", state.since);
  const text = params.toString();
  return text ? "?" + text : "";
}

async function getJson(path) {
  const response = await fetch(path, { cache: "no-store", credentials: "same-origin" });
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

// -- stats -----------------------------------------------------------------------------------------------------
function showStats(stats) {
  $("stat-fps").textContent = fmt(stats.fps, 1);
  $("stat-frames").textContent = stats.frames;
  $("stat-detections").textContent = stats.detections;
  $("stat-dropped").textContent = stats.dropped_frames;
  $("stat-outbox").textContent = stats.outbox_depth === null ? "no MQTT" : stats.outbox_depth + " waiting";
  $("stat-kvs").textContent = stats.kvs_store_depth === null || stats.kvs_store_depth === undefined
    ? "no Kinesis" : stats.kvs_store_depth + " fragments stored";
  const gps = stats.gps;
  $("stat-gps").textContent = gps ? gps.fix + (gps.age_s === null || gps.age_s === undefined ? "" : " (" + fmt(gps.age_s, 1) + " s old)") : "no GPS";
  $("stat-gps").className = gps && (gps.fix === "stale" || gps.fix === "none") ? "stale" : "";
  $("stat-position").textContent = gps && gps.lat !== null && gps.lat !== undefined
    ? fmt(gps.lat, 6) + ", " + fmt(gps.lon, 6) + (gps.speed === null || gps.speed === undefined ? "" : ", " + fmt(gps.speed * 3.6, 0) + " km/h")
    : "-";
}

// -- lists -----------------------------------------------------------------------------------------------------
function showDefects(defects) {
  const body = $("defects").tBodies[0];
  body.replaceChildren(...defects.map((d) => {
    const thumb = d.snapshot_url ? el("img", { class: "thumb", src: d.snapshot_url, alt: "snapshot of defect " + d.id }) : "-";
    return el("tr", { "data-id": d.id, "data-label": d.label },
      el("td", {}, thumb), classCell(d.label), el("td", {}, d.severity ?? "-"),
      el("td", {}, d.sightings ?? "-"), el("td", {}, d.passes ?? "-"),
      el("td", {}, d.lat === null || d.lat === undefined ? "-" : fmt(d.lat, 6) + ", " + fmt(d.lon, 6)), el("td", {}, when(d.last_seen)));
  }));
  $("defects-count").textContent = "(" + defects.length + ")";
}

function showEvents(events) {
  const body = $("events").tBodies[0];
  body.replaceChildren(...events.map((e) => el("tr", { "data-track": e.track_id, "data-label": e.label, "data-event": e.event },
    el("td", {}, e.track_id), classCell(e.label), el("td", {}, e.event), el("td", {}, fmt(e.score, 2)),
    el("td", {}, e.ground ? fmt(e.ground.lat, 6) + ", " + fmt(e.ground.lon, 6) : "-"), el("td", {}, when(e.last_seen)))));
  $("events-count").textContent = "(" + events.length + ")";
}

// -- map -------------------------------------------------------------------------------------------------------
function projection(points, width, height) {
  let minLat = Infinity, maxLat = -Infinity, minLon = Infinity, maxLon = -Infinity;
  for (const p of points) {
    minLat = Math.min(minLat, p.lat); maxLat = Math.max(maxLat, p.lat);
    minLon = Math.min(minLon, p.lon); maxLon = Math.max(maxLon, p.lon);
  }
  const lat0 = (minLat + maxLat) / 2, lon0 = (minLon + maxLon) / 2;
  const cos0 = Math.cos(lat0 * Math.PI / 180);
  const spanX = Math.max(R * (maxLon - minLon) * Math.PI / 180 * cos0, MIN_SPAN_M);
  const spanY = Math.max(R * (maxLat - minLat) * Math.PI / 180, MIN_SPAN_M);
  const k = Math.min((width - 2 * PAD) / spanX, (height - 2 * PAD) / spanY);
  const place = (lat, lon) => ({
    x: width / 2 + R * (lon - lon0) * Math.PI / 180 * cos0 * k,
    y: height / 2 - R * (lat - lat0) * Math.PI / 180 * k,
  });
  return { lat0, lon0, k, place };
}

function niceLength(metres) {
  const power = Math.pow(10, Math.floor(Math.log10(metres)));
  for (const step of [5, 2, 1]) if (step * power <= metres) return step * power;
  return power;
}

function drawScaleBar(ctx, k, height) {
  const metres = niceLength(120 / k);
  const length = metres * k, x = 12, y = height - 14;
  ctx.strokeStyle = "#222"; ctx.lineWidth = 2;
  ctx.beginPath(); ctx.moveTo(x, y - 5); ctx.lineTo(x, y); ctx.lineTo(x + length, y); ctx.lineTo(x + length, y - 5); ctx.stroke();
  ctx.fillStyle = "#222"; ctx.font = "12px sans-serif";
  ctx.fillText(metres >= 1000 ? metres / 1000 + " km" : metres + " m", x + length + 6, y);
}

function drawMap() {
  const canvas = $("map");
  const width = canvas.clientWidth, height = canvas.clientHeight, ratio = window.devicePixelRatio || 1;
  canvas.width = Math.round(width * ratio); canvas.height = Math.round(height * ratio);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  const defects = state.defects.filter((d) => d.lat !== null && d.lon !== null);
  const points = state.track.concat(defects);
  const info = { width, height, pad: PAD, minSpan: MIN_SPAN_M, markers: [], trackPoints: state.track.length };
  if (!points.length) {
    $("map-note").textContent = "no position yet (a run with --gps shows the drive and the defects here)";
    $("map-markers").replaceChildren();
    window.roadedgeMap = info;
    return;
  }
  const proj = projection(points, width, height);
  Object.assign(info, { lat0: proj.lat0, lon0: proj.lon0, k: proj.k });
  ctx.lineWidth = 3; ctx.lineJoin = "round";
  for (let i = 1; i < state.track.length; i++) {  // segment by segment: a stale stretch is drawn dashed, in orange
    const a = proj.place(state.track[i - 1].lat, state.track[i - 1].lon), b = proj.place(state.track[i].lat, state.track[i].lon);
    ctx.strokeStyle = state.track[i].stale ? "#e0a040" : "#3a6ea5";
    ctx.setLineDash(state.track[i].stale ? [6, 4] : []);
    ctx.beginPath(); ctx.moveTo(a.x, a.y); ctx.lineTo(b.x, b.y); ctx.stroke();
  }
  ctx.setLineDash([]);
  if (state.track.length) {  // the vehicle's last point
    const last = proj.place(state.track[state.track.length - 1].lat, state.track[state.track.length - 1].lon);
    ctx.fillStyle = "#3a6ea5"; ctx.beginPath(); ctx.arc(last.x, last.y, 4, 0, 2 * Math.PI); ctx.fill();
  }
  for (const d of defects) {
    const at = proj.place(d.lat, d.lon);
    ctx.fillStyle = colorOf(d.label); ctx.strokeStyle = "#111"; ctx.lineWidth = 1.5;
    ctx.beginPath(); ctx.arc(at.x, at.y, 7, 0, 2 * Math.PI); ctx.fill(); ctx.stroke();
    info.markers.push({ id: d.id, label: d.label, lat: d.lat, lon: d.lon, x: at.x, y: at.y });
  }
  drawScaleBar(ctx, proj.k, height);
  $("map-markers").replaceChildren(...info.markers.map((m) => el("li",
    { "data-id": m.id, "data-label": m.label, "data-x": m.x.toFixed(2), "data-y": m.y.toFixed(2) }, m.label)));
  $("map-note").textContent = defects.length + " defects, " + state.track.length + " track points";
  window.roadedgeMap = info;
}

// -- polling ---------------------------------------------------------------------------------------------------
async function refreshState() {
  const body = await getJson("/api/state");
  state.classes = body.classes;
  $("device").textContent = body.device || "";
  $("reports").hidden = !body.registry;  // no defects output in this run: nothing to report
  const select = $("class-filter");
  if (select.options.length === 1) {
    for (const [code, entry] of Object.entries(body.classes)) select.append(el("option", { value: code }, code + " " + entry.name));
  }
  showStats(body.stats);
}

async function refreshData() {
  const q = filterQuery();
  const generation = ++state.generation;  // a filter change while a poll is under way: only the newest answer counts
  try {
    const [events, defects, track] = await Promise.all([getJson("/api/events" + q), getJson("/api/defects" + q), getJson("/api/track")]);
    if (generation !== state.generation) return;
    $("filter-error").textContent = "";
    state.events = events.events; state.defects = defects.defects; state.track = track.track;
  } catch (err) {
    if (generation === state.generation) $("filter-error").textContent = err.message;
    return;
  }
  showEvents(state.events);
  showDefects(state.defects);
  drawMap();
  for (const kind of ["geojson", "csv", "gpx"]) {
    const params = new URLSearchParams(q.slice(1));
    params.set("format", kind);
    $("report-" + kind).href = "/report?" + params.toString();
  }
  document.body.dataset.loaded = String(Number(document.body.dataset.loaded || 0) + 1);
}

async function tick() {
  try {
    await refreshState();
    await refreshData();
  } catch (err) {
    $("filter-error").textContent = "console: " + err.message;
  }
  setTimeout(tick, POLL_MS);
}

document.addEventListener("DOMContentLoaded", () => {
  $("class-filter").addEventListener("change", (e) => { state.label = e.target.value; refreshData(); });
  $("since-filter").addEventListener("change", (e) => { state.since = e.target.value; refreshData(); });
  tick();
});
