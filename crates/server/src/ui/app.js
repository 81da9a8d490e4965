// clawcage web UI. Everything from the server (agent output above all) is
// untrusted: it is put on the page with textContent only, never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
let token = sessionStorage.getItem("clawcage-token") || "";
let current = null;      // task id shown
let stream = null;       // AbortController of its event stream

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const c of cells) {
    const td = document.createElement("td");
    if (c instanceof Node) td.appendChild(c); else td.textContent = c === null || c === undefined ? "" : String(c);
    tr.appendChild(td);
  }
  return tr;
}

function showError(msg) { $("error").textContent = msg || ""; }

async function api(method, path, body) {
  const opts = { method, headers: { Authorization: "Bearer " + token } };
  if (body !== undefined) { opts.headers["Content-Type"] = "application/json"; opts.body = JSON.stringify(body); }
  const r = await fetch(path, opts);
  if (r.status === 401) { signOut("The token was refused."); throw new Error("unauthorized"); }
  const type = r.headers.get("content-type") || "";
  const data = type.includes("json") ? await r.json() : await r.text();
  if (!r.ok) {
    const msg = typeof data === "object" && data ? (data.field ? data.field + ": " : "") + data.error : String(data);
    throw new Error(msg);
  }
  return data;
}

function signOut(msg) {
  token = "";
  sessionStorage.removeItem("clawcage-token");
  $("app").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = msg || "";
}

async function signIn(t) {
  token = t;
  try {
    await api("GET", "/api/groups");
  } catch (e) {
    signOut("Sign-in failed: " + e.message);
    return;
  }
  sessionStorage.setItem("clawcage-token", token);
  $("login").hidden = true;
  $("app").hidden = false;
  await loadGroups();
  tab("tasks");
  refresh();
}

function tab(name) {
  for (const p of document.querySelectorAll(".pane")) p.hidden = p.id !== "tab-" + name;
  for (const b of document.querySelectorAll(".tab")) b.classList.toggle("active", b.dataset.tab === name);
  refresh();
}

async function loadGroups() {
  const groups = await api("GET", "/api/groups");
  for (const sel of [$("new-task-group"), $("new-schedule-group")]) {
    sel.replaceChildren(...groups.map((g) => { const o = el("option", g.name); o.value = g.name; return o; }));
  }
}

async function refreshTasks() {
  const tasks = await api("GET", "/api/tasks?limit=50");
  $("tasks").replaceChildren(...tasks.map((t) => {
    const tr = row([t.id, t.group, t.status, t.title, t.detail]);
    tr.className = "task";
    tr.dataset.id = t.id;
    tr.addEventListener("click", () => openTask(t.id));
    return tr;
  }));
  if (current) {
    const t = tasks.find((x) => x.id === current);
    if (t) $("task-status").textContent = t.status;
  }
}

async function refreshApprovals() {
  const list = await api("GET", "/api/approvals");
  $("approval-count").textContent = list.length ? "(" + list.length + ")" : "";
  $("approvals").replaceChildren(...list.map((a) => {
    const yes = el("button", "Approve", "approve");
    const no = el("button", "Deny", "deny");
    yes.addEventListener("click", () => decide(a.id, "approve"));
    no.addEventListener("click", () => decide(a.id, "deny"));
    const both = document.createElement("span");
    both.append(yes, " ", no);
    const what = Array.isArray(a.subject) ? a.subject.join(" ") : JSON.stringify(a.subject);
    return row([a.id, a.task_id, a.kind, what, new Date(a.expires_ms).toISOString(), both]);
  }));
}

async function decide(id, verb) {
  try { await api("POST", "/api/approvals/" + encodeURIComponent(id) + "/" + verb, {}); showError(""); }
  catch (e) { showError(e.message); }
  refreshApprovals();
}

async function refreshAudit() {
  const v = await api("GET", "/api/audit/verify");
  const s = $("audit-verify");
  s.textContent = v.ok ? "intact (" + v.records + " records" + (v.signed ? ", signed head" : "") + ")" : "TAMPERED: " + v.problem;
  s.className = v.ok ? "ok" : "bad";
  const recs = await api("GET", "/api/audit?limit=100");
  $("audit").replaceChildren(...recs.reverse().map((r) => row([r.seq, r.ts, r.task, r.kind, JSON.stringify(r.data)])));
}

async function refreshSchedules() {
  const list = await api("GET", "/api/schedules");
  $("schedules").replaceChildren(...list.map((s) => {
    const rm = el("button", "Delete", "delete");
    rm.addEventListener("click", async () => {
      try { await api("DELETE", "/api/schedules/" + encodeURIComponent(s.id)); } catch (e) { showError(e.message); }
      refreshSchedules();
    });
    return row([s.id, s.group, s.kind, s.spec, s.next_due || "never", s.prompt, s.by || "", rm]);
  }));
}

