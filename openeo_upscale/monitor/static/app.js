/* openeo-upscale dashboard: fetches the tiles and the geography around them (coastlines, borders,
 * rivers, lakes: from this app, never from outside), then polls states and the overview (and the
 * tiles again when a state arrives for a task it has not seen: tasks added by a split).
 * DOM contract (see openeo_upscale/monitor/dashboard.py): after each update document.body carries
 * data-updates, data-tasks, data-done, data-finished and data-states. */
"use strict";

const POLL_MS = 2000;

const view = {
  config: null,
  ids: [], lon: [], lat: [], tileIds: [], rings: [], index: new Map(),
  state: [], backend: [], job: [], attempts: [], duration: [], costs: [],
  stateNames: [], cursor: null, updates: 0, dirty: true, centres: false,
  // The tiles' bounds [west, south, east, north] and, once fetched, /api/geography's answer.
  bounds: null, geography: null,
  // Failure rows whose attempts are shown (task id -> jobs, null while loading, or an error text):
  // kept across the redraws of every poll.
  overview: null, expanded: new Map(),
};

async function getJSON(url) {
  const response = await fetch(url, { cache: "no-store" });
  if (!response.ok) throw new Error(url + ": HTTP " + response.status);
  return response.json();
}

function outerRings(geometry) {
  if (geometry.type === "Point") return [[geometry.coordinates, geometry.coordinates]];
  if (geometry.type === "Polygon") return [geometry.coordinates[0]];
  if (geometry.type === "MultiPolygon") return geometry.coordinates.map((p) => p[0]);
  return [];
}

function loadTiles(collection) {
  for (const feature of collection.features) {
    if (view.index.has(feature.id)) continue;  // loaded before: tiles are only ever added
    const rings = outerRings(feature.geometry);
    let sx = 0, sy = 0, n = 0;
    for (const ring of rings) {
      for (let k = 0; k < ring.length - 1; k++) { sx += ring[k][0]; sy += ring[k][1]; n++; }
    }
    if (!n) continue;
    view.index.set(feature.id, view.ids.length);
    view.ids.push(feature.id);
    view.tileIds.push(feature.properties.tile_id);
    view.lon.push(sx / n);
    view.lat.push(sy / n);
    view.rings.push(rings);
    for (const ring of rings) {
      for (const [x, y] of ring) {
        const b = view.bounds || (view.bounds = [x, y, x, y]);
        b[0] = Math.min(b[0], x); b[1] = Math.min(b[1], y); b[2] = Math.max(b[2], x); b[3] = Math.max(b[3], y);
      }
    }
    view.state.push(0); view.backend.push(null); view.job.push(null);
    view.attempts.push(0); view.duration.push(null); view.costs.push(null);
  }
}

function applyStates(payload) {
  view.stateNames = payload.states;
  for (let k = 0; k < payload.id.length; k++) {
    const i = view.index.get(payload.id[k]);
    if (i === undefined) continue;
    view.state[i] = payload.state[k];
    const b = payload.backend[k];
    view.backend[i] = b < 0 ? null : payload.backends[b];
    view.job[i] = payload.job_id[k];
    view.attempts[i] = payload.attempts[k];
    view.duration[i] = payload.duration_s[k];
    view.costs[i] = payload.costs[k];
  }
  if (payload.id.length) view.dirty = true;
  view.cursor = payload.cursor;
}

function fmtDuration(s) {
  if (s === null || s === undefined) return "–";
  s = Math.round(s);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  return h ? `${h}h ${m}m` : m ? `${m}m ${r}s` : `${r}s`;
}

function fmtNumber(x, digits) {
  return x === null || x === undefined ? "–" : Number(x).toLocaleString(undefined, { maximumFractionDigits: digits });
}

// The geography is fetched once, for the first tiles' bounds (tasks added later lie within them).
// Without it the map still draws: the tiles matter, the lines beneath them only help.
async function loadGeography() {
  if (view.config.tiles_url || !view.bounds || view.geography) return;
  const el = document.getElementById("map"), m = MAP_MARGIN;
  // The plot area's width over its height (the legend below takes about 40 px): the view fills it.
  const aspect = Math.max(el.clientWidth - m.l - m.r, 100) / Math.max(el.clientHeight - m.t - m.b - 40, 100);
  try {
    view.geography = await getJSON("/api/geography?bbox=" + view.bounds.map((v) => v.toFixed(6)).join(",") +
      "&aspect=" + aspect.toFixed(3));
    view.dirty = true;
  } catch (err) {
    console.warn("no geography beneath the map:", err);
  }
}

