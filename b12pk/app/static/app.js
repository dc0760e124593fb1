// b12pk teaching app: the page sends its state to /api/view and draws what comes back.
// Everything is served by the local b12pk server; nothing is loaded from or sent elsewhere.
"use strict";

const SLOTS = 4;
// curve i is drawn as the downloaded figure draws it (colours and dashes from /api/meta)
let STYLES = [];
const PANELS = [
  {col: "serum_pmol_per_l", title: "Serum B12 (pmol/L)", log: true, axis: ""},
  {col: "holotc_pmol_per_l", title: "HoloTC, active B12 (pmol/L)", log: true, axis: "2"},
  {col: "stores_ug", title: "Body stores (µg)", log: false, axis: "3"},
  {col: "mma_nmol_per_l", title: "MMA (nmol/L)", log: true, axis: "4"},
];

const $ = (id) => document.getElementById(id);
let META = null;
let seq = 0;          // id of the latest request
let timer = null;     // debounce of typing
let changedAt = 0;    // when the latest change happened (performance.now())
let lastView = null;
let lastEdited = -1;  // the regimen box typed in last: its reading is shown under it

function state() {
  const num = (id) => $(id).value.trim() === "" ? null : $(id).value.trim();
  return {
    patient: {preset: $("preset").value, baseline_serum_pmol_per_l: num("baseline"),
              egfr_ml_min: num("egfr"), ileal_resection_cm: num("resection"),
              intrinsic_factor: num("if")},
    regimens: [...Array(SLOTS).keys()].map((i) => $(`regimen-${i}`).value),
    days: Number($("days").value),
    uncertainty: $("uncertainty").checked,
  };
}

function changed(delay) {
  changedAt = performance.now();
  clearTimeout(timer);
  timer = setTimeout(update, delay);
}

async function update() {
  const mine = ++seq;
  const started = changedAt || performance.now();
  $("status").textContent = "simulating…";
  let v;
  try {
    const r = await fetch("/api/view", {method: "POST", body: JSON.stringify(state()),
                                        headers: {"Content-Type": "application/json"}});
    v = await r.json();
    if (!r.ok) throw new Error(v.error || r.statusText);
  } catch (err) {
    if (mine === seq) { $("state-error").textContent = `The server did not answer: ${err.message}`;
                        $("status").textContent = ""; }
    return;
  }
  if (mine !== seq) return;   // a newer change is on its way
  lastView = v;
  const drawStart = performance.now();
  showErrors(v.errors);
  draw(v);
  table(v);
  document.body.dataset.lastDrawMs = String(Math.round(performance.now() - drawStart));
  const ms = Math.round(performance.now() - started);
  document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
  document.body.dataset.lastUpdateMs = String(ms);
  document.body.dataset.lastComputeMs = String(Math.round(v.compute_ms));
  $("status").textContent = `${v.series.length} regimen(s), updated in ${ms} ms ` +
    `(model ${Math.round(v.compute_ms)} ms)`;
}

function showErrors(e) {
  $("patient-error").textContent = e.patient || "";
  $("days-error").textContent = e.days || "";
  $("state-error").textContent = e.state || "";
  for (let i = 0; i < SLOTS; i++) {
    const msg = e.regimens[i];
    $(`regimen-${i}-error`).textContent = msg || "";
    $(`regimen-${i}`).setAttribute("aria-invalid", msg ? "true" : "false");
  }
  const fields = {baseline: "baseline", egfr: "egfr", resection: "ileal_resection",
                  if: "intrinsic_factor"};
  const msg = (e.patient || "").toLowerCase().replace(/ /g, "_");
  const named = Object.keys(fields).filter((id) => msg.includes(fields[id]));
  for (const id of Object.keys(fields))
    $(id).setAttribute("aria-invalid", named.includes(id) ? "true" : "false");
  $("preset").setAttribute("aria-invalid", e.patient && !named.length ? "true" : "false");
  const read = Object.fromEntries(lastView ? lastView.series.map((s) => [s.slot, s.text]) : []);
  for (let i = 0; i < SLOTS; i++) {
    const typed = $(`regimen-${i}`).value.trim();
    $(`regimen-${i}-read`).textContent =
      i === lastEdited && !e.regimens[i] && read[i] && typed ? `read as: ${read[i]}` : "";
  }
}

function timeAxis(days) {
  return days <= 200 ? {div: 1, title: "days"} : {div: 30.4375, title: "months"};
}

