// batchserve's page: a client of the public API (/v1, /v2, /metrics), nothing more.
// Plain JavaScript, no build step. Paths are relative, so the page also works behind a
// proxy that serves the server under a prefix.

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = "batchserve.token";

const state = {
  token: sessionStorage.getItem(TOKEN_KEY) || "",
  models: [],               // [{name, version, state, reason}] (one per name, the best version)
  configs: new Map(),       // name -> v2 config (model.yaml as the server read it)
  current: null,            // name of the model in use
  generation: null,         // AbortController of the running generation
};

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// -- the API -------------------------------------------------------------------------

function api(path, options = {}) {
  const headers = new Headers(options.headers || {});
  if (state.token) headers.set("Authorization", `Bearer ${state.token}`);
  return fetch(path, { ...options, headers });
}

async function failure(response) {
  let message = response.statusText || `HTTP ${response.status}`;
  try {
    const body = await response.json();
    if (typeof body.error === "string") message = body.error;
    else if (body.error && body.error.message) message = body.error.message;
  } catch (_) { /* not JSON */ }
  if (response.status === 401) needToken();
  return new ApiError(response.status, message);
}

async function apiJSON(path, options) {
  const response = await api(path, options);
  if (!response.ok) throw await failure(response);
  return response.json();
}

function postJSON(path, body, options = {}) {
  return api(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
    ...options,
  });
}

// -- token, notices, errors ----------------------------------------------------------

function needToken() {
  const note = $("notice");
  note.textContent = state.token
    ? "The server refused this token. Type the right one above."
    : "This server needs a token: type it above and press Use.";
  note.hidden = false;
  setServerStatus("error", "token needed");
  $("token").focus();
}

function setServerStatus(kind, text) {
  const el = $("server-status");
  el.dataset.state = kind;
  el.textContent = text;
}

function showError(error) {
  const el = $("try-error");
  if (!error) {
    el.hidden = true;
    return;
  }
  el.textContent = error.status ? `${error.status}: ${error.message}` : String(error.message || error);
  el.hidden = false;
}

$("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  state.token = $("token").value.trim();
  if (state.token) sessionStorage.setItem(TOKEN_KEY, state.token);
  else sessionStorage.removeItem(TOKEN_KEY);
  $("notice").hidden = true;
  start();
});

// -- models --------------------------------------------------------------------------

const KINDS = {
  image: "image classifier",
  generate: "text generation",
  embed: "embeddings",
  tensor: "tensors",
};

async function loadModels() {
  const { models } = await apiJSON("v1/models");
  const best = new Map();
  for (const m of models) {
    const seen = best.get(m.name);
    const rank = (x) => (x.state === "READY" ? 1e9 : 0) + x.version;
    if (!seen || rank(m) > rank(seen)) best.set(m.name, m);
  }
  state.models = [...best.values()].sort((a, b) => a.name.localeCompare(b.name));
  const select = $("model");
  select.replaceChildren(
    ...state.models.map((m) => {
      const option = new Option(m.state === "READY" ? m.name : `${m.name} (${m.state.toLowerCase()})`, m.name);
      return option;
    }),
  );
  select.disabled = state.models.length === 0;
  if (!state.models.length) {
    select.replaceChildren(new Option("no models"));
    return;
  }
  const wanted = new URLSearchParams(location.hash.slice(1)).get("model");
  const ready = state.models.find((m) => m.state === "READY");
  const pick = state.models.find((m) => m.name === wanted) || ready || state.models[0];
  select.value = pick.name;
  await selectModel(pick.name);
}

function kindOf(config) {
  if (config.task === "generate") return "generate";
  if (config.task === "embed") return "embed";
  if (config.preprocessing) return "image";
  return "tensor";
}

async function selectModel(name) {
  state.current = name;
  history.replaceState(null, "", `#model=${encodeURIComponent(name)}`);
  showError(null);
  const info = state.models.find((m) => m.name === name);
  $("model-info").textContent = info ? describe(info) : "";
  let config = state.configs.get(name);
  if (!config) {
    try {
      config = await apiJSON(`v2/models/${encodeURIComponent(name)}/config`);
      state.configs.set(name, config);
    } catch (error) {
      showError(error);
      return;
    }
  }
  if (state.current !== name) return; // another model was picked meanwhile
  const kind = kindOf(config);
  const badge = $("model-kind");
  badge.textContent = KINDS[kind];
  badge.hidden = false;
  for (const k of Object.keys(KINDS)) $(`panel-${k}`).hidden = k !== kind;
  if (kind === "tensor") $("tensor-route").textContent = `POST /v2/models/${name}/infer`;
  document.body.dataset.kind = kind;
}

