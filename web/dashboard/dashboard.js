// The operations dashboard: polls `parley dashboard`'s /api/state every
// second with the admin token and draws it; drain, undrain and drills are
// POSTs to the same API. Text only (textContent), never HTML from the API.
const $ = (selector) => document.querySelector(selector);
const cell = (text, className) => {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
};
let token = sessionStorage.getItem("parley.admin") ?? new URLSearchParams(location.hash.slice(1)).get("token");

async function api(method, path) {
  const answer = await fetch(`/api/${path}`, { method, headers: { Authorization: `Bearer ${token}` }, cache: "no-store" });
  if (answer.status === 401) {
    sessionStorage.removeItem("parley.admin");
    token = null;
    showTokenForm("that token was refused");
    throw new Error("unauthorized");
  }
  if (!answer.ok) throw new Error(`${path}: ${answer.status} ${await answer.text()}`);
  return answer.json();
}

function showTokenForm(message) {
  $("#token-form").hidden = false;
  $("#panels").hidden = true;
  $("#error").textContent = message ?? "";
}

$("#token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  token = $("#token").value.trim();
  sessionStorage.setItem("parley.admin", token);
  $("#token-form").hidden = true;
  poll();
});

function drawRegions(state) {
  const body = $("#regions tbody");
  body.replaceChildren();
  for (const region of state.regions) {
    const row = document.createElement("tr");
    row.dataset.region = region.name;
    const route = region.route;
    row.append(cell(region.name));
    row.append(cell(route ? route.state : "unknown", route?.state === "up" ? "state ok" : "state bad"));
    row.append(cell(route?.draining ? "draining" : "—", route?.draining ? "draining warn" : "draining"));
    row.append(cell(route?.replicating === false ? "not replicating" : route?.replicating ? "replicating" : "—",
      route?.replicating === false ? "replication bad" : "replication"));
    row.append(cell(region.clients ?? "?", "clients num"));
    row.append(cell(region.applied ? Object.entries(region.applied).sort().map(([o, s]) => `${o}:${s}`).join(" ") : "?", "applied"));
    const actions = document.createElement("td");
    const drain = document.createElement("button");
    drain.className = route?.draining ? "undrain" : "drain";
    drain.textContent = route?.draining ? "undrain" : "drain";
    drain.addEventListener("click", () => api("POST", `${drain.className}/${region.name}`).then(poll).catch(showError));
    actions.append(drain);
    if (region.errors.length) actions.append(Object.assign(document.createElement("small"), { textContent: ` ${region.errors.join("; ")}` }));
    row.append(actions);
    body.append(row);
  }
}

function drawLag(state) {
  const names = state.regions.map((r) => r.name);
  const head = document.createElement("tr");
  head.append(cell("behind →"));
  for (const peer of names) head.append(Object.assign(document.createElement("th"), { textContent: peer }));
  $("#lag thead").replaceChildren(head);
  const body = $("#lag tbody");
  body.replaceChildren();
  for (const region of names) {
    const row = document.createElement("tr");
    row.append(Object.assign(document.createElement("th"), { textContent: region }));
    for (const peer of names) {
      if (peer === region) {
        row.append(cell("—"));
        continue;
      }
      const lag = state.lag.find((l) => l.region === region && l.peer === peer);
      const text = lag ? `${lag.events}${lag.seconds ? ` (${lag.seconds.toFixed(1)} s)` : ""}${lag.connected === false ? " cut" : ""}` : "?";
      const td = cell(text, `num${lag?.connected === false ? " cut" : lag?.events > 0 ? " lagging" : ""}`);
      td.dataset.region = region;
      td.dataset.peer = peer;
      td.dataset.events = lag ? String(lag.events) : "";
      row.append(td);
    }
    body.append(row);
  }
}

function drawCheck(state) {
  const check = state.check;
  $("#check-verdict").textContent = check ? check.verdict : "not run yet";
  $("#check-verdict").className = check?.verdict === "consistent" ? "ok" : check ? "bad" : "";
  $("#check-line").textContent = check?.line ?? "";
  $("#check-age").textContent = check ? `${Math.round((state.atMs - check.atMs) / 1000)} s ago` : "";
}

function drawRoutes(state) {
  const names = state.regions.map((r) => r.name);
  const head = document.createElement("tr");
  head.append(cell("route at ↓ sees →"));
  for (const name of names) head.append(Object.assign(document.createElement("th"), { textContent: name }));
  $("#routes thead").replaceChildren(head);
  const body = $("#routes tbody");
  body.replaceChildren();
  for (const [instance, view] of Object.entries(state.routes).sort()) {
    const row = document.createElement("tr");
    row.append(Object.assign(document.createElement("th"), { textContent: instance }));
    for (const name of names) {
      const status = view?.[name];
      const text = !view ? "no answer" : !status ? "?"
        : `${status.draining ? "draining" : status.state}; down ${status.wentDown}×${status.lastProbeError ? `; ${status.lastProbeError}` : ""}`;
      row.append(cell(text, !view || status?.state !== "up" ? "bad" : status.draining ? "warn" : "ok"));
    }
    body.append(row);
  }
}

function drawDrill(state) {
  const scenario = $("#drill-scenario");
  if (!scenario.options.length) {
    for (const name of state.scenarios) scenario.append(new Option(name, name));
    for (const region of state.regions) $("#drill-region").append(new Option(region.name, region.name));
  }
  const drill = state.drill;
  $("#drill-run").disabled = drill.running;
  $("#drill-state").textContent = drill.running ? `running ${drill.scenario} on ${drill.region}…`
    : drill.passed === true ? "passed" : drill.passed === false ? "failed" : "";
  $("#drill-state").className = drill.passed === false ? "bad" : drill.passed ? "ok" : "";
  $("#drill-lines").textContent = drill.lines.join("\n");
  $("#drill-report").textContent = drill.report ?? "";
}

$("#drill-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const scenario = encodeURIComponent($("#drill-scenario").value);
  const region = encodeURIComponent($("#drill-region").value);
  api("POST", `drill?scenario=${scenario}&region=${region}`).then(poll).catch(showError);
});

function showError(error) {
  $("#error").textContent = String(error.message ?? error);
}

let timer;
async function poll() {
  clearTimeout(timer);
  if (!token) return showTokenForm();
  try {
    const state = await api("GET", "state");
    $("#panels").hidden = false;
    drawRegions(state);
    drawLag(state);
    drawCheck(state);
    drawRoutes(state);
    drawDrill(state);
    $("#updated").textContent = `updated ${new Date(state.atMs).toLocaleTimeString()}`;
    $("#error").textContent = "";
  } catch (error) {
    if (!token) return;
    showError(error);
  }
  timer = setTimeout(poll, 1000);
}

poll();
