// avatarv web page: vanilla JS over the /api endpoints (session cookie after login).
"use strict";
const $ = (sel, root = document) => root.querySelector(sel);
const streams = {};  // job id -> EventSource
let consentAvatar = null;

function showError(msg) { $("#error").textContent = msg || ""; }

async function api(method, path, body) {
  const opts = { method, headers: {} };
  if (body instanceof FormData) opts.body = body;
  else if (body !== undefined) { opts.body = JSON.stringify(body); opts.headers["Content-Type"] = "application/json"; }
  const r = await fetch("/api" + path, opts);
  const data = await r.json().catch(() => ({}));
  if (!r.ok) { const e = new Error(data.detail || r.statusText); e.status = r.status; e.data = data; throw e; }
  return data;
}

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v; else if (k.startsWith("on")) e.addEventListener(k.slice(2), v); else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

async function start() {
  try {
    const me = await api("GET", "/me");
    $("#me").textContent = me.name + (me.role === "admin" ? " (admin)" : "");
    $("#usage").textContent = `${(me.usage.output_seconds_today / 60).toFixed(1)} of ${me.limits.output_minutes_per_day} min today`;
    $("#login-view").classList.add("hidden");
    $("#app-view").classList.remove("hidden");
    await refreshAvatars();
    await refreshJobs();
  } catch (e) {
    $("#login-view").classList.remove("hidden");
    $("#app-view").classList.add("hidden");
  }
}

async function refreshAvatars() {
  const avatars = await api("GET", "/avatars");
  const list = $("#avatars"); list.replaceChildren();
  const select = $("#job-avatar"); select.replaceChildren();
  for (const a of avatars) {
    const status = a.state === "verified" ? el("span", { class: "ok" }, "consent verified")
      : el("span", { class: "bad" }, "waiting for consent");
    const row = el("div", { class: "card avatar", "data-id": a.id }, el("b", {}, a.name), " — ", status, " ",
      a.state !== "verified" ? el("button", { onclick: () => openConsent(a) }, "Record consent") : "",
      " ", el("button", { class: "revoke", onclick: () => revoke(a) }, "Revoke consent and delete"));
    list.append(row);
    if (a.state === "verified") select.append(el("option", { value: a.id }, a.name));
  }
  if (!avatars.length) list.append(el("p", { class: "muted" }, "No avatar yet."));
}

function openConsent(a) {
  consentAvatar = a;
  $("#consent-avatar").textContent = a.name;
  $("#consent-panel").classList.remove("hidden");
  $("#phrase-box").classList.add("hidden");
  $("#challenge-btn").classList.remove("hidden");
  $("#decision").replaceChildren();
}

async function revoke(a) {
  if (!confirm(`Revoke consent for ${a.name}? Its videos and all its data are deleted.`)) return;
  try { await api("DELETE", `/avatars/${a.id}/consent`); await refreshAvatars(); await refreshJobs(); }
  catch (e) { showError(e.message); }
}

function showDecision(d) {
  const box = $("#decision"); box.replaceChildren();
  box.append(el("p", { class: d.verified ? "ok verdict" : "bad verdict" }, d.verified ? "Consent verified." : "Consent not verified."));
  for (const r of d.reasons || []) box.append(el("div", { class: "bad" }, r));
  const scores = Object.entries(d.scores || {}).filter(([k, v]) => typeof v === "number");
  if (scores.length) box.append(el("div", { class: "muted" }, scores.map(([k, v]) => `${k} ${v.toFixed(3)}`).join(" · ")));
}

async function refreshJobs() {
  const jobs = await api("GET", "/jobs");
  const list = $("#jobs");
  const seen = new Set();
  for (const j of jobs) { seen.add(j.id); renderJob(j); if (["queued", "running", "held"].includes(j.state)) follow(j.id); }
  for (const card of [...list.children]) if (!seen.has(card.dataset.id)) card.remove();
}

function jobCard(id) {
  let card = $(`#jobs [data-id="${id}"]`);
  if (!card) {
    card = el("div", { class: "card job", "data-id": id },
      el("div", {}, el("b", {}, `Video ${id}`), " ", el("span", { class: "state" }), " ", el("progress", { max: 1, value: 0 }),
        " ", el("span", { class: "phase muted" })),
      el("div", { class: "error bad" }),
      el("video", { class: "live hidden", controls: "", muted: "", playsinline: "" }),
      el("video", { class: "final hidden", controls: "", playsinline: "" }),
      el("a", { class: "download hidden", href: `/api/jobs/${id}/video`, download: `avatarv-${id}.mp4` }, "Download"),
      " ", el("button", { class: "delete", onclick: () => removeJob(id) }, "Delete"));
    $("#jobs").prepend(card);
  }
  return card;
}