function niceTicks(lo, hi) {
  // 1-2-5 ticks between lo and hi (a log axis labelled with plain numbers)
  const out = [];
  for (let e = Math.floor(Math.log10(lo)) - 1; e <= Math.ceil(Math.log10(hi)); e++)
    for (const m of [1, 2, 5]) { const t = m * 10 ** e; if (t >= lo && t <= hi) out.push(t); }
  return out;
}

function extent(v, col) {
  let lo = Infinity, hi = -Infinity;
  for (const s of v.series) for (const key of [col, col + "_p5", col + "_p95"])
    for (const y of s[key] || []) { if (y > 0 && y < lo) lo = y; if (y > hi) hi = y; }
  return [lo, hi];
}

// v.bands[column]: [name, value] is a line (a limit, a capacity); [name, low, high] a band
// (high null: open above). Only what lies within [lo, hi] is drawn, clipped to it.
const isLine = (bands) => bands[0].length === 2;

function visibleBands(bands, lo, hi) {
  return bands.filter(([, b0, b1]) => (b1 ?? Infinity) > lo && b0 < hi)
    .map(([name, b0, b1]) => ({name, b0, b1, y0: Math.max(b0, lo), y1: Math.min(b1 ?? hi, hi)}));
}

function bandTraces(v, panel, axis, lo, hi, tx) {
  const bands = v.bands[panel.col];
  if (!bands) return [];
  const on = {xaxis: "x" + axis, yaxis: "y" + axis, hoverinfo: "skip", showlegend: false,
              mode: "lines"};
  if (isLine(bands)) {
    const [name, y] = bands[0];
    return [{...on, x: [0, tx], y: [y, y], line: {color: "#6b7280", dash: "dash", width: 1},
             name}];
  }
  return visibleBands(bands, lo, hi).map(({name, y0, y1}) => ({
    ...on, x: [0, tx, tx, 0], y: [y0, y0, y1, y1], fill: "toself", line: {width: 0},
    fillcolor: META.band_fills[name] || "rgba(0,0,0,0.05)", name: `${name} band`}));
}

const BAND_WORDS = {deficient: "deficient", indeterminate: "indeterminate",
                    unlikely: "deficiency unlikely"};

function bandLabels(v, panel, axis, lo, hi) {
  // band names written at the right edge of their band (log axes: positions in log10)
  const bands = v.bands[panel.col];
  if (!bands) return [];
  const note = (text, y, color) => ({text, xref: `x${axis} domain`, yref: "y" + axis, x: 0.995,
    y: panel.log ? Math.log10(y) : y, xanchor: "right", yanchor: "middle", showarrow: false,
    font: {size: 10, color}, bgcolor: "rgba(255,255,255,0.75)", borderpad: 1});
  if (isLine(bands)) {
    const [name, y] = bands[0];
    return y > hi || y < lo ? [] : [{...note(name, y, "#4b5563"), yanchor: "bottom"}];
  }
  return visibleBands(bands, lo, hi).map(({name, b0, b1, y0, y1}) => {
    const mid = panel.log ? Math.sqrt(y0 * y1) : (y0 + y1) / 2;
    const range = b1 == null ? `> ${Math.round(b0)}` : b0 <= 0 ? `< ${Math.round(b1)}`
      : `${Math.round(b0)}-${Math.round(b1)}`;
    return note(`${BAND_WORDS[name] || name} (${range})`, mid, "#6b7280");
  });
}

