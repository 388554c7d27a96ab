/* Review queue: keyboard-first decisions, claims, undo, live updates from other inspectors.
 *
 * Keys: a / Enter confirm, r reject, 1-9 correct to the numbered defect type,
 * c comment, s skip, u undo; + / - zoom the frame, arrows pan it, 0 fits it
 * again (the wheel and a drag do the same). A decision is posted at once and the next frame,
 * already preloaded, is shown without waiting for the answer; a refusal (the
 * frame was claimed or decided by someone else) is shown in the message line.
 */
(function () {
  "use strict";
  const LS = window.LineSight;
  const el = LS.el;
  const config = JSON.parse(document.getElementById("review-config").textContent);
  const SEVERITY = { critical: 0, major: 1, minor: 2 };
  const DECISIONS = { confirm: "Confirmed", reject: "Rejected (no defect)", correct: "Corrected" };

  const $ = (selector) => document.querySelector(selector);
  const figure = $("[data-current]");
  const image = $("[data-image]");
  const empty = $("[data-empty]");
  const message = $("[data-message]");
  const pendingCount = $("[data-pending]");
  const upcoming = $("[data-upcoming]");
  const commentBox = $("[data-comment-box]");
  const commentInput = $("[data-comment]");
  const commentShown = $("[data-comment-shown]");
  const zoomBox = $("[data-zoom-box]");
  const zoomLevel = $("[data-zoom-level]");
  const shiftLine = $("[data-shift]");
  const shift = { decided: config.shift.decided, began: new Date(config.shift.began_at) };
  const view = { scale: 1, x: 0, y: 0 }; // zoom and pan of the frame on screen

  let queue = []; // frames after the current one, in queue order
  let current = null; // {item, shownAt, supersedes, comment, undoOf}
  const gone = new Set(); // decided, skipped or taken by someone else: not shown again
  const history = []; // my decisions, newest last: {item, decision, promise, verification}
  const timings = []; // ms from a key press to the next frame on screen
  const preloaded = new Map(); // id -> Image
  let claimTimer = null;
  let refreshTimer = null;

  window.LineSightReview = {
    timings,
    state: () => ({ current: current && current.item.id, queue: queue.map((i) => i.id) }),
  };

  const rank = (item) => (item.defect_severity in SEVERITY ? SEVERITY[item.defect_severity] : 3);
  const order = (a, b) =>
    rank(a) - rank(b) || new Date(a.captured_at) - new Date(b.captured_at) || a.id - b.id;
  const matches = (item) =>
    (!config.line || item.line === config.line) && (!config.station || item.station === config.station);
  const isQueued = (id) => queue.some((i) => i.id === id);

  function say(text, kind) {
    message.textContent = text;
    message.className = "message " + (kind || "info");
  }

  const reason = (item) => config.review_reasons[item.review_reason] || "";

  function renderShift() {
    // Rate over the time since the shift began (at least a quarter of an hour, so the
    // first decisions of a shift do not read as hundreds per hour).
    const hours = Math.max((Date.now() - shift.began) / 3600000, 0.25);
    shiftLine.replaceChildren(
      "Your shift (" + config.shift.name + "): ",
      el("strong", { dataset: { shiftDecided: "" } }, String(shift.decided)),
      " decided · ",
      el("strong", {}, pendingCount.textContent),
      " left · ",
      el("strong", {}, String(Math.round(shift.decided / hours))),
      " per hour"
    );
  }

  function applyView() {
    image.style.transform =
      view.scale === 1 ? "" : "translate(" + view.x + "px," + view.y + "px) scale(" + view.scale + ")";
    zoomBox.classList.toggle("zoomed", view.scale > 1);
    zoomLevel.hidden = view.scale === 1;
    zoomLevel.textContent = Math.round(view.scale * 100) + " %";
  }

  function zoom(factor) {
    view.scale = Math.min(Math.max(view.scale * factor, 1), 8);
    if (view.scale === 1) view.x = view.y = 0;
    applyView();
  }

  function pan(dx, dy) {
    if (view.scale === 1) return;
    // Never further than the frame's edge.
    const limitX = (zoomBox.clientWidth * (view.scale - 1)) / 2;
    const limitY = (zoomBox.clientHeight * (view.scale - 1)) / 2;
    view.x = Math.min(Math.max(view.x + dx, -limitX), limitX);
    view.y = Math.min(Math.max(view.y + dy, -limitY), limitY);
    applyView();
  }

  function fit() {
    view.scale = 1;
    view.x = view.y = 0;
    applyView();
  }

  function field(name, value) {
    for (const node of document.querySelectorAll('[data-field="' + name + '"]')) node.textContent = value;
  }

  function insert(item) {
    if (gone.has(item.id) || isQueued(item.id) || (current && current.item.id === item.id)) return;
    if (item.review_status !== "pending" || !matches(item)) return;
    const at = queue.findIndex((other) => order(item, other) < 0);
    if (at === -1) queue.push(item);
    else queue.splice(at, 0, item);
  }

  function remove(id) {
    queue = queue.filter((i) => i.id !== id);
    preloaded.delete(id);
  }

  function preload() {
    // Fetch and decode the next frames ahead, so showing one is a swap.
    for (const item of queue.slice(0, 3)) {
      if (!preloaded.has(item.id)) {
        const img = new Image();
        img.src = item.image_url;
        img.decode().catch(() => {});
        preloaded.set(item.id, img);
      }
    }
  }

  function renderUpcoming() {
    upcoming.replaceChildren(
      ...queue.slice(0, 8).map((item) =>
        el(
          "li",
          { dataset: { inspectionId: item.id }, class: "verdict-" + item.verdict },
          "#" + item.id + " " + item.station + " · " + item.label + " " + LS.pct(item.confidence),
          reason(item) ? el("span", { class: "muted" }, " · " + reason(item)) : ""
        )
      )
    );
  }

  function render(keyPressedAt) {
    renderUpcoming();
    if (!current) {
      figure.hidden = true;
      figure.removeAttribute("data-inspection-id");
      empty.hidden = false;
      empty.textContent = "Nothing waits for review. New frames appear here by themselves.";
      for (const name of ["review_reason", "verdict", "label", "confidence", "defect_type", "line", "station", "product", "serial", "lot", "captured_at", "model_version"]) field(name, "");
      $("[data-topk]").replaceChildren();
      return;
    }
    const item = current.item;
    empty.hidden = true;
    figure.hidden = false;
    figure.dataset.inspectionId = item.id;
    image.alt = "frame " + item.id;
    image.src = item.image_url;
    $("[data-detail-link]").href = "/dashboard/inspections/" + item.id + "/";
    field("id", item.id);
    field("review_reason", reason(item) || "—");
    field("verdict", item.verdict);
    $('.facts [data-field="verdict"]').className = "verdict verdict-" + item.verdict;
    field("label", item.label);
    field("confidence", LS.pct(item.confidence));
    field("defect_type", item.defect_type || "none");
    field("line", item.line);
    field("station", item.station);
    field("product", item.product || "—");
    field("serial", item.serial || "—");
    field("lot", item.lot || "—");
    field("captured_at", LS.time(item.captured_at));
    field("model_version", LS.version(item.model_version));
    const note = $('[data-field="undo"]');
    note.hidden = !current.undoOf;
    note.textContent = current.undoOf ? "undoing your " + current.undoOf + ": decide again (s keeps it)" : "";
    $("[data-topk]").replaceChildren(
      ...(item.top_k || []).map((row) =>
        el("tr", {}, el("td", {}, row.label), el("td", {}, LS.pct(row.confidence)))
      )
    );
    setComment("");
    if (keyPressedAt !== undefined) {
      const shownId = item.id;
      const record = () =>
        requestAnimationFrame(() => {
          if (current && current.item.id === shownId) timings.push(performance.now() - keyPressedAt);
        });
      image.decode().then(record, record);
    }
  }

  function setComment(text) {
    if (current) current.comment = text;
    commentShown.hidden = !text;
    commentShown.textContent = text ? "Comment: " + text : "";
  }

  async function claim(item) {
    const res = await LS.api("POST", "/api/v1/inspections/" + item.id + "/claim/");
    if (res.ok || !current || current.item.id !== item.id) return;
    if (res.status === 409) {
      gone.add(item.id);
      say(res.data.detail + " Moved on to the next frame.", "warning");
      next();
    }
  }

  function show(item, { claimIt = true, supersedes = null, undoOf = null, keyPressedAt } = {}) {
    clearInterval(claimTimer);
    current = item ? { item, shownAt: performance.now(), supersedes, comment: "", undoOf } : null;
    fit();
    render(keyPressedAt);
    preload();
    if (!item) return;
    if (claimIt) claim(item);
    // Keep the claim while the inspector looks at the frame.
    claimTimer = setInterval(() => claim(item), (config.claim_seconds * 1000) / 2);
    if (queue.length < 5) scheduleRefresh(0);
  }

  function next(keyPressedAt) {
    const item = queue.shift() || null;
    if (item) preloaded.delete(item.id);
    show(item, { keyPressedAt });
  }

  function decide(decision, defectCode, keyPressedAt) {
    if (!current) return;
    const { item, supersedes, comment, shownAt } = current;
    gone.add(item.id);
    const entry = { item, decision, verification: null };
    const body = {
      decision,
      defect_type: defectCode || null,
      comment,
      time_spent_ms: Math.round(performance.now() - shownAt),
      supersedes,
    };
    entry.promise = LS.api("POST", "/api/v1/inspections/" + item.id + "/verifications/", body).then((res) => {
      if (res.ok) {
        entry.verification = res.data;
        if (!body.supersedes) shift.decided += 1; // deciding again counts the frame once
        renderShift();
        say("Saved #" + item.id + ": " + DECISIONS[decision] + (defectCode ? " to " + defectCode : "") + ".", "ok");
      } else if (res.status === 409) {
        say(res.data.detail, "warning");
      } else {
        // Not saved for another reason: the frame comes back first in line.
        gone.delete(item.id);
        queue.unshift(item);
        renderUpcoming();
        say("Not saved #" + item.id + ": " + (res.data.detail || "HTTP " + res.status), "error");
      }
      return entry;
    });
    history.push(entry);
    if (history.length > 100) history.shift();
    next(keyPressedAt);
  }

  async function skip(keyPressedAt) {
    if (!current) return;
    const { item, undoOf } = current;
    gone.add(item.id);
    next(keyPressedAt);
    say(undoOf ? "Kept your earlier decision on #" + item.id + "." : "Skipped #" + item.id + ".", "info");
    await LS.api("DELETE", "/api/v1/inspections/" + item.id + "/claim/");
  }

  async function undo() {
    const entry = history.pop();
    if (!entry) {
      say("Nothing to undo.", "info");
      return;
    }
    await entry.promise;
    if (!entry.verification) {
      say("Your decision on #" + entry.item.id + " was not saved; nothing to undo.", "warning");
      return;
    }
    const res = await LS.api("POST", "/api/v1/verifications/" + entry.verification.id + "/undo/");
    if (!res.ok) {
      say(res.data.detail || "Could not undo (HTTP " + res.status + ").", "error");
      return;
    }
    if (current) queue.unshift(current.item);
    gone.delete(entry.item.id);
    show(res.data.inspection, {
      claimIt: false,
      supersedes: res.data.supersedes,
      undoOf: DECISIONS[entry.decision].toLowerCase(),
    });
    say("Decide #" + entry.item.id + " again; the new decision replaces your earlier one.", "info");
  }

  async function refresh() {
    refreshTimer = null;
    const params = new URLSearchParams({ limit: "50" });
    if (config.line) params.set("line", config.line);
    if (config.station) params.set("station", config.station);
    const res = await LS.api("GET", "/api/v1/review/queue/?" + params);
    if (!res.ok) return;
    pendingCount.textContent = res.data.pending;
    renderShift();
    for (const item of res.data.results) insert(item);
    if (!current) next();
    else {
      renderUpcoming();
      preload();
    }
  }

  function scheduleRefresh(delay) {
    if (refreshTimer === null) refreshTimer = setTimeout(refresh, delay);
  }

  function takenByOther(id, text) {
    gone.add(id);
    remove(id);
    if (current && current.item.id === id && !current.undoOf) {
      say(text, "warning");
      next();
    } else {
      renderUpcoming();
    }
  }

  LS.follow("/ws/review/", {
    onOpen: () => scheduleRefresh(0),
    onEvent(event) {
      if (event.type === "inspection.created") {
        insert(event.inspection);
        if (!current) next();
        else renderUpcoming();
        preload();
      } else if (event.type === "inspection.verified") {
        if (event.verification.inspector !== config.user) {
          takenByOther(event.inspection.id, "#" + event.inspection.id + " was just decided by " + event.verification.inspector + "; here is the next frame.");
        }
      } else if (event.type === "review.claimed") {
        if (event.claim.by !== config.user) {
          takenByOther(event.claim.inspection, "#" + event.claim.inspection + " was taken by " + event.claim.by + "; here is the next frame.");
        }
      } else if (event.type === "review.released") {
        if (event.claim.by !== config.user) {
          gone.delete(event.inspection.id);
          insert(event.inspection);
          if (!current) next();
          else renderUpcoming();
        }
      }
      scheduleRefresh(1000);
    },
  });

  commentInput.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      setComment(commentInput.value.trim());
      say("Comment kept for #" + (current ? current.item.id : "") + "; decide to save it with the decision.", "info");
    } else if (event.key === "Escape") {
      setComment("");
    } else {
      return;
    }
    event.preventDefault();
    event.stopPropagation();
    commentBox.hidden = true;
    commentInput.blur();
  });

  document.addEventListener("keydown", (event) => {
    if (event.target === commentInput || event.ctrlKey || event.metaKey || event.altKey) return;
    if (["INPUT", "SELECT", "TEXTAREA", "BUTTON"].includes(event.target.tagName)) return;
    const at = performance.now();
    const key = event.key;
    if (key === "a" || key === "Enter") decide("confirm", null, at);
    else if (key === "r") decide("reject", null, at);
    else if (/^[1-9]$/.test(key)) {
      const defect = config.defect_types[Number(key) - 1];
      if (!defect) return;
      decide("correct", defect.code, at);
    } else if (key === "c") {
      if (!current) return;
      commentBox.hidden = false;
      commentInput.value = current.comment;
      commentInput.focus();
    } else if (key === "s") skip(at);
    else if (key === "u") undo();
    else if (key === "+" || key === "=") zoom(1.5);
    else if (key === "-") zoom(1 / 1.5);
    else if (key === "0") fit();
    else if (key.startsWith("Arrow") && view.scale > 1) {
      const step = 60;
      const moves = { ArrowLeft: [step, 0], ArrowRight: [-step, 0], ArrowUp: [0, step], ArrowDown: [0, -step] };
      pan(...moves[key]);
    } else return;
    event.preventDefault();
  });

  zoomBox.addEventListener(
    "wheel",
    (event) => {
      event.preventDefault();
      zoom(event.deltaY < 0 ? 1.25 : 1 / 1.25);
    },
    { passive: false }
  );
  let drag = null;
  zoomBox.addEventListener("pointerdown", (event) => {
    if (view.scale === 1) return;
    drag = { x: event.clientX, y: event.clientY };
    zoomBox.setPointerCapture(event.pointerId);
  });
  zoomBox.addEventListener("pointermove", (event) => {
    if (!drag) return;
    pan(event.clientX - drag.x, event.clientY - drag.y);
    drag = { x: event.clientX, y: event.clientY };
  });
  zoomBox.addEventListener("pointerup", () => (drag = null));
  renderShift();
  setInterval(renderShift, 60000);

  window.addEventListener("pagehide", () => {
    if (current && !current.undoOf) {
      fetch("/api/v1/inspections/" + current.item.id + "/claim/", {
        method: "DELETE",
        keepalive: true,
        credentials: "same-origin",
        headers: { "X-CSRFToken": LS.csrfToken() },
      });
    }
  });
})();