function describe(m) {
  const parts = [`version ${m.version}`, m.state.toLowerCase()];
  if (m.reason) parts.push(m.reason);
  return parts.join(" · ");
}

$("model").addEventListener("change", (event) => selectModel(event.target.value));

// -- images --------------------------------------------------------------------------

let previewUrl = null;

async function classify(body, contentType, preview) {
  showError(null);
  const k = $("top-k").value;
  const started = performance.now();
  const response = await api(`v1/models/${encodeURIComponent(state.current)}/predict?top_k=${k}`, {
    method: "POST",
    headers: { "Content-Type": contentType },
    body,
  });
  if (!response.ok) throw await failure(response);
  const answer = await response.json();
  const roundTrip = performance.now() - started;
  if (previewUrl) URL.revokeObjectURL(previewUrl);
  previewUrl = preview.startsWith("blob:") ? preview : null;
  $("preview").src = preview;
  renderPredictions(answer, roundTrip);
}

function renderPredictions(answer, roundTrip) {
  const list = $("predictions");
  list.replaceChildren(
    ...answer.predictions.map((p) => {
      const li = document.createElement("li");
      const label = document.createElement("span");
      label.className = "label";
      label.textContent = p.label;
      label.title = `${p.label} (class ${p.index})`;
      const track = document.createElement("span");
      track.className = "track";
      const fill = document.createElement("span");
      fill.className = "fill";
      fill.style.width = `${Math.max(0.5, p.score * 100).toFixed(1)}%`;
      fill.style.display = "block";
      track.append(fill);
      const score = document.createElement("span");
      score.className = "score";
      score.textContent = `${(p.score * 100).toFixed(p.score >= 0.1 ? 1 : 2)}%`;
      li.append(label, track, score);
      return li;
    }),
  );
  const t = answer.timings_ms || {};
  chips($("image-timings"), [
    ["decode", ms(t.decode)],
    ["queue", ms(t.queue)],
    ["inference", ms(t.inference)],
    ["server total", ms(t.total)],
    ["round trip", ms(roundTrip)],
    ["batch", answer.batch_size ?? "–"],
  ]);
  $("image-result").hidden = false;
}

function sendFile(file) {
  if (!file) return;
  const type = file.type || "application/octet-stream";
  classify(file, type, URL.createObjectURL(file)).catch(showError);
}

$("image-file").addEventListener("change", (event) => {
  sendFile(event.target.files[0]);
  event.target.value = ""; // the same file again is a new choice
});

const drop = $("drop");
for (const type of ["dragenter", "dragover"]) {
  drop.addEventListener(type, (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
}
for (const type of ["dragleave", "drop"]) drop.addEventListener(type, () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  sendFile(event.dataTransfer.files[0]);
});
drop.addEventListener("keydown", (event) => {
  if (event.key === "Enter" || event.key === " ") {
    event.preventDefault();
    $("image-file").click();
  }
});

document.addEventListener("paste", (event) => {
  if (document.body.dataset.kind !== "image") return;
  const item = [...(event.clipboardData?.items || [])].find((i) => i.type.startsWith("image/"));
  if (item) sendFile(item.getAsFile());
});

$("url-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const url = $("image-url").value.trim();
  if (!url) return;
  const body = JSON.stringify({ url, top_k: Number($("top-k").value) });
  classify(body, "application/json", url).catch(showError);
});

// -- generation ----------------------------------------------------------------------

async function* sseEvents(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      for (const line of event.split("\n")) {
        if (line.startsWith("data: ")) yield line.slice(6);
      }
    }
  }
}

