// Shared by the playground and the dashboard: stored secrets, API calls, live events.
//
// Secrets (an API key, the admin token) stay in this browser's localStorage and travel only
// in the Authorization header of requests to this origin: never in a URL, so never in a
// server's or proxy's access log. That is why live progress is read with fetch() streaming
// rather than EventSource, which cannot send headers.
"use strict";

const vg = (() => {
  function stored(name) {
    return {
      get: () => localStorage.getItem(name) || "",
      set: (value) => value ? localStorage.setItem(name, value) : localStorage.removeItem(name),
    };
  }

  class ApiError extends Error {
    constructor(status, body) {
      const error = body && body.error;
      super(error && error.message ? error.message : `HTTP ${status}`);
      this.status = status;
      this.code = error && error.code;
    }
  }

  async function call(secret, method, path, body) {
    const headers = { Authorization: `Bearer ${secret}` };
    let payload;
    if (body instanceof FormData) {
      payload = body;
    } else if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      payload = JSON.stringify(body);
    }
    const response = await fetch(path, { method, headers, body: payload });
    const text = await response.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (_) { data = null; }
    if (!response.ok) throw new ApiError(response.status, data);
    return data;
  }

  // Follow a task's Server-Sent Events: onEvent(name, data) for each; resumes with
  // Last-Event-ID after a dropped connection; resolves with the final event's data.
  async function follow(secret, path, onEvent, signal) {
    let lastId = "";
    for (let attempt = 0; attempt < 20; attempt++) {
      const headers = { Authorization: `Bearer ${secret}`, Accept: "text/event-stream" };
      if (lastId) headers["Last-Event-ID"] = lastId;
      let response;
      try {
        response = await fetch(path, { headers, signal, cache: "no-store" });
      } catch (err) {
        if (signal && signal.aborted) throw err;
        await pause(1000);
        continue;
      }
      if (!response.ok) {
        let data = null;
        try { data = await response.json(); } catch (_) { data = null; }
        throw new ApiError(response.status, data);
      }
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      let final = null;
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value.replace(/\r\n?/g, "\n");
          let end;
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            const frame = parse(buffer.slice(0, end));
            buffer = buffer.slice(end + 2);
            if (!frame) continue;
            if (frame.id) lastId = frame.id;
            onEvent(frame.event, frame.data);
            if (frame.event === "completed" || frame.event === "failed") final = frame.data;
          }
        }
      } catch (err) {
        if (signal && signal.aborted) throw err;
      }
      if (final) return final;
      if (lastId.startsWith("2.")) return null;  // the final event was seen before a drop
      await pause(500);
    }
    throw new Error("Lost the connection to the progress stream.");
  }

  function parse(block) {
    const frame = { event: "message", data: "", id: "" };
    let hasData = false;
    for (const line of block.split("\n")) {
      if (!line || line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const name = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (name === "data") { frame.data += value; hasData = true; }
      else if (name === "event") frame.event = value;
      else if (name === "id") frame.id = value;
    }
    if (!hasData) return null;
    frame.data = JSON.parse(frame.data);
    return frame;
  }

  function pause(ms) { return new Promise((resolve) => setTimeout(resolve, ms)); }

  // Build an element: el("td", {class: "x"}, "text", child, ...). Text is never parsed as HTML.
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : value);
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  function say(region, message, isError) {
    region.textContent = message;
    region.classList.toggle("error", Boolean(isError));
  }

  function when(seconds) {
    return seconds ? new Date(seconds * 1000).toLocaleString() : "";
  }

  function usd(micro) {
    return micro === null || micro === undefined ? "unlimited" : `$${(micro / 1e6).toFixed(2)}`;
  }

  return { stored, call, follow, el, say, when, usd, ApiError };
})();
