// Follows a version's validation on its admin page: polls the version's validation/ URL and
// shows each step as it starts and ends, with its time. When the run ends the page reloads
// once, so the signature and labels validation read appear, unless the form was edited.
(function () {
  "use strict";
  const box = document.getElementById("validation");
  if (!box || box.dataset.running !== "true") return;
  const list = document.getElementById("validation-steps");
  const statusName = document.getElementById("validation-status-name");
  const message = document.getElementById("validation-message");
  const follow = document.getElementById("validation-follow");
  let edited = false;
  let delay = 700;
  document.addEventListener("input", function () { edited = true; });

  function stepItem(step) {
    const item = document.createElement("li");
    item.dataset.step = step.key;
    item.dataset.state = step.state;
    for (const [cls, text] of [["step-state", step.state], ["step-name", step.name], ["step-time", step.time]]) {
      const span = document.createElement("span");
      span.className = cls;
      span.textContent = text || "";
      item.appendChild(span);
    }
    return item;
  }

  function show(state) {
    box.dataset.status = state.status;
    box.dataset.running = state.running ? "true" : "false";
    for (const name of [statusName, document.getElementById("version-summary-status")]) {
      if (!name) continue;
      name.textContent = state.status_display;
      name.className = "status-" + state.status;
    }
    message.textContent = state.reason ? "— " + state.reason : state.message;
    list.replaceChildren(...state.steps.map(stepItem));
  }

  function finished() {
    follow.textContent = edited
      ? "Validation ended. Save or reload the page to see what it read."
      : "Validation ended; showing its result…";
    if (!edited) window.setTimeout(function () { window.location.reload(); }, 1200);
  }

  async function poll() {
    try {
      const response = await fetch(box.dataset.url, {
        headers: { Accept: "application/json" },
        credentials: "same-origin",
      });
      if (response.ok) {
        const state = await response.json();
        show(state);
        if (!state.running) {
          finished();
          return;
        }
        delay = 700;
      } else {
        delay = Math.min(delay * 2, 10000);
      }
    } catch (error) {
      delay = Math.min(delay * 2, 10000); // the server restarting: try again, less often
    }
    window.setTimeout(poll, delay);
  }

  window.setTimeout(poll, delay);
})();