function geographyTraces() {
  const g = view.geography;
  if (!g || view.config.tiles_url) return [];
  return Object.entries(g.layers).map(([name, lines]) => ({
    type: "scatter", mode: "lines", x: lines.x, y: lines.y, name, line: g.styles[name],
    hoverinfo: "skip", showlegend: false, meta: { geography: name } }));
}

// Raw numbers formatted by plotly at hover time: formatting 100,000 tiles up front (toLocaleString
// and friends) cost most of a second on every redraw.
const HOVER = "<b>%{customdata[0]}</b><br>state: %{customdata[1]}<br>backend: %{customdata[2]}" +
  "<br>job: %{customdata[3]}<br>attempts: %{customdata[4]}<br>duration: %{customdata[5]:,.0f} s" +
  "<br>credits: %{customdata[6]:,.3f}<extra></extra>";

function mapTraces() {
  const names = view.stateNames, colors = view.config.colors, basemap = !!view.config.tiles_url;
  const groups = names.map(() => ({ x: [], y: [], data: [], px: [], py: [] }));
  const polygons = !view.centres;
  for (let i = 0; i < view.ids.length; i++) {
    const g = groups[view.state[i]];
    g.x.push(view.lon[i]); g.y.push(view.lat[i]);
    g.data.push([view.tileIds[i], names[view.state[i]], view.backend[i] || "–", view.job[i] || "–",
      view.attempts[i], view.duration[i], view.costs[i]]);
    if (polygons) {
      for (const ring of view.rings[i]) {
        for (const p of ring) { g.px.push(p[0]); g.py.push(p[1]); }
        g.px.push(null); g.py.push(null);
      }
    }
  }
  const traces = geographyTraces();  // first: drawn beneath the tiles
  names.forEach((name, s) => {
    const g = groups[s];
    if (polygons) {
      const outline = { mode: "lines", fill: "toself", fillcolor: colors[name], line: { color: "#555", width: 0.5 },
        hoverinfo: "skip", name: `${name} (${g.x.length})`, legendgroup: name };
      traces.push(basemap ? { type: "scattermap", lon: g.px, lat: g.py, ...outline }
        : { type: "scatter", x: g.px, y: g.py, ...outline });
    }
    const marker = { color: colors[name], size: polygons ? 4 : (view.ids.length > 20000 ? 3 : 5),
      opacity: polygons ? 0 : 1 };
    if (basemap) {
      traces.push({ type: "scattermap", mode: "markers", lon: g.x, lat: g.y, customdata: g.data,
        marker: marker, name: `${name} (${g.x.length})`, hovertemplate: HOVER, legendgroup: name,
        showlegend: !polygons });
    } else {
      traces.push({ type: polygons ? "scatter" : "scattergl", mode: "markers", x: g.x, y: g.y,
        customdata: g.data, marker: marker, name: `${name} (${g.x.length})`, hovertemplate: HOVER,
        legendgroup: name, showlegend: !polygons });
    }
  });
  return traces;
}

// The web-mercator zoom at which the tiles' bounds fill about 80 % of the map.
function fitZoom(bounds) {
  if (!bounds) return 1;
  const el = document.getElementById("map");
  const width = Math.max(el.clientWidth, 300), height = Math.max(el.clientHeight, 300);
  const mercator = (lat) => Math.log(Math.tan(Math.PI / 4 + Math.max(-85, Math.min(85, lat)) * Math.PI / 360));
  const dx = Math.max(bounds[2] - bounds[0], 1e-4) / 360;  // of the world's width
  const dy = Math.max(mercator(bounds[3]) - mercator(bounds[1]), 1e-6) / (2 * Math.PI);
  const zoom = Math.log2(0.8 * Math.min(width / dx, height / dy) / 512);  // tiles of 512 css px at zoom z
  return Math.max(0, Math.min(16, zoom));
}

const MAP_MARGIN = { l: 40, r: 10, t: 10, b: 30 };

