// Draws each version's reliability diagram on an evaluation's admin page (Chart.js, vendored):
// bars for the share right in each confidence band, a dashed line for perfect calibration.
// The figures come from the page itself (json_script), so the table below each chart says the same.
(function () {
  "use strict";
  const source = document.getElementById("calibration-data");
  if (!source || typeof Chart === "undefined") return;
  const data = JSON.parse(source.textContent);
  const colours = { champion: "rgba(46, 111, 219, 0.75)", challenger: "rgba(178, 106, 0, 0.75)" };

  function percent(value) {
    return Math.round(value * 100) + " %";
  }

  for (const [role, version] of Object.entries(data)) {
    const canvas = document.getElementById("calibration-" + role);
    if (!canvas || !version) continue;
    const bins = version.bins;
    new Chart(canvas, {
      data: {
        labels: bins.map((bin) => percent(bin.low) + "–" + percent(bin.high)),
        datasets: [
          {
            type: "bar",
            label: "share right",
            data: bins.map((bin) => bin.accuracy),
            backgroundColor: colours[role],
          },
          {
            type: "line",
            label: "perfectly calibrated",
            data: bins.map((bin) => (bin.low + bin.high) / 2),
            borderColor: "rgba(0, 0, 0, 0.5)",
            borderDash: [6, 4],
            pointRadius: 0,
            fill: false,
          },
        ],
      },
      options: {
        maintainAspectRatio: false,
        animation: false,
        scales: {
          y: { min: 0, max: 1, ticks: { callback: percent }, title: { display: true, text: "share right" } },
          x: { title: { display: true, text: "confidence" } },
        },
        plugins: {
          tooltip: {
            callbacks: {
              afterLabel: (item) => bins[item.dataIndex].count + " image(s)",
            },
          },
        },
      },
    });
  }
})();
