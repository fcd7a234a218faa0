// The operator's dashboard: keys, usage chart, channels, recent failures (admin token).
"use strict";

(() => {
  const token = vg.stored("vidgate.adminToken");
  const $ = (id) => document.getElementById(id);
  const COLORS = ["#0b5cad", "#d9480f", "#2b8a3e", "#862e9c", "#c92a2a", "#087f5b", "#5f3dc4",
                  "#e67700"];
  let keys = [];

  const admin = (path) => vg.call(token.get(), "GET", path);

  async function load() {
    if (!token.get()) {
      $("panels").hidden = true;
      vg.say($("login-status"), "Log in with the admin token.");
      return;
    }
    try {
      keys = (await admin("/admin/keys")).data;
    } catch (err) {
      $("panels").hidden = true;
      vg.say($("login-status"), `Login failed: ${err.message}`, true);
      return;
    }
    vg.say($("login-status"), `Logged in. ${keys.length} key(s).`);
    $("panels").hidden = false;
    renderKeys();
    await Promise.all([loadUsage(), loadChannels(), loadFailures()]);
  }

  function keyName(id) {
    const key = keys.find((k) => k.id === id);
    return key ? (key.name || key.prefix) : id;
  }

  function rows(tbody, items) { $(tbody).querySelector("tbody").replaceChildren(...items); }

  function renderKeys() {
    rows("keys-table", keys.map((k) => vg.el("tr", {},
      vg.el("td", {}, k.name || "(unnamed)", k.revoked_at ? vg.el("span", { class: "badge open" },
            " revoked") : null),
      vg.el("td", {}, vg.el("code", {}, `${k.prefix}…`)),
      vg.el("td", {}, vg.usd(k.balance_micro)),
      vg.el("td", {}, `${k.rpm_limit ?? "∞"} rpm · ${k.max_concurrent ?? "∞"} at once`),
      vg.el("td", {}, (k.allowed_models || ["all"]).join(", ")))));
    const select = $("usage-key");
    const chosen = select.value;
    select.replaceChildren(vg.el("option", { value: "" }, "All keys"),
      ...keys.map((k) => vg.el("option", { value: k.id, selected: k.id === chosen },
                               k.name || k.prefix)));
  }

  async function loadUsage() {
    const keyId = $("usage-key").value;
    const data = (await admin(`/admin/usage${keyId ? `?key_id=${encodeURIComponent(keyId)}` : ""}`)).data;
    rows("usage-table", data.map((u) => vg.el("tr", {},
      vg.el("td", {}, u.day), vg.el("td", {}, keyName(u.key_id)), vg.el("td", {}, u.model),
      vg.el("td", {}, u.tasks_completed), vg.el("td", {}, u.tasks_failed),
      vg.el("td", {}, u.seconds_delivered), vg.el("td", {}, vg.usd(u.cost_micro)))));
    drawChart(data);
  }

  // Stacked bars: one per UTC day, a segment per model, height = tasks finished.
  function drawChart(data) {
    const box = $("usage-chart");
    const days = [...new Set(data.map((u) => u.day))].sort().slice(-30);
    const models = [...new Set(data.map((u) => u.model))].sort();
    const color = (model) => COLORS[models.indexOf(model) % COLORS.length];
    $("usage-legend").replaceChildren(...models.map((m) => {
      const swatch = vg.el("span", { class: "swatch" });
      swatch.style.background = color(m);  // CSSOM: the page's CSP forbids style attributes
      return vg.el("li", {}, swatch, m);
    }));
    if (!days.length) {
      box.replaceChildren(vg.el("p", { class: "hint" }, "No finished tasks yet."));
      return;
    }
    const totals = {};
    for (const u of data) {
      totals[u.day] = totals[u.day] || {};
      totals[u.day][u.model] = (totals[u.day][u.model] || 0) + u.tasks_completed + u.tasks_failed;
    }
    const max = Math.max(1, ...days.map((d) => Object.values(totals[d] || {}).reduce((a, b) => a + b, 0)));
    // drawn at the box's own width, so labels keep their size on a phone
    const W = Math.max(300, Math.round(box.clientWidth || 640)), H = 240;
    const left = 36, bottom = 28, top = 10;
    const slot = (W - left) / days.length, bar = Math.min(48, slot * 0.7);
    const scale = (H - bottom - top) / max;
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    const node = (tag, attrs, text) => {
      const n = document.createElementNS(ns, tag);
      for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
      if (text !== undefined) n.textContent = text;
      svg.append(n);
      return n;
    };
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    svg.setAttribute("role", "img");
    const summary = days.map((d) => `${d}: ` + models.filter((m) => totals[d][m])
      .map((m) => `${totals[d][m]} ${m}`).join(", ")).join("; ");
    svg.setAttribute("aria-label", `Tasks finished per day by model. ${summary}`);
    node("line", { x1: left, y1: H - bottom, x2: W, y2: H - bottom, stroke: "#8c959f" });
    node("text", { x: left - 6, y: top + 4, "text-anchor": "end", "font-size": 11,
                   fill: "#57606a" }, String(max));
    node("text", { x: left - 6, y: H - bottom, "text-anchor": "end", "font-size": 11,
                   fill: "#57606a" }, "0");
    days.forEach((day, i) => {
      const x = left + i * slot + (slot - bar) / 2;
      let y = H - bottom;
      for (const model of models) {
        const count = (totals[day] || {})[model] || 0;
        if (!count) continue;
        const h = count * scale;
        y -= h;
        const rect = node("rect", { x, y, width: bar, height: h, fill: color(model),
                                    "data-model": model, "data-day": day });
        const title = document.createElementNS(ns, "title");
        title.textContent = `${day} ${model}: ${count}`;
        rect.append(title);
      }
      if (days.length <= 10 || i % Math.ceil(days.length / 10) === 0) {
        node("text", { x: x + bar / 2, y: H - 10, "text-anchor": "middle", "font-size": 11,
                       fill: "#57606a" }, day.slice(5));
      }
    });
    box.replaceChildren(svg);
  }

  async function loadChannels() {
    const data = (await admin("/admin/channels")).data;
    rows("channels-table", data.map((c) => vg.el("tr", {},
      vg.el("td", {}, vg.el("strong", {}, c.name), vg.el("br"), vg.el("span", { class: "hint" }, c.kind)),
      vg.el("td", {}, vg.el("span", { class: `badge ${c.breaker.state}` },
                            c.breaker.state.replace("_", "-")),
            c.breaker.failures ? ` ${c.breaker.failures} refusal(s)` : ""),
      vg.el("td", {}, c.max_in_flight ? `${c.in_flight} / ${c.max_in_flight}` : c.in_flight),
      vg.el("td", {}, c.models.join(", ")))));
  }

  async function loadFailures() {
    const data = (await admin("/admin/tasks?status=failed&limit=20")).data;
    rows("failures-table", data.map((t) => vg.el("tr", {},
      vg.el("td", {}, vg.when(t.status_updated_at)),
      vg.el("td", {}, vg.el("code", {}, t.id), vg.el("br"),
            vg.el("span", { class: "hint" }, keyName(t.key_id))),
      vg.el("td", {}, t.model), vg.el("td", {}, t.channel || "—"),
      vg.el("td", {}, t.error ? vg.el("code", {}, t.error.code) : "", t.error ? ` ${t.error.message}` : ""))));
    vg.say($("failures-status"), data.length ? "" : "No failed tasks.");
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("admin-token").value = token.get();
    $("login-form").addEventListener("submit", (event) => {
      event.preventDefault();
      token.set($("admin-token").value.trim());
      load();
    });
    $("logout").addEventListener("click", () => {
      token.set("");
      $("admin-token").value = "";
      load();
    });
    $("reload").addEventListener("click", load);
    $("usage-key").addEventListener("change", () => loadUsage().catch((err) =>
      vg.say($("login-status"), err.message, true)));
    load();
  });
})();
