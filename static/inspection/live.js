/* LineSight dashboards: a WebSocket that reconnects by itself, safe DOM building, API calls.
 *
 * Everything shown comes from JSON and is written with textContent or
 * setAttribute, never innerHTML, so labels, codes and comments typed by
 * people are shown as text and never run.
 */
(function () {
  "use strict";
  const LS = (window.LineSight = window.LineSight || {});

  /** An element with attributes and children (strings become text nodes). */
  LS.el = function (tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "class") node.className = value;
      else if (name === "dataset") Object.assign(node.dataset, value);
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  };

  // Numbers and times shaped as common/templatetags/linesight_format.py shapes them on the server.
  LS.pct = function (value) {
    if (value === null || value === undefined || !isFinite(value)) return "—";
    return String(Number((value * 100).toFixed(1))) + " %"; // 0.9734 -> "97.3 %", 0.8 -> "80 %"
  };

  LS.ms = function (value) {
    if (value === null || value === undefined || !isFinite(value)) return "—";
    if (Math.abs(value) < 0.001) return value === 0 ? "0 ms" : "< 0.001 ms";
    if (Math.abs(value) < 1) return String(Number(value.toPrecision(2))) + " ms";
    const digits = Math.abs(value) < 10 ? 2 : Math.abs(value) < 100 ? 1 : 0;
    return value.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits }) + " ms";
  };

  LS.version = function (mv) {
    return mv ? mv.model + " v" + mv.version : "nothing deployed";
  };

  LS.time = function (iso) {
    const date = new Date(iso);
    if (isNaN(date)) return "";
    const two = (n) => String(n).padStart(2, "0");
    return date.getFullYear() + "-" + two(date.getMonth() + 1) + "-" + two(date.getDate()) + " " +
      two(date.getHours()) + ":" + two(date.getMinutes()) + ":" + two(date.getSeconds());
  };

  LS.csrfToken = function () {
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  };

  /** fetch() with the session, CSRF and JSON; resolves to {ok, status, data}, never throws. */
  LS.api = async function (method, url, body, options) {
    const headers = { Accept: "application/json" };
    if (method !== "GET") headers["X-CSRFToken"] = LS.csrfToken();
    if (body !== undefined) headers["Content-Type"] = "application/json";
    try {
      const response = await fetch(url, {
        method,
        headers,
        credentials: "same-origin",
        body: body === undefined ? undefined : JSON.stringify(body),
        ...(options || {}),
      });
      let data = null;
      if (response.status !== 204) {
        try {
          data = await response.json();
        } catch (error) {
          data = { detail: "The server answered HTTP " + response.status + "." };
        }
      }
      if (response.status === 401 || response.status === 403) LS.sessionProblem();
      return { ok: response.ok, status: response.status, data: data || {} };
    } catch (error) {
      return { ok: false, status: 0, data: { detail: "The server cannot be reached; retrying." } };
    }
  };

  LS.sessionProblem = function () {
    const status = document.querySelector("[data-live-status]");
    if (status) {
      status.textContent = "not logged in any more: reload the page to log in";
      status.className = "live-status down";
    }
  };

  /**
   * Follow a WebSocket path (e.g. "/ws/lines/L1/"), reconnecting with backoff.
   * onEvent(event) gets every event; onOpen() runs on every (re)connection,
   * after the socket has joined its groups: that is where a page catches up
   * on what it may have missed, so no event is silently lost.
   */
  LS.follow = function (path, { onEvent, onOpen }) {
    const status = document.querySelector("[data-live-status]");
    let attempt = 0;
    let socket = null;
    let pinger = null;
    const show = function (text, state) {
      if (!status) return;
      status.textContent = text;
      status.className = "live-status " + state;
      document.body.dataset.live = state;
    };
    const open = function () {
      const scheme = location.protocol === "https:" ? "wss://" : "ws://";
      socket = new WebSocket(scheme + location.host + path);
      socket.onmessage = function (message) {
        let event;
        try {
          event = JSON.parse(message.data);
        } catch (error) {
          return;
        }
        if (event.type === "hello") {
          attempt = 0;
          show("live", "up");
          if (onOpen) onOpen();
          return;
        }
        if (event.type === "pong") return;
        onEvent(event);
      };
      socket.onclose = function () {
        clearInterval(pinger);
        const delay = Math.min(10000, 250 * 2 ** attempt++);
        show("reconnecting…", "down");
        setTimeout(open, delay);
      };
      clearInterval(pinger);
      pinger = setInterval(function () {
        if (socket.readyState === WebSocket.OPEN) socket.send('{"type":"ping"}');
      }, 25000);
    };
    open();
    return {
      get socket() {
        return socket;
      },
    };
  };
})();