async function generate() {
  showError(null);
  const prompt = $("prompt").value;
  const body = {
    prompt,
    max_tokens: Number($("max-tokens").value) || 1,
    temperature: Number($("temperature").value) || 0,
    stream: true,
  };
  if ($("seed").value !== "") body.seed = Number($("seed").value);
  const controller = new AbortController();
  state.generation = controller;
  const output = $("generation");
  const text = $("generation-text");
  $("generation-prompt").textContent = prompt;
  text.textContent = "";
  output.classList.add("streaming");
  $("generate").disabled = true;
  $("stop").disabled = false;
  const started = performance.now();
  let first = null;
  let pieces = 0;
  const stats = () => {
    const elapsed = (performance.now() - started) / 1000;
    const rate = first !== null && pieces > 1 ? (pieces - 1) / (elapsed - first / 1000) : null;
    return [
      ["first token", first === null ? "–" : ms(first)],
      ["pieces", pieces],
      ["pieces/s", rate === null ? "–" : rate.toFixed(0)],
    ];
  };
  try {
    const response = await postJSON(`v1/models/${encodeURIComponent(state.current)}/generate`, body, {
      signal: controller.signal,
    });
    if (!response.ok) throw await failure(response);
    for await (const data of sseEvents(response)) {
      if (data === "[DONE]") break;
      const event = JSON.parse(data);
      if (event.error) throw new Error(event.error);
      if (event.finish_reason) {
        chips($("generation-stats"), [
          ...stats(),
          ["finish", event.finish_reason],
          ["tokens", event.usage.completion_tokens],
          ["server first token", ms(event.timings_ms.first_token)],
          ["per token", ms(event.timings_ms.per_output_token)],
        ]);
        continue;
      }
      if (first === null) first = performance.now() - started;
      pieces += 1;
      text.textContent += event.text;
      output.scrollTop = output.scrollHeight;
      if (pieces % 8 === 1) chips($("generation-stats"), stats());
    }
  } catch (error) {
    if (error.name === "AbortError") chips($("generation-stats"), [...stats(), ["finish", "stopped"]]);
    else showError(error);
  } finally {
    output.classList.remove("streaming");
    $("generate").disabled = false;
    $("stop").disabled = true;
    state.generation = null;
  }
}

$("generate").addEventListener("click", generate);
$("stop").addEventListener("click", () => state.generation?.abort());
$("prompt").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) generate();
});

// -- embeddings ----------------------------------------------------------------------

async function compare() {
  showError(null);
  const texts = $("sentences").value.split("\n").map((s) => s.trim()).filter(Boolean);
  if (texts.length < 2) {
    showError(new Error("give at least two sentences, one a line"));
    return;
  }
  const started = performance.now();
  const response = await postJSON(`v1/models/${encodeURIComponent(state.current)}/embed`, { texts });
  if (!response.ok) throw await failure(response);
  const answer = await response.json();
  const vectors = answer.embeddings.map(unit);
  const sims = vectors.map((a) => vectors.map((b) => dot(a, b)));
  renderMatrix(texts, sims);
  let best = null;
  for (let i = 0; i < texts.length; i++) {
    for (let j = i + 1; j < texts.length; j++) {
      if (!best || sims[i][j] > best[2]) best = [i, j, sims[i][j]];
    }
  }
  chips($("embed-stats"), [
    ["closest", `${best[0] + 1} & ${best[1] + 1} (${best[2].toFixed(2)})`],
    ["dimensions", answer.dimensions],
    ["server", ms(answer.timings_ms?.total)],
    ["round trip", ms(performance.now() - started)],
  ]);
  $("similarity").hidden = false;
}

function unit(v) {
  const norm = Math.hypot(...v) || 1;
  return v.map((x) => x / norm);
}

function dot(a, b) {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

function renderMatrix(texts, sims) {
  const table = $("matrix");
  const head = document.createElement("tr");
  head.append(document.createElement("th"));
  texts.forEach((_, i) => {
    const th = document.createElement("th");
    th.textContent = i + 1;
    head.append(th);
  });
  const rows = sims.map((row, i) => {
    const tr = document.createElement("tr");
    const th = document.createElement("th");
    th.textContent = i + 1;
    tr.append(th);
    row.forEach((s) => {
      const td = document.createElement("td");
      td.textContent = s.toFixed(2);
      const strength = Math.max(0, Math.min(1, s));
      td.style.background = `color-mix(in srgb, var(--accent) ${(strength * 85).toFixed(0)}%, var(--bg))`;
      td.style.color = strength > 0.55 ? "var(--accent-ink)" : "var(--ink)";
      td.title = s.toFixed(4);
      tr.append(td);
    });
    return tr;
  });
  table.replaceChildren(head, ...rows);
  $("legend").replaceChildren(
    ...texts.map((t) => {
      const li = document.createElement("li");
      li.textContent = t;
      return li;
    }),
  );
}

$("compare").addEventListener("click", () => compare().catch(showError));

// -- live metrics --------------------------------------------------------------------

const RATE_WINDOW_S = 5;
const LATENCY_WINDOW_S = 30;
const snapshots = [];         // [{t, totals}] one a second, the last LATENCY_WINDOW_S + 2
const rates = [];             // requests/s, one a second, for the sparkline
let metricsTimer = null;

function parseMetrics(text) {
  const samples = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const match = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/);
    if (!match) continue;
    const labels = {};
    for (const m of (match[2] || "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[m[1]] = m[2];
    }
    samples.push({ name: match[1], labels, value: Number(match[3]) });
  }
  return samples;
}