function mapLayout() {
  const margin = MAP_MARGIN;
  const legend = { orientation: "h", y: -0.08 };
  if (view.config.tiles_url) {
    const [w, s, e, n] = view.bounds || [0, 0, 0, 0];
    const center = { lon: (w + e) / 2, lat: (s + n) / 2 };
    return { margin, legend, uirevision: "map", map: { center, zoom: fitZoom(view.bounds), style: {
      version: 8, sources: { base: { type: "raster", tiles: [view.config.tiles_url], tileSize: 256 } },
      layers: [{ id: "base", type: "raster", source: "base" }] } } };
  }
  const lat = view.bounds ? (view.bounds[1] + view.bounds[3]) / 2 : 0;
  const layout = { margin, legend, uirevision: "map", hovermode: "closest",
    xaxis: { title: { text: "longitude" }, zeroline: false },
    yaxis: { title: { text: "latitude" }, zeroline: false, scaleanchor: "x",
      scaleratio: 1 / Math.max(Math.cos(lat * Math.PI / 180), 0.05) },
    plot_bgcolor: "#fff" };
  if (view.geography) {
    // Fixed: the geography reaches beyond the view and would widen an autorange.
    const [w, s, e, n] = view.geography.view;
    layout.xaxis.range = [w, e];
    layout.yaxis.range = [s, n];
  }
  return layout;
}

function drawMap() {
  if (!view.dirty) return;
  Plotly.react("map", mapTraces(), mapLayout(), { responsive: true, displaylogo: false });
  view.dirty = false;
}

function cell(row, text, cls) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "–" : String(text);
  if (cls) td.className = cls;
  row.appendChild(td);
  return td;
}

function drawCounts(ov) {
  const body = document.querySelector("#counts tbody");
  body.replaceChildren();
  for (const name of view.config.states) {
    const n = ov.counts[name] || 0;
    const tr = document.createElement("tr");
    tr.dataset.state = name;
    const td = cell(tr, name);
    const sw = document.createElement("span");
    sw.className = "swatch"; sw.style.background = ov.colors[name];
    td.prepend(sw);
    cell(tr, n, "num");
    cell(tr, ov.tasks ? (100 * n / ov.tasks).toFixed(1) + " %" : "–", "num");
    body.appendChild(tr);
  }
  const tr = document.createElement("tr");
  cell(tr, "total"); cell(tr, ov.tasks, "num"); cell(tr, "");
  body.appendChild(tr);
}

function drawCredits(ov) {
  const el = document.getElementById("credits");
  el.replaceChildren();
  const spent = document.createElement("div");
  spent.className = "big"; spent.textContent = fmtNumber(ov.credits.spent, 2) + " spent";
  const projected = document.createElement("div");
  projected.textContent = "projected at the end: " + fmtNumber(ov.credits.projected, 2);
  projected.dataset.projected = ov.credits.projected === null ? "" : String(ov.credits.projected);
  el.append(spent, projected);
}

function drawEta(ov) {
  const el = document.getElementById("eta");
  el.replaceChildren();
  const main = document.createElement("div");
  main.className = "big";
  if (!ov.eta.remaining) main.textContent = "complete";
  else if (ov.eta.seconds === null) main.textContent = "unknown (nothing done yet)";
  else main.textContent = fmtDuration(ov.eta.seconds) + " (" + new Date(ov.eta.at * 1000).toLocaleString() + ")";
  const rate = document.createElement("div");
  rate.textContent = `${fmtNumber(ov.throughput.done_per_hour, 1)} tasks/hour over the last ` +
    fmtDuration(ov.throughput.window_s) + `, ${ov.eta.remaining} remaining`;
  el.append(main, rate);
}

