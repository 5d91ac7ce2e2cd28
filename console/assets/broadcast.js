// One broadcast, kept live: figures, chart, workers, and the actions.
"use strict";

(() => {
  const { count, rate, duration, el, request, live, setBar, stateBadge } = herald;
  const id = decodeURIComponent(location.pathname.replace(/^\/b\//, ""));
  const $ = (x) => document.getElementById(x);
  document.title = id + " · Herald console";
  $("bid").textContent = id;
  let history = [];
  let current = null;

  function draw(v) {
    current = v;
    $("notfound").hidden = true;
    const k = v.counters;
    stateBadge($("state"), v.state);
    setBar($("bar"), $("progress-text"), v);
    $("scanned").textContent = count(k.scanned) + (v.total ? " / " + count(v.total) : "");
    $("rate").textContent = rate(v.rate_per_s);
    $("eta").textContent = duration(v.eta_s);
    $("delivered").textContent = count(k.delivered);
    $("failed").textContent = count(k.failed);
    $("unreachable").textContent = count(k.unreachable);
    $("invalid").textContent = count(k.invalid);
    $("expired").textContent = count(k.expired);
    $("units").textContent = `${v.units.done}/${v.units.total}` + (v.units.unclaimed ? ` (${v.units.unclaimed} unclaimed)` : "");
    const ep = $("endpoint-state");
    ep.textContent = v.endpoint_state ? "Endpoint: " + v.endpoint_state : "";
    ep.className = "endpoint" + (v.endpoint && v.endpoint.waiting && v.endpoint_state.startsWith("waiting") ? " waiting" : "");
    drawWorkers(v.workers || {});
    drawSpec(v.spec || {});
    $("reason-h").hidden = !v.reason;
    $("reason").textContent = v.reason || "";
    const inv = $("invalid-samples");
    inv.replaceChildren(...(v.invalid_samples || []).map((s) => el("li", { text: `line ${s.line}: ${s.reason}` })));
    if (!inv.children.length) inv.append(el("li", { class: "muted", text: "none" }));
    drawButtons();
  }

  function drawWorkers(ws) {
    const ids = Object.keys(ws).sort();
    const total = ids.reduce((a, w) => a + ws[w].delivered, 0);
    $("workers").querySelector("tbody").replaceChildren(...ids.map((w) => {
      const share = total ? ws[w].delivered / total : 0;
      const fill = el("div", { class: "fill" });
      fill.style.width = (share * 100).toFixed(1) + "%";
      return el("tr", {}, el("td", { text: w }), el("td", { class: "num", text: String(ws[w].units) }),
        el("td", { class: "num", text: count(ws[w].delivered) }),
        el("td", {}, el("div", { class: "bar" }, fill, el("span", { class: "pct", text: (share * 100).toFixed(1) + "%" }))));
    }));
  }

  function drawSpec(s) {
    const rows = [["audience", s.audience], ["endpoint", s.endpoint], ["max in flight", s.max_in_flight],
      ["batch size", s.batch_size],
      ["rate limit", s.rate_per_sec ? count(s.rate_per_sec) + "/s (fleet)" : s.endpoint ? "unlimited" : ""],
      ["signed", s.signed ? "yes" : ""], ["not before", s.not_before], ["expires at", s.expires_at]];
    $("spec").replaceChildren(...rows.filter((r) => r[1]).flatMap((r) => [el("dt", { text: r[0] }), el("dd", { text: String(r[1]) })]));
  }

  // The chart: messages per second over the broadcast's life, in SVG.
  function drawChart() {
    const svg = $("chart"), W = 800, H = 220, L = 56, B = 22, T = 8;
    const ns = "http://www.w3.org/2000/svg";
    const mk = (tag, attrs, text) => {
      const n = document.createElementNS(ns, tag);
      for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
      if (text !== undefined) n.textContent = text;
      return n;
    };
    svg.replaceChildren();
    $("chart-note").textContent = history.length < 2
      ? (current && ["done", "cancelled", "expired", "rejected"].includes(current.state)
        ? "This console did not see the broadcast run: no samples." : "Waiting for samples…")
      : "";
    if (history.length < 2) return;
    const t0 = history[0].t, t1 = history[history.length - 1].t;
    const maxR = Math.max(1, ...history.map((p) => p.r));
    const top = niceCeil(maxR);
    const x = (t) => L + (W - L - 8) * (t1 > t0 ? (t - t0) / (t1 - t0) : 0);
    const y = (r) => T + (H - T - B) * (1 - r / top);
    for (let i = 0; i <= 4; i++) {
      const v = (top * i) / 4;
      svg.append(mk("line", { class: "grid", x1: L, x2: W - 8, y1: y(v), y2: y(v) }));
      svg.append(mk("text", { class: "axis", x: L - 6, y: y(v) + 4, "text-anchor": "end" }, count(v)));
    }
    const secs = (t1 - t0) / 1000;
    for (let i = 0; i <= 4; i++) {
      const t = t0 + ((t1 - t0) * i) / 4;
      svg.append(mk("text", { class: "axis", x: x(t), y: H - 6, "text-anchor": i === 0 ? "start" : i === 4 ? "end" : "middle" },
        "+" + duration((secs * i) / 4).replace("–", "0s")));
    }
    const pts = history.map((p) => `${x(p.t).toFixed(1)},${y(p.r).toFixed(1)}`);
    svg.append(mk("path", { class: "area", d: `M${x(t0)},${y(0)} L${pts.join(" L")} L${x(t1)},${y(0)} Z` }));
    svg.append(mk("path", { class: "line", d: "M" + pts.join(" L") }));
  }

  function niceCeil(v) {
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  // Actions: shown to everyone, refused by the console without the token.
  function drawButtons() {
    const s = herald.session(), st = current && current.state;
    const readOnly = !s.token_required;
    const allowed = { pause: ["pending", "running"], resume: ["paused"], cancel: ["pending", "running", "paused"] };
    document.querySelectorAll(".actions button").forEach((b) => {
      b.disabled = readOnly || !st || !allowed[b.dataset.action].includes(st);
      b.title = readOnly ? "read-only console: started without an access token" : "";
    });
  }
  herald.onSession(drawButtons);

  document.querySelectorAll(".actions button").forEach((b) => {
    b.onclick = async () => {
      const a = b.dataset.action;
      if (a === "cancel" && !confirm(`Cancel ${id} for good? Nothing more will be sent.`)) return;
      const msg = $("message");
      msg.className = "message";
      msg.textContent = a + "…";
      const r = await request("POST", `/api/broadcasts/${encodeURIComponent(id)}/${a}`);
      msg.className = "message " + (r.ok ? "good" : "bad");
      msg.textContent = r.ok ? `${id} is now ${r.data.state}` : `${a} refused: ${r.data.error || r.status}`;
    };
  });

  live("/events?id=" + encodeURIComponent(id), (snap) => {
    if (!snap.length) { $("notfound").hidden = false; return; }
    history = snap[0].history || [];
    draw(snap[0]);
    drawChart();
  }, (v) => {
    if (v.id !== id) return;
    if (v.point && (!history.length || v.point.t > history[history.length - 1].t)) {
      history.push(v.point);
      if (history.length > 1200) history = history.filter((_, i) => i % 2 === 1);
    }
    draw(v);
    drawChart();
  }, () => { $("notfound").hidden = false; });
})();
