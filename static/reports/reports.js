// Draws the report's charts from the JSON the page embeds (#report-data).
(function () {
  "use strict";
  const source = document.getElementById("report-data");
  if (!source || typeof Chart === "undefined") return;
  const data = JSON.parse(source.textContent);
  const percent = (value) => (value === null ? "—" : (value * 100).toFixed(1) + " %");
  const percentAxis = { min: 0, max: 1, ticks: { callback: (v) => Math.round(v * 100) + " %" } };
  const tooltipPercent = { callbacks: { label: (c) => c.dataset.label + ": " + percent(c.parsed.y) } };
  window.lineSightCharts = {};

  // One day of frames makes a lone dot as a line: bars show its figures plainly.
  const trendType = data.daily.days_with_frames < 2 ? "bar" : "line";
  window.lineSightCharts.trend = new Chart(document.getElementById("chart-trend"), {
    type: trendType,
    data: {
      labels: data.daily.labels,
      datasets: [
        { label: "Defect rate", data: data.daily.defect_rate, borderColor: "#f04438", backgroundColor: "#f04438", spanGaps: true },
        { label: "First-pass yield", data: data.daily.first_pass_yield, borderColor: "#12b76a", backgroundColor: "#12b76a", spanGaps: true },
      ],
    },
    options: { maintainAspectRatio: false, animation: false, scales: { y: percentAxis }, plugins: { tooltip: tooltipPercent } },
  });

  window.lineSightCharts.pareto = new Chart(document.getElementById("chart-pareto"), {
    data: {
      labels: data.pareto.labels,
      datasets: [
        { type: "bar", label: "Confirmed defects", data: data.pareto.confirmed, backgroundColor: "#2e6fdb", yAxisID: "y" },
        { type: "line", label: "Cumulative share", data: data.pareto.cumulative_share, borderColor: "#f79009", backgroundColor: "#f79009", yAxisID: "share" },
      ],
    },
    options: {
      maintainAspectRatio: false,
      animation: false,
      scales: {
        y: { beginAtZero: true, grace: "10%", ticks: { precision: 0 }, title: { display: true, text: "Confirmed defects" } },
        share: { ...percentAxis, position: "right", grid: { drawOnChartArea: false } },
      },
      plugins: {
        tooltip: {
          callbacks: {
            label: (c) => c.dataset.yAxisID === "share" ? c.dataset.label + ": " + percent(c.parsed.y) : c.dataset.label + ": " + c.parsed.y,
          },
        },
      },
    },
  });

  const palette = ["#2e6fdb", "#f04438", "#12b76a", "#f79009", "#7a5af8", "#667085"];
  window.lineSightCharts.agreement = new Chart(document.getElementById("chart-agreement"), {
    type: "line",
    data: {
      labels: data.agreement.labels,
      datasets: Object.entries(data.agreement.versions).map(([name, values], i) => ({
        label: name, data: values, spanGaps: true,
        borderColor: palette[i % palette.length], backgroundColor: palette[i % palette.length],
      })),
    },
    options: { maintainAspectRatio: false, animation: false, scales: { y: percentAxis }, plugins: { tooltip: tooltipPercent } },
  });
})();