function renderJob(j) {
  const card = jobCard(j.id);
  $(".state", card).textContent = j.state + (j.note ? ` (${j.note})` : "");
  const p = j.progress || {};
  $("progress", card).value = j.state === "finished" ? 1 : (p.total ? p.step / p.total : 0);
  $(".phase", card).textContent = j.state === "running" ? (p.phase || "") : "";
  $(".error", card).textContent = j.error || "";
  const live = $("video.live", card), final = $("video.final", card);
  if (j.state === "running" && p.step > 0) {
    // the growing fMP4: reload what exists so far, keep the position
    const t = live.currentTime || 0;
    live.src = `/api/jobs/${j.id}/live?step=${p.step}`;
    live.addEventListener("loadedmetadata", () => { try { live.currentTime = Math.min(t, live.duration || t); } catch (e) {} }, { once: true });
    live.classList.remove("hidden");
  }
  if (j.state === "finished") {
    live.removeAttribute("src"); live.classList.add("hidden");
    if (!final.getAttribute("src")) final.src = `/api/jobs/${j.id}/video`;
    final.classList.remove("hidden");
    $(".download", card).classList.remove("hidden");
  }
}

function follow(id) {
  if (streams[id]) return;
  const es = new EventSource(`/api/jobs/${id}/events`);
  streams[id] = es;
  es.onmessage = (ev) => renderJob(JSON.parse(ev.data));
  const stop = () => { es.close(); delete streams[id]; };
  es.addEventListener("end", stop);
  es.addEventListener("deleted", () => { stop(); const c = $(`#jobs [data-id="${id}"]`); if (c) c.remove(); });
  es.onerror = () => { stop(); setTimeout(() => api("GET", `/jobs/${id}`).then((j) => { renderJob(j); if (!["finished", "failed", "rejected"].includes(j.state)) follow(id); }).catch(() => {}), 2000); };
}

async function removeJob(id) {
  try { await api("DELETE", `/jobs/${id}`); if (streams[id]) { streams[id].close(); delete streams[id]; } await refreshJobs(); }
  catch (e) { showError(e.message); }
}

$("#login").addEventListener("click", async () => {
  showError("");
  try { await api("POST", "/login", { token: $("#token").value.trim() }); $("#token").value = ""; await start(); }
  catch (e) { showError(e.message); }
});
$("#logout").addEventListener("click", async () => { await api("POST", "/logout").catch(() => {}); await start(); });

$("#create-avatar").addEventListener("click", async () => {
  showError("");
  const file = $("#ref-file").files[0];
  if (!file) return showError("choose a reference video first");
  const form = new FormData(); form.append("reference", file); form.append("name", $("#avatar-name").value);
  $("#create-avatar").disabled = true;
  try { const a = await api("POST", "/avatars", form); await refreshAvatars(); openConsent(a); }
  catch (e) { showError(e.message); }
  finally { $("#create-avatar").disabled = false; }
});

$("#challenge-btn").addEventListener("click", async () => {
  showError("");
  try {
    const c = await api("POST", `/avatars/${consentAvatar.id}/challenge`);
    $("#phrase").textContent = c.phrase;
    $("#phrase-expires").textContent = new Date(c.expires_at * 1000).toLocaleTimeString();
    $("#phrase-box").classList.remove("hidden");
  } catch (e) { showError(e.message); }
});

$("#consent-btn").addEventListener("click", async () => {
  showError("");
  const file = $("#consent-file").files[0];
  if (!file) return showError("choose the consent clip first");
  const form = new FormData(); form.append("video", file);
  $("#consent-btn").disabled = true;
  $("#decision").textContent = "Checking…";
  try { showDecision(await api("POST", `/avatars/${consentAvatar.id}/consent`, form)); $("#challenge-btn").classList.add("hidden"); }
  catch (e) { if (e.data && "verified" in e.data) showDecision(e.data); else { $("#decision").textContent = ""; showError(e.message); } }
  finally { $("#consent-btn").disabled = false; $("#phrase-box").classList.add("hidden"); await refreshAvatars(); }
});

$("#job-submit").addEventListener("click", async () => {
  showError("");
  const form = new FormData();
  form.append("avatar_id", $("#job-avatar").value);
  const audio = $("#job-audio").files[0], voice = $("#job-voice").files[0], text = $("#job-text").value.trim();
  if (audio) form.append("audio", audio);
  if (text) form.append("text", text);
  if (voice) form.append("voice", voice);
  if ($("#job-prompt").value) form.append("prompt", $("#job-prompt").value);
  if ($("#job-steps").value) form.append("steps", $("#job-steps").value);
  try { const j = await api("POST", "/jobs", form); renderJob(j); follow(j.id); }
  catch (e) { showError(e.message); }
});

start();
