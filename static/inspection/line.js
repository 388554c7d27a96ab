/* Line view: a tile per station that follows its verdicts (with its defect rate over the
 * last hour in 5-minute bars), and the last frames, live. */
(function () {
  "use strict";
  const LS = window.LineSight;
  const el = LS.el;
  const initial = JSON.parse(document.getElementById("line-initial").textContent);
  const tiles = document.querySelector("[data-tiles]");
  const strip = document.querySelector("[data-frames]");
  const frames = new Map(); // id -> {frame, node}
  const tileLast = new Map(); // station -> last frame shown on its tile
  // Ids grow with arrival; the newest frame has the highest id.
  const newer = (a, b) => a.id > b.id;

  // dashboard.css puts the " · " before it only when there is something to say.
  function reviewText(frame) {
    if (frame.review_status === "pending") return "awaiting review";
    if (frame.review_status === "verified") return "verified";
    return "";
  }

  function frameNode(frame) {
    const node = el(
      "a",
      {
        class: "frame verdict-" + frame.verdict,
        href: "/dashboard/inspections/" + frame.id + "/",
        dataset: { inspectionId: frame.id, station: frame.station },
      },
      el("img", { src: frame.image_url, alt: "frame " + frame.id, loading: "lazy" }),
      el(
        "span",
        { class: "caption" },
        el("strong", {}, frame.label),
        " ",
        LS.pct(frame.confidence),
        el("br"),
        frame.station,
        el("span", { class: "review", "data-field": "review" }, reviewText(frame))
      )
    );
    return node;
  }

  function tileFor(station) {
    let tile = tiles.querySelector('[data-station="' + CSS.escape(station) + '"]');
    if (!tile) {
      tile = el(
        "article",
        { class: "tile verdict-none", dataset: { station } },
        el("h2", {}, station),
        el("p", { class: "tile-verdict", "data-field": "verdict" }, "waiting for frames"),
        el("p", { class: "tile-label", "data-field": "label" }),
        el("p", { class: "tile-model muted", "data-field": "versions" }, "")
      );
      tiles.append(tile);
    }
    return tile;
  }

  const SVG = "http://www.w3.org/2000/svg";

  // One bar per 5-minute step of the last hour, as tall as its defect rate (the tallest
  // bar is the hour's highest rate, at least 10 %); a step without frames has no bar.
  function drawSpark(station, rates) {
    const tile = tileFor(station);
    let svg = tile.querySelector("svg.spark");
    if (!svg) {
      svg = document.createElementNS(SVG, "svg");
      svg.setAttribute("class", "spark");
      svg.setAttribute("viewBox", "0 0 120 24");
      svg.setAttribute("preserveAspectRatio", "none");
      svg.setAttribute("role", "img");
      tile.append(svg);
    }
    const known = rates.filter((rate) => rate !== null);
    const top = Math.max(0.1, ...known);
    const bars = rates.map((rate, step) => {
      const bar = document.createElementNS(SVG, "rect");
      const height = rate === null ? 0 : Math.max(1, (rate / top) * 22);
      bar.setAttribute("x", String(step * 10 + 1));
      bar.setAttribute("width", "8");
      bar.setAttribute("y", String(24 - height));
      bar.setAttribute("height", String(height));
      if (rate !== null) bar.setAttribute("data-rate", String(rate));
      return bar;
    });
    const label = known.length
      ? "Defect rate, last hour in 5-minute steps: highest " + LS.pct(Math.max(...known)) + ", latest " + LS.pct(known[known.length - 1])
      : "No frames in the last hour";
    const title = document.createElementNS(SVG, "title");
    title.textContent = label;
    svg.setAttribute("aria-label", label);
    svg.replaceChildren(title, ...bars);
  }

  let sparkTimer = null;
  async function refreshSparks() {
    sparkTimer = null;
    const res = await LS.api("GET", "/dashboard/status.json?line=" + encodeURIComponent(initial.line));
    if (!res.ok) return;
    for (const line of res.data.lines) for (const s of line.stations) drawSpark(s.station, s.sparkline);
  }
  const scheduleSparks = (delay) => {
    if (sparkTimer === null) sparkTimer = setTimeout(refreshSparks, delay);
  };
  setInterval(() => scheduleSparks(0), 60000);

  function updateTile(frame) {
    const last = tileLast.get(frame.station);
    if (last && !newer(frame, last) && last.id !== frame.id) return;
    tileLast.set(frame.station, frame);
    const tile = tileFor(frame.station);
    tile.className = "tile verdict-" + frame.verdict;
    tile.dataset.inspectionId = frame.id;
    tile.querySelector('[data-field="verdict"]').textContent = frame.verdict.toUpperCase();
    tile.querySelector('[data-field="label"]').textContent = frame.label + " · " + LS.pct(frame.confidence);
  }

  function render() {
    const ordered = [...frames.values()].sort((a, b) => (newer(a.frame, b.frame) ? -1 : 1));
    for (const stale of ordered.splice(initial.max_frames)) {
      stale.node.remove();
      frames.delete(stale.frame.id);
    }
    strip.replaceChildren(...ordered.map((entry) => entry.node));
  }

  function upsert(frame) {
    if (frame.line !== initial.line) return;
    const known = frames.get(frame.id);
    if (known) {
      known.frame = frame;
      known.node.querySelector('[data-field="review"]').textContent = reviewText(frame);
    } else {
      frames.set(frame.id, { frame, node: frameNode(frame) });
    }
    updateTile(frame);
  }

  for (const station of initial.stations) {
    if (station.last) tileLast.set(station.station, station.last);
    drawSpark(station.station, station.sparkline);
  }
  for (const frame of initial.frames.slice().reverse()) upsert(frame);
  render();

  /**
   * Bring the screen up to date from the API after (re)connecting: the last
   * frames of the line with their current review status, and the last frame
   * of every station for the tiles. Whatever arrived while the socket was
   * down is in there, so nothing on screen is silently stale.
   */
  async function catchUp() {
    const stations = [...tiles.querySelectorAll("[data-station]")].map((tile) => tile.dataset.station);
    const urls = [
      "/api/v1/inspections/?line=" + encodeURIComponent(initial.line) + "&page_size=" + initial.max_frames,
      ...stations.map((code) => "/api/v1/inspections/?station=" + encodeURIComponent(code) + "&page_size=1"),
    ];
    const answers = await Promise.all(urls.map((url) => LS.api("GET", url)));
    for (const answer of answers) {
      if (answer.ok) for (const frame of answer.data.results) upsert(frame);
    }
    render();
  }

  LS.follow("/ws/lines/" + encodeURIComponent(initial.line) + "/", {
    onOpen: catchUp,
    onEvent(event) {
      if (event.type === "inspection.created" || event.type === "inspection.verified") {
        upsert(event.inspection);
        render();
        scheduleSparks(10000);
      } else if (event.type === "deployment.changed" && event.line === initial.line) {
        const tile = tileFor(event.station);
        tile.querySelector('[data-field="versions"]').textContent = event.model
          ? event.model + " v" + event.version
          : "nothing deployed";
      }
    },
  });
})();
