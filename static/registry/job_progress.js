// Follows a background job on its admin page: polls GET /api/v1/jobs/{id}/ and shows the
// progress; when the job ends the page reloads, and the server renders the job's report.
(function () {
  "use strict";
  const box = document.getElementById("job");
  if (!box) return;
  const url = box.dataset.jobUrl;
  const finished = new Set(["done", "failed", "cancelled"]);
  const bar = document.getElementById("job-progress");
  const percent = document.getElementById("job-percent");
  const message = document.getElementById("job-message");
  const state = document.getElementById("job-state");
  let delay = 1000;

  function show(job) {
    const value = Math.round((job.progress || 0) * 100);
    bar.value = value;
    percent.textContent = value;
    message.textContent = job.message || "";
    state.textContent = job.state;
  }

  async function poll() {
    try {
      const response = await fetch(url, {
        headers: { Accept: "application/json" },
        credentials: "same-origin",
      });
      if (response.ok) {
        const job = await response.json();
        show(job);
        if (finished.has(job.state)) {
          window.location.reload();
          return;
        }
        delay = 1000;
      } else if (response.status >= 400 && response.status < 500 && response.status !== 429) {
        // Not ours to read (logged out, or no permission): say so instead of polling on.
        message.textContent = "The job's state cannot be read from here; reload the page.";
        return;
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
