/* Plant overview: last verdict of each station live; figures refreshed after events. */
(function () {
  "use strict";
  const LS = window.LineSight;
  const el = LS.el;
  let refreshTimer = null;

  function row(line, station) {
    const card = document.querySelector('[data-line="' + CSS.escape(line) + '"]');
    return card && card.querySelector('[data-station="' + CSS.escape(station) + '"]');
  }

  function badge(frame) {
    if (!frame) return el("span", { class: "muted" }, "no frame yet");
    return el(
      "a",
      {
        class: "verdict verdict-" + frame.verdict,
        href: "/dashboard/inspections/" + frame.id + "/",
        dataset: { inspectionId: frame.id },
      },
      frame.verdict.charAt(0).toUpperCase() + frame.verdict.slice(1) + " · " + frame.label + " " + LS.pct(frame.confidence)
    );
  }

  function setField(tr, name, content) {
    const cell = tr.querySelector('[data-field="' + name + '"]');
    if (cell) cell.replaceChildren(content);
  }

  // Same words as templates/inspection/_yield.html.
  function renderYield(node, fpy) {
    if (!node || !fpy) return;
    node.replaceChildren(
      "First-pass yield ",
      el("strong", { "data-field": "fpy" }, LS.pct(fpy.first_pass_yield)),
      " this shift (" + fpy.shift + "), ",
      el("span", { "data-field": "fpy_before" }, LS.pct(fpy.before.first_pass_yield)),
      " the shift before (" + fpy.before.shift + ")"
    );
  }

  async function refresh() {
    refreshTimer = null;
    const res = await LS.api("GET", "/dashboard/status.json");
    if (!res.ok) return;
    for (const line of res.data.lines) {
      const card = document.querySelector('[data-line="' + CSS.escape(line.line) + '"]');
      if (!card) continue;
      card.querySelector("[data-line-pending]").textContent = line.pending;
      renderYield(card.querySelector("[data-line-yield]"), line.yield);
      for (const s of line.stations) {
        const tr = row(line.line, s.station);
        if (!tr) continue;
        setField(tr, "last", badge(s.last));
        setField(tr, "frames_per_minute", s.frames_per_minute.toFixed(1));
        setField(tr, "defect_rate_hour", s.defect_rate_hour === null ? "—" : Math.round(s.defect_rate_hour * 100) + " %");
        setField(tr, "defect_rate_shift", s.defect_rate_shift === null ? "—" : Math.round(s.defect_rate_shift * 100) + " %");
        setField(tr, "pending", String(s.pending));
        setField(tr, "versions", s.versions.length ? s.versions.join(", ") : "nothing deployed");
      }
    }
  }

  function scheduleRefresh() {
    if (refreshTimer === null) refreshTimer = setTimeout(refresh, 2000);
  }

  LS.follow("/ws/plant/", {
    onOpen: refresh,
    onEvent(event) {
      if (event.type === "inspection.created") {
        const tr = row(event.inspection.line, event.inspection.station);
        if (tr) setField(tr, "last", badge(event.inspection));
      }
      scheduleRefresh();
    },
  });
})();
