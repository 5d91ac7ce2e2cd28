// Shared by the console's pages: formatting, the session, requests and the
// live event stream. Data is only ever put into pages as text.
"use strict";

const herald = (() => {
  const count = (n) => Math.round(n || 0).toLocaleString("en-US");
  const rate = (r) => count(r) + "/s";
  const duration = (s) => {
    if (!s || s <= 0 || !isFinite(s)) return "–";
    s = Math.round(s);
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    return h ? `${h}h ${m}m` : m ? `${m}m ${sec}s` : `${sec}s`;
  };
  const el = (tag, attrs, ...children) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v; else if (k === "text") e.textContent = v; else e.setAttribute(k, v);
    }
    for (const c of children) e.append(c);
    return e;
  };

  // request sends an action. The header is what tells the console the
  // request comes from its own page (a form on another site cannot send it).
  async function request(method, url, body) {
    const opts = { method, headers: { "X-Herald-Console": "1" }, credentials: "same-origin" };
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = typeof body === "string" ? body : JSON.stringify(body);
    }
    const resp = await fetch(url, opts);
    let data = {};
    try { data = await resp.json(); } catch (_) { /* no body */ }
    return { ok: resp.ok, status: resp.status, data };
  }

  let session = { token_required: false, authorized: false, trigger: false };
  const sessionListeners = [];

  function drawSession() {
    const box = document.getElementById("session");
    box.replaceChildren();
    if (!session.token_required) {
      box.append(el("span", { class: "note", text: "read-only: started without an access token" }));
    } else if (session.authorized) {
      const out = el("button", { class: "plain", id: "logout", type: "button", text: "Sign out" });
      out.onclick = async () => { await request("POST", "/api/logout"); await loadSession(); };
      box.append(el("span", { class: "note", text: "signed in" }), out);
    } else {
      const form = el("form", { id: "login-form" });
      const input = el("input", { id: "token", type: "password", placeholder: "access token", autocomplete: "current-password" });
      const btn = el("button", { id: "login", type: "submit", text: "Sign in" });
      const err = el("span", { class: "note", id: "login-error" });
      form.append(input, btn, err);
      form.onsubmit = async (e) => {
        e.preventDefault();
        const r = await request("POST", "/api/login", { token: input.value });
        if (!r.ok) { err.textContent = r.data.error || "refused"; return; }
        await loadSession();
      };
      box.append(form);
    }
    for (const f of sessionListeners) f(session);
  }

  async function loadSession() {
    const resp = await fetch("/api/session", { credentials: "same-origin" });
    session = await resp.json();
    drawSession();
  }

  // live opens the event stream; the browser reconnects by itself, and
  // each connection starts with a snapshot.
  function live(url, onSnapshot, onUpdate, onRemove) {
    const dot = document.getElementById("live");
    const es = new EventSource(url);
    es.addEventListener("open", () => { dot.textContent = "live"; dot.classList.add("on"); });
    es.addEventListener("error", () => { dot.textContent = "reconnecting…"; dot.classList.remove("on"); });
    es.addEventListener("snapshot", (e) => onSnapshot(JSON.parse(e.data)));
    es.addEventListener("update", (e) => onUpdate(JSON.parse(e.data)));
    es.addEventListener("remove", (e) => onRemove && onRemove(JSON.parse(e.data)));
    return es;
  }

  function setBar(fill, text, v) {
    const pct = Math.max(0, Math.min(1, v.progress || 0)) * 100;
    fill.style.width = pct.toFixed(1) + "%";
    fill.className = "fill" + (v.state === "done" ? " done" : v.state === "paused" ? " paused" : "");
    if (text) text.textContent = pct.toFixed(1) + "%";
  }

  function stateBadge(node, state) {
    node.textContent = state;
    node.className = "state " + state;
  }

  document.addEventListener("DOMContentLoaded", loadSession);
  return { count, rate, duration, el, request, live, setBar, stateBadge, loadSession,
    onSession: (f) => sessionListeners.push(f), session: () => session };
})();