function draw(v) {
  const ta = timeAxis(v.days || 365);
  const tx = (v.days || 365) / ta.div;
  const traces = [];
  const layout = {
    grid: {rows: 2, columns: 2, pattern: "independent", xgap: 0.13, ygap: 0.22},
    margin: {l: 60, r: 15, t: 22, b: 30}, showlegend: true, hovermode: "x unified",
    legend: {orientation: "h", x: 0, y: -0.1, font: {size: 10}},
    annotations: [], uirevision: "keep", font: {size: 11},
  };
  PANELS.forEach((panel, k) => {
    const axis = panel.axis;
    let [lo, hi] = extent(v, panel.col);
    if (!isFinite(lo)) [lo, hi] = [panel.col === "stores_ug" ? 0 : 10, 1000];
    if (panel.log) { lo = lo / 1.6; hi = hi * 1.6; }
    else { lo = 0; hi = hi * 1.08; }
    if (panel.col === "stores_ug" && v.bands.stores_ug) hi = Math.max(hi, v.bands.stores_ug[0][1] * 1.08);
    traces.push(...bandTraces(v, panel, axis, panel.log ? lo : 1e-9, hi, tx));
    if (v.series.length) layout.annotations.push(...bandLabels(v, panel, axis, lo, hi));
    v.series.forEach((s, i) => {
      const st = STYLES[i], c = st.color, t = s.time_days.map((d) => d / ta.div);
      const common = {x: t, xaxis: "x" + axis, yaxis: "y" + axis, legendgroup: s.label};
      if (s[panel.col + "_p5"]) {
        traces.push({...common, y: s[panel.col + "_p95"], mode: "lines", line: {width: 0},
                     hoverinfo: "skip", showlegend: false});
        traces.push({...common, y: s[panel.col + "_p5"], mode: "lines", line: {width: 0},
                     fill: "tonexty", fillcolor: hexA(c, 0.18), hoverinfo: "skip",
                     showlegend: false, name: `${s.label} (90 % band)`});
      }
      traces.push({...common, y: s[panel.col], mode: "lines", name: s.label,
                   line: {color: c, width: 1.8, dash: st.dash},
                   showlegend: k === 0,
                   hovertemplate: `%{y:.4g} at %{x:.1f} ${ta.title}<extra>${s.label.slice(0, 1)}</extra>`});
    });
    const xa = "xaxis" + axis, ya = "yaxis" + axis;
    layout[xa] = {title: {text: ta.title, standoff: 2}, range: [0, tx], zeroline: false};
    layout[ya] = panel.log
      ? {type: "log", range: [Math.log10(lo), Math.log10(hi)], tickvals: niceTicks(lo, hi),
         ticktext: niceTicks(lo, hi).map((t) => t.toLocaleString("en")),
         title: {text: panel.title, standoff: 4}}
      : {type: "linear", range: [lo, hi], title: {text: panel.title, standoff: 4}};
  });
  if (v.series.length)
    layout.annotations.push({text: "not yet checked against trials after injections",
      xref: "x2 domain", yref: "y2 domain", x: 0.01, y: 0.02, xanchor: "left", yanchor: "bottom",
      showarrow: false, font: {size: 10, color: "#8a4b00"}, bgcolor: "rgba(255,255,255,0.7)"});
  const e = v.errors;
  const blocked = e.patient || e.days || e.state;
  if (!v.series.length)
    layout.annotations.push({text: blocked ? "Fix the error on the left to see the curves"
                                           : "Type a regimen on the left, or pick a lesson",
                             xref: "paper", yref: "paper", x: 0.5, y: 0.5, showarrow: false,
                             font: {size: 15, color: "#6b7280"}});
  Plotly.react("plot", traces, layout, {displaylogo: false, responsive: true,
                                        modeBarButtonsToRemove: ["toImage", "select2d", "lasso2d"]});
}

