// Follows a training run on its admin page: polls GET /api/v1/trainings/{id}/, shows the
// progress and message, and draws loss and validation metrics per epoch with Chart.js.
// When the run ends the page reloads, and the server renders its version and evaluation.
(function () {
  "use strict";
  const box = document.getElementById("training");
  if (!box) return;
  const url = box.dataset.url;
  const finished = new Set(["done", "failed", "cancelled"]);
  const bar = document.getElementById("training-progress");
  const percent = document.getElementById("training-percent");
  const message = document.getElementById("training-message");
  const state = document.getElementById("training-state");
  const epochs = document.getElementById("training-epochs");
  let chart = null;
  let delay = 2000;

  function series(history, key) {
    return history.map((epoch) => epoch[key]);
  }

  function draw(history) {
    if (typeof Chart === "undefined") return;
    const labels = history.map((epoch) => epoch.epoch);
    const sets = [
      { label: "loss", data: series(history, "loss"), yAxisID: "loss", borderColor: "#b26a00" },
      { label: "validation loss", data: series(history, "val_loss"), yAxisID: "loss", borderColor: "#e0a030" },
      { label: "validation macro-F1", data: series(history, "val_macro_f1"), yAxisID: "score", borderColor: "#2e7d32" },
      { label: "validation accuracy", data: series(history, "val_accuracy"), yAxisID: "score", borderColor: "#417690" },
    ];
    if (chart) {
      chart.data.labels = labels;
      sets.forEach((set, i) => { chart.data.datasets[i].data = set.data; });
      chart.update("none");
      return;
    }
    chart = new Chart(document.getElementById("training-chart"), {
      type: "line",
      data: { labels: labels, datasets: sets.map((set) => ({ ...set, fill: false, tension: 0.2 })) },
      options: {
        animation: false,
        maintainAspectRatio: false,
        scales: {
          x: { title: { display: true, text: "epoch" } },
          loss: { position: "left", beginAtZero: true, title: { display: true, text: "loss" } },
          score: { position: "right", min: 0, max: 1, grid: { drawOnChartArea: false }, title: { display: true, text: "score" } },
        },
      },
    });
  }

  function show(run) {
    const value = Math.round((run.progress || 0) * 100);
    bar.value = value;
    percent.textContent = value;
    message.textContent = run.message || "";
    state.textContent = run.state;
    epochs.textContent = run.history.length + " epoch(s) so far.";
    draw(run.history);
  }

  async function poll() {
    try {
      const response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      if (response.ok) {
        const run = await response.json();
        show(run);
        if (finished.has(run.state) && !finished.has(box.dataset.state)) {
          window.location.reload();
          return;
        }
        if (finished.has(run.state)) return;
        delay = 2000;
      } else {
        delay = Math.min(delay * 2, 10000);
      }
    } catch (error) {
      delay = Math.min(delay * 2, 10000); // the server restarting: try again, less often
    }
    window.setTimeout(poll, delay);
  }

  window.addEventListener("load", function () {
    const initial = document.getElementById("training-history");
    draw(initial ? JSON.parse(initial.textContent) : []);
    if (!finished.has(box.dataset.state)) window.setTimeout(poll, delay);
  });
})();