async function refresh() {
  if (!token) return;
  const visible = document.querySelector(".pane:not([hidden])");
  try {
    await refreshApprovals();
    if (!visible || visible.id === "tab-tasks") await refreshTasks();
    else if (visible.id === "tab-audit") await refreshAudit();
    else if (visible.id === "tab-schedules") await refreshSchedules();
  } catch (e) { if (e.message !== "unauthorized") showError(e.message); }
}

function addOutput(ev) {
  const line = el("span", (ev.kind === "text" ? "" : "[" + ev.kind + "] ") + ev.text + "\n", ev.kind);
  line.dataset.seq = ev.seq;
  $("task-output").appendChild(line);
  if (ev.kind === "end") $("task-status").textContent = ev.text;
}

// Server-Sent Events read with fetch, so the token goes in a header, not the URL.
async function follow(id) {
  if (stream) stream.abort();
  stream = new AbortController();
  const r = await fetch("/api/tasks/" + encodeURIComponent(id) + "/events", {
    headers: { Authorization: "Bearer " + token }, signal: stream.signal,
  });
  if (!r.ok || !r.body) { showError("live output: HTTP " + r.status); return; }
  const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += value;
    let cut;
    while ((cut = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, cut);
      buf = buf.slice(cut + 2);
      const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n");
      if (data && current === id) addOutput(JSON.parse(data));
    }
  }
}

async function openTask(id) {
  current = id;
  $("task-view").hidden = false;
  $("task-id").textContent = id;
  $("task-output").replaceChildren();
  $("task-diff-text").hidden = true;
  $("task-apply").hidden = true;
  $("task-discard").hidden = true;
  $("task-review-result").textContent = "";
  try {
    const d = await api("GET", "/api/tasks/" + encodeURIComponent(id));
    $("task-status").textContent = d.task.status;
    $("task-diff").hidden = !d.review;
  } catch (e) { showError(e.message); }
  follow(id).catch((e) => { if (e.name !== "AbortError") showError(e.message); });
}

async function showDiff() {
  try {
    const text = await api("GET", "/api/tasks/" + encodeURIComponent(current) + "/diff");
    const pre = $("task-diff-text");
    pre.textContent = text || "(no changes)";
    pre.hidden = false;
    $("task-apply").hidden = false;
    $("task-discard").hidden = false;
  } catch (e) { showError(e.message); }
}

async function review(verb) {
  try {
    const r = await api("POST", "/api/tasks/" + encodeURIComponent(current) + "/" + verb, {});
    $("task-review-result").textContent = verb === "apply"
      ? "Applied " + r.applied.length + " change(s)" + (r.refused.length ? "; refused: " + r.refused.map((x) => x.path + " (" + x.why + ")").join(", ") : "")
      : "Changes discarded";
    $("task-apply").hidden = true;
    $("task-discard").hidden = true;
    showError("");
  } catch (e) { showError(e.message); }
}

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", (e) => { e.preventDefault(); signIn($("token").value); });
  $("logout").addEventListener("click", () => signOut(""));
  for (const b of document.querySelectorAll(".tab")) b.addEventListener("click", () => tab(b.dataset.tab));
  $("new-task").addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const t = await api("POST", "/api/tasks", { group: $("new-task-group").value, prompt: $("new-task-prompt").value });
      $("new-task-prompt").value = "";
      showError("");
      await refreshTasks();
      openTask(t.id);
    } catch (err) { showError(err.message); }
  });
  $("new-schedule").addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = { group: $("new-schedule-group").value, prompt: $("new-schedule-prompt").value };
    if ($("new-schedule-cron").value) body.cron = $("new-schedule-cron").value;
    if ($("new-schedule-at").value) body.at = $("new-schedule-at").value;
    try { await api("POST", "/api/schedules", body); showError(""); } catch (err) { showError(err.message); }
    refreshSchedules();
  });
  $("task-cancel").addEventListener("click", async () => {
    try { await api("POST", "/api/tasks/" + encodeURIComponent(current) + "/cancel", {}); } catch (e) { showError(e.message); }
  });
  $("task-diff").addEventListener("click", showDiff);
  $("task-apply").addEventListener("click", () => review("apply"));
  $("task-discard").addEventListener("click", () => review("discard"));
  $("audit-refresh").addEventListener("click", refreshAudit);
  setInterval(refresh, 2000);
  if (token) signIn(token); else signOut("");
});