function hexA(hex, a) {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${n >> 16}, ${(n >> 8) & 255}, ${n & 255}, ${a})`;
}

function table(v) {
  const thead = $("summary").tHead, tbody = $("summary").tBodies[0];
  thead.replaceChildren(); tbody.replaceChildren();
  $("notes").replaceChildren(); $("assumptions").replaceChildren(); $("warnings").replaceChildren();
  $("reading").textContent = "";
  if (!v.table) return;
  const tr = document.createElement("tr");
  for (const c of v.table.columns) { const th = document.createElement("th"); th.textContent = c; tr.append(th); }
  thead.append(tr);
  for (const row of v.table.rows) {
    const r = document.createElement("tr");
    for (const cell of row) { const td = document.createElement("td"); td.textContent = cell; r.append(td); }
    tbody.append(r);
  }
  v.notes.forEach((n) => { const li = document.createElement("li"); li.textContent = n; $("notes").append(li); });
  if (v.reading.length) $("reading").textContent = "What the model shows (not advice): " + v.reading.join(" ");
  const seen = new Set();
  for (const s of v.series) for (const a of s.assumptions) if (!seen.has(a)) {
    seen.add(a); const li = document.createElement("li"); li.textContent = a; $("assumptions").append(li);
  }
  $("warnings").replaceChildren();
  for (const s of v.series) for (const w of s.warnings) if (!seen.has(w)) {
    seen.add(w); const li = document.createElement("li"); li.textContent = `${s.label.slice(0, 1)}: ${w}`;
    $("warnings").append(li);
  }
}

function fillPatient(p) {
  $("baseline").value = p.baseline_serum_pmol_per_l ?? "";
  $("egfr").value = p.egfr_ml_min ?? "";
  $("resection").value = p.ileal_resection_cm ?? "";
  $("if").value = p.intrinsic_factor ?? "";
}

function presetChosen() {
  const p = META.presets.find((x) => x.name === $("preset").value);
  $("preset-description").textContent = p ? p.description : "";
  if (p) fillPatient(p);
  changed(0);
}

function loadLesson(lesson) {
  document.querySelectorAll(".lesson-list button").forEach((b) =>
    b.setAttribute("aria-pressed", b.dataset.id === lesson.id ? "true" : "false"));
  const preset = META.presets.find((x) => x.name === lesson.patient.preset);
  $("preset").value = lesson.patient.preset;
  $("preset-description").textContent = preset ? preset.description : "";
  fillPatient({...preset, ...lesson.patient});
  for (let i = 0; i < SLOTS; i++) $(`regimen-${i}`).value = lesson.regimens[i] || "";
  lastEdited = -1;
  const opt = [...$("days").options].find((o) => Math.abs(o.value - lesson.days) < 2);
  if (opt) $("days").value = opt.value;
  $("lesson").hidden = false;
  $("lesson-title").textContent = lesson.title;
  $("lesson-text").textContent = lesson.text;
  $("lesson-look").textContent = lesson.look;
  $("lesson-sources-count").textContent = String(lesson.sources.length);
  $("lesson-sources").replaceChildren(...lesson.sources.map((s) => {
    const li = document.createElement("li");
    li.textContent = `“${s.quote}” (source article: ${s.article})`;
    return li;
  }));
  changed(0);
}

async function download(kind) {
  const r = await fetch(`/download/${kind}`, {method: "POST", body: JSON.stringify(state()),
                                               headers: {"Content-Type": "application/json"}});
  if (!r.ok) {
    const e = await r.json().catch(() => ({error: r.statusText}));
    $("state-error").textContent = e.error;
    return;
  }
  const url = URL.createObjectURL(await r.blob());
  const a = document.createElement("a");
  a.href = url; a.download = `b12pk-${kind}`;
  document.body.append(a); a.click(); a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

async function init() {
  META = await (await fetch("/api/meta")).json();
  STYLES = META.styles;
  for (const p of META.presets) $("preset").append(new Option(p.name, p.name));
  for (const t of META.examples) $("examples").append(new Option(t, t));
  $("examples").addEventListener("change", () => {
    const text = $("examples").value;
    $("examples").value = "";
    if (!text) return;
    const free = [...Array(SLOTS).keys()].find((i) => !$(`regimen-${i}`).value.trim());
    lastEdited = free ?? SLOTS - 1;
    $(`regimen-${lastEdited}`).value = text;
    changed(0);
  });
  for (const lesson of META.lessons) {
    const b = document.createElement("button");
    b.type = "button"; b.textContent = lesson.title; b.dataset.id = lesson.id;
    b.setAttribute("aria-pressed", "false");
    b.addEventListener("click", () => loadLesson(lesson));
    $("lesson-list").append(b);
  }
  $("preset").value = "pernicious-anaemia";
  $("preset").addEventListener("change", presetChosen);
  for (const id of ["baseline", "egfr", "resection", "if"]) $(id).addEventListener("input", () => changed(60));
  for (let i = 0; i < SLOTS; i++) {
    $(`regimen-${i}`).addEventListener("input", () => { lastEdited = i; changed(60); });
    $(`regimen-${i}`).addEventListener("keydown", (e) => {   // one line: Enter does not break it
      if (e.key === "Enter") { e.preventDefault(); changed(0); }
    });
  }
  $("days").addEventListener("change", () => changed(0));
  $("uncertainty").addEventListener("change", () => changed(0));
  $("dl-png").addEventListener("click", () => download("figure.png"));
  $("dl-svg").addEventListener("click", () => download("figure.svg"));
  $("dl-csv").addEventListener("click", () => download("curves.csv"));
  const first = META.lessons[0];
  if (first) loadLesson(first); else presetChosen();
  document.body.dataset.ready = "true";
}

window.addEventListener("DOMContentLoaded", init);
