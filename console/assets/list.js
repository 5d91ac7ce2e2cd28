// The list of broadcasts, kept live, and the form that triggers one.
"use strict";

(() => {
  const { count, rate, duration, el, request, live, setBar, stateBadge } = herald;
  const tbody = document.querySelector("#broadcasts tbody");
  const rows = new Map();
  const over = ["done", "cancelled", "expired", "rejected"];
  // Live broadcasts first, then finished ones; by id within each.
  const sortKey = (v) => (over.includes(v.state) ? "1" : "0") + v.id;

  function place(r) {
    const after = [...rows.values()].filter((o) => o !== r && o.key > r.key)
      .sort((a, b) => (a.key < b.key ? -1 : 1))[0];
    tbody.insertBefore(r.tr, after ? after.tr : null);
  }

  function row(v) {
    let r = rows.get(v.id);
    if (!r) {
      const fill = el("div", { class: "fill" }), pct = el("span", { class: "pct" });
      const cells = {
        link: el("a", { href: "/b/" + encodeURIComponent(v.id), text: v.id }),
        state: el("span", { class: "state" }),
        fill, pct,
        rate: el("td", { class: "num" }), eta: el("td", { class: "num" }),
        delivered: el("td", { class: "num" }), failed: el("td", { class: "num" }),
        unreachable: el("td", { class: "num" }), invalid: el("td", { class: "num" }), units: el("td", { class: "num" }),
      };
      const tr = el("tr", { "data-id": v.id },
        el("td", {}, cells.link), el("td", {}, cells.state), el("td", {}, el("div", { class: "bar" }, fill, pct)),
        cells.rate, cells.eta, cells.delivered, cells.failed, cells.unreachable, cells.invalid, cells.units);
      r = { tr, cells, key: sortKey(v) };
      rows.set(v.id, r);
      place(r);
    } else if (r.key !== sortKey(v)) {
      r.key = sortKey(v);
      place(r);
    }
    const c = r.cells, k = v.counters;
    stateBadge(c.state, v.state);
    if (v.endpoint && v.endpoint.waiting && !over.includes(v.state)) {
      c.state.textContent += " · endpoint down";
    }
    setBar(c.fill, c.pct, v);
    c.rate.textContent = rate(v.rate_per_s);
    c.eta.textContent = duration(v.eta_s);
    c.delivered.textContent = count(k.delivered);
    c.failed.textContent = count(k.failed);
    c.unreachable.textContent = count(k.unreachable);
    c.invalid.textContent = count(k.invalid);
    c.units.textContent = `${v.units.done}/${v.units.total}`;
    document.getElementById("empty").hidden = rows.size > 0;
  }

  function remove(id) {
    const r = rows.get(id);
    if (r) { r.tr.remove(); rows.delete(id); }
    document.getElementById("empty").hidden = rows.size > 0;
  }

  live("/events", (all) => {
    for (const id of [...rows.keys()]) if (!all.some((v) => v.id === id)) remove(id);
    all.forEach(row);
  }, row, (x) => remove(x.id));

  // The trigger form builds a spec from its fields, or sends the pasted
  // one, and shows a refusal at the field it names.
  const form = document.getElementById("trigger-form");
  const source = form.elements.source;
  source.onchange = () => {
    form.querySelector(".synthetic").hidden = source.value !== "synthetic";
    form.querySelector(".file").hidden = source.value !== "file";
  };
  herald.onSession((s) => { document.getElementById("new").hidden = !s.trigger; });

  function spec() {
    const f = form.elements;
    if (f.raw.value.trim()) return f.raw.value;
    const audience = f.source.value === "synthetic"
      ? { source: "synthetic", count: Number(f.count.value) }
      : { source: "file", path: f.path.value };
    const locale = { title: f.title.value };
    if (f.body.value) locale.body = f.body.value;
    const s = {
      id: f.id.value.trim(),
      audience,
      only_reachable: f.only_reachable.checked,
      template: { default_locale: "en", locales: { en: locale } },
      endpoint: { url: f.url.value.trim(), max_in_flight: Number(f.max_in_flight.value), rate_per_sec: Number(f.rate_per_sec.value) },
    };
    if (f.not_before.value.trim()) s.not_before = f.not_before.value.trim();
    if (f.expires_at.value.trim()) s.expires_at = f.expires_at.value.trim();
    return JSON.stringify(s);
  }

  function clearErrors() {
    form.querySelectorAll(".invalid").forEach((n) => n.classList.remove("invalid"));
    form.querySelectorAll(".field-error").forEach((n) => n.remove());
    document.getElementById("form-error").textContent = "";
  }

  // fieldInput finds the input of a field path, or of its nearest parent.
  function fieldInput(field) {
    for (let f = field; f; f = f.includes(".") ? f.slice(0, f.lastIndexOf(".")) : "") {
      const n = form.querySelector(`[data-field="${CSS.escape(f)}"]`);
      if (n && !n.closest("[hidden]")) return n;
    }
    return null;
  }

  form.onsubmit = async (e) => {
    e.preventDefault();
    clearErrors();
    const btn = document.getElementById("trigger");
    btn.disabled = true;
    try {
      const r = await request("POST", "/api/trigger", spec());
      if (r.ok) {
        document.getElementById("form-error").textContent = "";
        location.href = "/b/" + encodeURIComponent(r.data.id);
        return;
      }
      const msg = (r.data.field ? r.data.field + ": " : "") + (r.data.error || "refused (" + r.status + ")");
      const input = !form.elements.raw.value.trim() && r.data.field ? fieldInput(r.data.field) : null;
      if (input) {
        input.classList.add("invalid");
        input.closest("label").append(el("span", { class: "field-error", text: r.data.error }));
        input.focus();
      }
      document.getElementById("form-error").textContent = msg;
    } finally {
      btn.disabled = false;
    }
  };
})();