function sum(samples, name, keep = () => true) {
  return samples.filter((s) => s.name === name && keep(s.labels)).reduce((a, s) => a + s.value, 0);
}

function totals(samples) {
  const buckets = new Map();
  for (const s of samples) {
    if (s.name !== "batchserve_request_seconds_bucket") continue;
    const le = s.labels.le === "+Inf" ? Infinity : Number(s.labels.le);
    buckets.set(le, (buckets.get(le) || 0) + s.value);
  }
  return {
    requests: sum(samples, "batchserve_requests_total", (l) => l.model !== ""),
    tokens: sum(samples, "batchserve_generated_tokens_total"),
    batchRows: sum(samples, "batchserve_batch_size_sum"),
    batchCalls: sum(samples, "batchserve_batch_size_count"),
    buckets,
  };
}

function quantile(q, now, then) {
  const bounds = [...now.buckets.keys()].sort((a, b) => a - b);
  const counts = bounds.map((b) => now.buckets.get(b) - (then?.buckets.get(b) || 0));
  const total = counts[counts.length - 1];
  if (!total) return null;
  const rank = q * total;
  for (let i = 0; i < bounds.length; i++) {
    if (counts[i] >= rank) {
      if (bounds[i] === Infinity) return bounds[i - 1] ?? null;
      const lower = i ? bounds[i - 1] : 0;
      const below = i ? counts[i - 1] : 0;
      const inBucket = counts[i] - below;
      return lower + (bounds[i] - lower) * (inBucket ? (rank - below) / inBucket : 0);
    }
  }
  return null;
}

function ago(seconds) {
  const target = performance.now() / 1000 - seconds;
  let found = snapshots[0];
  for (const s of snapshots) if (s.t <= target) found = s;
  return found;
}

async function pollMetrics() {
  let text;
  try {
    const response = await api("metrics");
    if (!response.ok) throw await failure(response);
    text = await response.text();
  } catch (error) {
    $("metrics-updated").classList.remove("live");
    $("metrics-updated").textContent = error.status === 401 ? "token needed" : "metrics unavailable";
    return;
  }
  const samples = parseMetrics(text);
  const now = { t: performance.now() / 1000, totals: totals(samples) };
  const previous = snapshots[snapshots.length - 1];
  snapshots.push(now);
  while (snapshots.length > LATENCY_WINDOW_S + 2) snapshots.shift();
  if (previous) {
    rates.push(Math.max(0, (now.totals.requests - previous.totals.requests) / (now.t - previous.t)));
    while (rates.length > 60) rates.shift();
  }
  renderMetrics(samples, now);
}

function renderMetrics(samples, now) {
  const windowStart = ago(RATE_WINDOW_S);
  const dt = now.t - windowStart.t;
  const rate = (key) => (dt > 0 ? (now.totals[key] - windowStart.totals[key]) / dt : null);
  const rps = rate("requests");
  $("m-rps").textContent = rps === null ? "–" : rps.toFixed(rps < 10 ? 1 : 0);
  const tps = rate("tokens");
  $("m-tokens").textContent = tps === null ? "–" : tps.toFixed(0);
  const latencyStart = ago(LATENCY_WINDOW_S);
  setLatency("m-p50", quantile(0.5, now.totals, latencyStart === now ? null : latencyStart.totals));
  setLatency("m-p99", quantile(0.99, now.totals, latencyStart === now ? null : latencyStart.totals));
  const calls = now.totals.batchCalls - windowStart.totals.batchCalls;
  const rows = now.totals.batchRows - windowStart.totals.batchRows;
  $("m-batch").textContent = calls > 0 ? (rows / calls).toFixed(1) : "–";
  $("m-queue").textContent = sum(samples, "batchserve_queue_depth");
  const busy = sum(samples, "batchserve_instances_busy");
  const workers = sum(samples, "batchserve_workers");
  $("m-busy").innerHTML = `${busy}<small>/ ${workers}</small>`;
  const rss = sum(samples, "process_resident_memory_bytes");
  $("m-rss").innerHTML = rss ? `${(rss / 1e6).toFixed(0)}<small>MB</small>` : "–";
  $("m-total").textContent = now.totals.requests;
  renderSpark();
  renderModelTable(samples);
  const updated = $("metrics-updated");
  updated.dataset.count = String(Number(updated.dataset.count) + 1);
  updated.textContent = `live · ${new Date().toLocaleTimeString()}`;
  updated.classList.add("live");
}