function fmtBytes(n) {
  if (n === null || n === undefined || !isFinite(n)) return "-";
  const units = ["B", "kB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i += 1; }
  return (i === 0 ? n.toFixed(0) : n.toFixed(1)) + " " + units[i];
}

function fmtCredits(x) {
  return Number(x).toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
}

function drawForecast(ov) {
  const el = document.getElementById("forecast");
  el.replaceChildren();
  const f = ov.forecast;
  el.dataset.median = f ? String(f.credits.median) : "";
  if (!f) {
    el.textContent = "none yet: openeo-upscale pilot runs a few tiles and makes one";
    return;
  }
  const credits = document.createElement("div");
  credits.className = "big";
  credits.textContent = fmtCredits(f.credits.median) + " credits";
  const range = document.createElement("div");
  range.textContent = `90 %: ${fmtCredits(f.credits.low)} to ${fmtCredits(f.credits.high)}` +
    (f.max_credits === null ? "" : (f.credits.median > f.max_credits ? ", OVER" : ", within") +
      ` max_credits ${fmtCredits(f.max_credits)}`);
  const time = document.createElement("div");
  time.textContent = `${fmtDuration(f.makespan_s.median)} left for ${f.remaining} task(s) on ${f.slots} ` +
    `slot(s); ${fmtBytes(f.volume_bytes.median)} of results`;
  const basis = document.createElement("div");
  basis.className = "muted";
  basis.textContent = `from ${f.basis === "pilot" ? "the pilot" : "the tasks done so far"} ` +
    `(${f.measured} measured), ${new Date(f.made).toLocaleString()}`;
  el.append(credits, range, time, basis);
  if (f.tracking && f.tracking.ratio !== null) {
    const tracking = document.createElement("div");
    tracking.id = "tracking";
    const pct = (f.tracking.ratio - 1) * 100;
    tracking.textContent = `tracking: ${f.tracking.done} done for ${fmtCredits(f.tracking.spent)} credits, ` +
      `${pct >= 0 ? "+" : ""}${pct.toFixed(0)} % against the pilot's forecast`;
    el.append(tracking);
  }
}

function drawBackends(ov) {
  const el = document.getElementById("backends");
  el.replaceChildren();
  const names = Object.keys(ov.backends);
  if (!names.length) { el.textContent = "no job launched yet"; return; }
  const table = document.createElement("table");
  const head = document.createElement("tr");
  for (const h of ["backend", "slots in use", "", "done", "failed", "jobs", "credits"]) {
    const th = document.createElement("th"); th.textContent = h; head.appendChild(th);
  }
  table.appendChild(head);
  for (const name of names) {
    const b = ov.backends[name];
    const tr = document.createElement("tr");
    tr.dataset.backend = name;
    cell(tr, name);
    cell(tr, b.parallel_jobs ? `${b.active} / ${b.parallel_jobs}` : b.active, "num");
    const td = cell(tr, "");
    const bar = document.createElement("div"); bar.className = "bar";
    const fill = document.createElement("span");
    const peak = b.parallel_jobs || Math.max(...names.map((n) => ov.backends[n].active), 1);
    fill.style.width = Math.min(100, 100 * b.active / peak) + "%";
    bar.appendChild(fill); td.textContent = ""; td.appendChild(bar);
    cell(tr, b.done, "num");
    cell(tr, b.failed, "num");
    cell(tr, b.jobs, "num");
    cell(tr, fmtNumber(b.credits, 2), "num");
    table.appendChild(tr);
  }
  el.appendChild(table);
}

function drawTimeline(ov) {
  const t = ov.timeline;
  const x = t.edges.map((s) => new Date(s * 1000));
  const traces = [];
  for (const name of view.config.states) {
    if (!t.counts[name]) continue;
    traces.push({ type: "scatter", mode: "lines", stackgroup: "states", x, y: t.counts[name], name,
      line: { width: 0.5, color: ov.colors[name] }, fillcolor: ov.colors[name] });
  }
  if (t.bin_s) {
    const mids = t.edges.slice(0, -1).map((s) => new Date((s + t.bin_s / 2) * 1000));
    traces.push({ type: "scatter", mode: "lines", x: mids, y: t.done_per_bin.map((n) => n * 3600 / t.bin_s),
      name: "done per hour", yaxis: "y2", line: { color: "black", dash: "dot" } });
  }
  Plotly.react("timeline", traces, {
    margin: { l: 50, r: 50, t: 10, b: 30 }, uirevision: "timeline", legend: { orientation: "h", y: -0.15 },
    yaxis: { title: { text: "tasks" } },
    yaxis2: { title: { text: "done / hour" }, overlaying: "y", side: "right", rangemode: "tozero" },
  }, { responsive: true, displaylogo: false });
}

const FAILURE_COLUMNS = 7;

function attemptsRow(taskId, jobs) {
  const tr = document.createElement("tr");
  tr.className = "attempts";
  tr.dataset.task = taskId;
  const td = document.createElement("td");
  td.colSpan = FAILURE_COLUMNS;
  tr.appendChild(td);
  if (!Array.isArray(jobs)) {
    td.textContent = jobs === null ? "loading attempts…" : jobs;
    return tr;
  }
  const table = document.createElement("table");
  const head = document.createElement("tr");
  for (const h of ["attempt", "backend", "job", "status", "duration", "credits", "error"]) {
    const th = document.createElement("th"); th.textContent = h; head.appendChild(th);
  }
  table.appendChild(head);
  for (const j of jobs) {
    const row = document.createElement("tr");
    row.className = "attempt";
    row.dataset.attempt = j.attempt;
    cell(row, j.attempt, "num"); cell(row, j.backend); cell(row, j.job_id); cell(row, j.status);
    cell(row, fmtDuration(j.duration_s), "num"); cell(row, fmtNumber(j.costs, 3), "num");
    cell(row, j.error, "error-text");
    table.appendChild(row);
  }
  td.appendChild(table);
  return tr;
}

async function loadJobs(taskId) {
  view.expanded.set(taskId, null);
  let jobs;
  try {
    jobs = (await getJSON(`/api/tasks/${taskId}/jobs`)).jobs;
  } catch (err) {
    jobs = String(err);
  }
  if (view.expanded.has(taskId)) view.expanded.set(taskId, jobs);
  drawFailures(view.overview);
}

function toggleJobs(taskId) {
  if (view.expanded.has(taskId)) view.expanded.delete(taskId);
  else loadJobs(taskId);
  drawFailures(view.overview);
}

function drawFailures(ov) {
  const body = document.querySelector("#failures tbody");
  body.replaceChildren();
  const listed = new Set(ov.failures.map((f) => f.task_id));
  for (const id of [...view.expanded.keys()]) if (!listed.has(id)) view.expanded.delete(id);
  for (const f of ov.failures) {
    const tr = document.createElement("tr");
    tr.dataset.task = f.task_id;
    cell(tr, f.tile_id); cell(tr, f.backend); cell(tr, f.job_id); cell(tr, f.attempts, "num");
    const jobs = cell(tr, f.jobs, "num");
    const open = view.expanded.has(f.task_id);
    if (f.jobs > 1) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "jobs";
      button.textContent = `${f.jobs} ${open ? "▾" : "▸"}`;
      button.title = open ? "hide the attempts" : "show every attempt";
      button.setAttribute("aria-expanded", String(open));
      button.addEventListener("click", () => toggleJobs(f.task_id));
      jobs.replaceChildren(button);
    }
    cell(tr, f.error, "error-text"); cell(tr, f.reason, "error-text");
    body.appendChild(tr);
    if (open) {
      const shown = view.expanded.get(f.task_id);
      // The task was retried and failed again since its attempts were fetched. The ledger only
      // grows, so the new answer has at least f.jobs rows: this cannot refetch in a loop.
      if (Array.isArray(shown) && shown.length < f.jobs) loadJobs(f.task_id);
      body.appendChild(attemptsRow(f.task_id, shown));
    }
  }
}

