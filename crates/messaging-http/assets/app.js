// The inbox dashboard: the caller's notifications, live over the event stream.
// The user token comes from the URL fragment (#token=…, never sent to the
// server) or the form; it is kept in this tab's sessionStorage only. All text is
// set with textContent: nothing a notification holds is parsed as HTML.
"use strict";

const state = { token: null, items: new Map() };

function api(path, options = {}) {
  const headers = Object.assign({ Authorization: "Bearer " + state.token }, options.headers || {});
  return fetch(path, Object.assign({}, options, { headers }));
}

function showError(text) {
  const error = document.getElementById("error");
  error.textContent = text;
  error.hidden = !text;
}

function setUnread(count) {
  document.getElementById("unread").textContent = String(count);
}

function render() {
  const list = document.getElementById("inbox");
  list.replaceChildren();
  const items = [...state.items.values()].sort((a, b) =>
    a.created_at < b.created_at ? 1 : a.created_at > b.created_at ? -1 : 0);
  for (const n of items) {
    const li = document.createElement("li");
    li.dataset.id = n.id;
    li.className = n.is_read ? "read" : "unread";
    const title = document.createElement("div");
    title.className = "title";
    title.textContent = n.title;
    const content = document.createElement("div");
    content.textContent = n.content;
    const meta = document.createElement("div");
    meta.className = "meta";
    meta.textContent = n.kind + " · " + new Date(n.created_at).toLocaleString();
    const toggle = document.createElement("button");
    toggle.type = "button";
    toggle.textContent = n.is_read ? "Mark unread" : "Mark read";
    toggle.addEventListener("click", async () => {
      const response = await api(`/v1/me/notifications/${n.id}/${n.is_read ? "unread" : "read"}`, { method: "POST" });
      if (response.ok) { n.is_read = !n.is_read; render(); refreshCount(); }
    });
    li.append(title, content, meta, toggle);
    list.append(li);
  }
}

async function refreshCount() {
  const response = await api("/v1/me/unread-count");
  if (response.ok) setUnread((await response.json()).unread);
}

async function load() {
  const response = await api("/v1/me/notifications?limit=50");
  if (!response.ok) {
    const problem = await response.json().catch(() => ({}));
    showError(problem.detail || `the server answered ${response.status}`);
    return false;
  }
  for (const n of (await response.json()).items) state.items.set(n.id, n);
  render();
  await refreshCount();
  return true;
}

// Server-Sent Events over fetch: EventSource cannot send an Authorization header.
async function follow() {
  const status = document.getElementById("status");
  for (;;) {
    try {
      const response = await api("/v1/me/events", { headers: { Accept: "text/event-stream" } });
      if (!response.ok) throw new Error(`the event stream answered ${response.status}`);
      status.textContent = "live";
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let name = "message", data = "";
          for (const line of block.split("\n")) {
            if (line.startsWith("event:")) name = line.slice(6).trim();
            else if (line.startsWith("data:")) data += line.slice(5).trim();
          }
          if (!data) continue;
          const payload = JSON.parse(data);
          if (name === "unread") setUnread(payload.unread);
          if (name === "notification") { state.items.set(payload.id, payload); render(); }
        }
      }
    } catch (error) {
      showError(String(error.message || error));
    }
    status.textContent = "reconnecting";
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}

async function start() {
  if (!(await load())) return;
  document.getElementById("read-all").addEventListener("click", async () => {
    const response = await api("/v1/me/notifications/read-all", { method: "POST" });
    if (response.ok) { for (const n of state.items.values()) n.is_read = true; render(); refreshCount(); }
  });
  follow();
}

document.addEventListener("DOMContentLoaded", () => {
  const fragment = new URLSearchParams(location.hash.slice(1));
  if (fragment.get("token")) {
    sessionStorage.setItem("inbox-token", fragment.get("token"));
    history.replaceState(null, "", location.pathname);
  }
  state.token = sessionStorage.getItem("inbox-token");
  if (state.token) { start(); return; }
  const form = document.getElementById("sign-in");
  form.hidden = false;
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    state.token = document.getElementById("token").value.trim();
    sessionStorage.setItem("inbox-token", state.token);
    form.hidden = true;
    start();
  });
});