function setLatency(id, seconds) {
  const el = $(id);
  if (seconds === null) {
    el.textContent = "–";
  } else if (seconds < 1) {
    el.innerHTML = `${(seconds * 1000).toFixed(seconds < 0.01 ? 1 : 0)}<small>ms</small>`;
  } else {
    el.innerHTML = `${seconds.toFixed(2)}<small>s</small>`;
  }
}

function renderSpark() {
  const path = $("m-spark").querySelector("path");
  if (rates.length < 2) {
    path.setAttribute("d", "");
    return;
  }
  const top = Math.max(1, ...rates);
  const step = 120 / 59;
  const offset = 120 - (rates.length - 1) * step;
  const points = rates.map((r, i) => `${(offset + i * step).toFixed(1)},${(27 - (r / top) * 25).toFixed(1)}`);
  path.setAttribute("d", `M${offset.toFixed(1)},28 L${points.join(" L")} L120,28 Z`);
}

function renderModelTable(samples) {
  const byModel = new Map();
  const add = (name, field) => {
    for (const s of samples) {
      if (s.name !== name) continue;
      const key = `${s.labels.model} v${s.labels.version}`;
      const row = byModel.get(key) || {};
      row[field] = (row[field] || 0) + s.value;
      byModel.set(key, row);
    }
  };
  add("batchserve_queue_depth", "queue");
  add("batchserve_instances_busy", "busy");
  add("batchserve_workers", "workers");
  add("batchserve_batch_size_sum", "rows");
  add("batchserve_batch_size_count", "calls");
  add("batchserve_batch_occupancy", "occupancy");
  const body = $("m-models").querySelector("tbody");
  body.replaceChildren(
    ...[...byModel.entries()]
      .filter(([, row]) => row.workers !== undefined)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([key, row]) => {
        const tr = document.createElement("tr");
        const batch = row.occupancy !== undefined
          ? `${Math.round(row.occupancy * 100)}% full`
          : row.calls ? (row.rows / row.calls).toFixed(1) : "–";
        for (const cell of [key, row.queue ?? 0, `${row.busy ?? 0}/${row.workers}`, batch]) {
          const td = document.createElement("td");
          td.textContent = cell;
          tr.append(td);
        }
        return tr;
      }),
  );
}

function startMetrics() {
  pollMetrics(); // at once, also when a new token was just typed
  if (metricsTimer) return;
  metricsTimer = setInterval(() => {
    if (!document.hidden) pollMetrics();
  }, 1000);
}

// -- helpers and start ---------------------------------------------------------------

function ms(value) {
  if (value === null || value === undefined) return "–";
  return `${value < 10 ? value.toFixed(1) : value.toFixed(0)} ms`;
}

function chips(container, pairs) {
  container.replaceChildren(
    ...pairs.map(([label, value]) => {
      const chip = document.createElement("span");
      chip.className = "chip";
      const b = document.createElement("b");
      b.textContent = value;
      chip.append(`${label} `, b);
      return chip;
    }),
  );
}

async function start() {
  $("token").value = state.token;
  try {
    const server = await apiJSON("v2");
    $("server-version").textContent = `${server.name} ${server.version}`;
    const ready = await api("v2/health/ready");
    setServerStatus(ready.ok ? "ready" : "unknown", ready.ok ? "ready" : "loading models…");
    await loadModels();
  } catch (error) {
    if (error.status !== 401) {
      setServerStatus("error", "unreachable");
      showError(error);
    }
  }
  startMetrics();
}

start();