function publish(ov) {
  const b = document.body.dataset;
  view.updates += 1;
  b.updates = String(view.updates);
  b.tasks = String(ov.tasks);
  b.done = String(ov.counts.done || 0);
  b.finished = String((ov.counts.finished || 0) + (ov.counts.downloading || 0) + (ov.counts.done || 0));
  b.states = JSON.stringify(ov.counts);
  delete b.error;
}

async function update() {
  const since = view.cursor === null ? "" : "?since=" + view.cursor;
  const [states, ov] = await Promise.all([getJSON("/api/states" + since), getJSON("/api/overview")]);
  if (states.id.some((id) => !view.index.has(id))) {
    // Tasks were added since the page loaded (a split tile's quadrants): their outlines first.
    loadTiles(await getJSON("/api/tiles" + (view.centres ? "?centres=true" : "")));
  }
  render(states, ov);
}

function render(states, ov) {
  view.overview = ov;
  applyStates(states);
  drawMap();
  drawCounts(ov); drawCredits(ov); drawEta(ov); drawForecast(ov); drawBackends(ov); drawTimeline(ov); drawFailures(ov);
  publish(ov);
  const status = document.getElementById("status");
  status.className = "muted";
  status.textContent = "updated " + new Date(ov.now * 1000).toLocaleTimeString();
}

async function loop() {
  try {
    await update();
  } catch (err) {
    const status = document.getElementById("status");
    status.className = "error";
    status.textContent = String(err);
    document.body.dataset.error = String(err);
  }
  setTimeout(loop, POLL_MS);
}

async function start() {
  for (;;) {
    try {
      view.config = await getJSON("/api/config");
      view.centres = view.config.tasks > view.config.polygon_limit;
      // The first states and overview are fetched while the tiles are: the page is ready after
      // the slowest of the three, not after their sum.
      const [tiles, states, ov] = await Promise.all([
        getJSON("/api/tiles" + (view.centres ? "?centres=true" : "")),
        getJSON("/api/states"), getJSON("/api/overview")]);
      loadTiles(tiles);
      await loadGeography();
      view.cursor = null;
      render(states, ov);
      break;
    } catch (err) {
      document.getElementById("status").textContent = String(err) + " (retrying)";
      document.body.dataset.error = String(err);
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  }
  document.getElementById("title").textContent = "openeo-upscale: " + view.config.campaign;
  document.title = view.config.campaign + " · openeo-upscale";
  setTimeout(loop, POLL_MS);
}

start();
