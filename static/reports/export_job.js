// Follows a background workbook export through GET /api/v1/jobs/{id}/ until it ends,
// then shows the download link (done) or the reason and a "run again" button (failed).
(function () {
  "use strict";
  const section = document.getElementById("export-job");
  if (!section) return;
  const status = document.getElementById("export-status");
  const bar = document.getElementById("export-progress");
  const runAgain = document.getElementById("export-run-again");
  const POLL_MS = 2000;

  function text(parent, tag, content, attributes) {
    const node = document.createElement(tag);
    node.textContent = content;
    Object.entries(attributes || {}).forEach(([name, value]) => node.setAttribute(name, value));
    parent.appendChild(node);
    return node;
  }

  function show(job) {
    status.dataset.status = job.state;
    section.dataset.state = job.state;
    status.replaceChildren();
    bar.value = job.progress;
    bar.hidden = job.state !== "queued" && job.state !== "running";
    runAgain.hidden = job.state !== "failed" && job.state !== "cancelled";
    if (job.state === "done") {
      status.append(`Ready: ${job.result.row_count} rows. `);
      text(status, "a", "Download the workbook", {
        class: "button",
        id: "export-download",
        href: job.result.download_url,
      });
    } else if (job.state === "failed") {
      text(status, "span", `The export failed: ${job.error}`, { class: "error" });
    } else if (job.state === "cancelled") {
      status.append("The export was cancelled.");
    } else if (job.state === "running") {
      const detail = job.message ? ` (${job.message})` : "";
      status.append(`Building the workbook: ${Math.round(job.progress * 100)} %${detail}.`);
    } else {
      status.append("Queued: waiting for the background worker (make worker).");
    }
  }

  async function poll() {
    let job = null;
    try {
      const response = await fetch(section.dataset.jobUrl, {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      if ([401, 403, 404].includes(response.status)) return; // signed out, or the job is gone
      if (response.ok) job = await response.json();
    } catch (error) {
      // The server is restarting or the network dropped: try again at the next tick.
    }
    if (job) show(job);
    if (!job || job.state === "queued" || job.state === "running") {
      window.setTimeout(poll, POLL_MS);
    }
  }

  window.setTimeout(poll, POLL_MS / 4);
})();
