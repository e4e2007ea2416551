// The dashboard of `messaging serve`: plain JavaScript, no build step, no
// third-party code. Every figure comes from the HTTP API of the same server
// (the admin token for topics and dead letters, a user token for the inbox);
// tokens live in this tab's sessionStorage only and go in the Authorization
// header, never in a URL. Untrusted text is set with textContent only.
"use strict";

const PAGE = 50; // topics per page; dead letters and notifications per request
const POLL_MS = 2000; // live counts

const tokens = {
  get admin() { return sessionStorage.getItem("messaging.admin") || ""; },
  set admin(v) { sessionStorage.setItem("messaging.admin", v); },
  get user() { return sessionStorage.getItem("messaging.user") || ""; },
  set user(v) { sessionStorage.setItem("messaging.user", v); },
};

let timer = null; // the live poll of the current view
let stream = null; // the inbox's event stream (an AbortController)

function stopLive() {
  if (timer) { clearInterval(timer); timer = null; }
  if (stream) { stream.abort(); stream = null; }
}

// --- DOM helpers ------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function show(...nodes) {
  const view = document.getElementById("view");
  view.replaceChildren(...nodes);
}

function status(text, isError = false) {
  const node = document.getElementById("status");
  node.textContent = text;
  node.className = isError ? "error" : "";
}

function fmtTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return isNaN(d) ? iso : d.toLocaleString();
}

// --- the API ----------------------------------------------------------------

class ApiError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.status = status;
  }
}

async function api(method, path, token, query) {
  const url = new URL(path, location.origin);
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== undefined && v !== null && v !== "") url.searchParams.set(k, v);
  }
  const response = await fetch(url, {
    method,
    headers: { Authorization: `Bearer ${token}`, Accept: "application/json" },
  });
  const text = await response.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (_) { body = null; }
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

const admin = (method, path, query) => api(method, `/v1/admin${path}`, tokens.admin, query);
const me = (method, path, query) => api(method, `/v1/me${path}`, tokens.user, query);
const enc = encodeURIComponent;

// --- sign-in forms ----------------------------------------------------------

function tokenForm(kind, onDone) {
  const input = el("input", { id: `${kind}-token`, type: "password", placeholder: kind === "admin" ? "admin token" : "user token (a signed JWT)", size: 48, autocomplete: "off" });
  const form = el("form", { class: "inline", id: `${kind}-login-form` },
    el("label", { for: `${kind}-token` }, kind === "admin" ? "Admin token" : "User token"),
    input,
    el("button", { id: `${kind}-login`, type: "submit" }, "Sign in"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    tokens[kind] = input.value.trim();
    onDone();
  });
  return form;
}

function failed(error, kind, retry) {
  if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
    tokens[kind] = "";
    status(`${kind} token refused: sign in again`, true);
    show(tokenForm(kind, retry));
    return;
  }
  status(error.message, true);
}

// --- topics overview ----------------------------------------------------------

const overview = { page: 0, filter: "", previous: new Map() };

async function viewOverview() {
  if (!tokens.admin) return show(el("h2", {}, "Topics"), tokenForm("admin", route));
  const filter = el("input", { id: "topic-filter", placeholder: "filter topics", value: overview.filter });
  const table = el("table", { id: "topics" },
    el("thead", {}, el("tr", {},
      el("th", {}, "topic"), el("th", { class: "num" }, "length"), el("th", { class: "num" }, "scheduled"),
      el("th", { class: "num" }, "dead letters"), el("th", { class: "num" }, "groups"),
      el("th", { class: "num" }, "pending"), el("th", { class: "num" }, "lag"),
      el("th", { class: "num" }, "length Δ/s"), el("th", {}, "state"))),
    el("tbody"));
  const pageInfo = el("span", { id: "topics-page", class: "muted" });
  const prev = el("button", { id: "topics-prev", type: "button" }, "‹ previous");
  const next = el("button", { id: "topics-next", type: "button" }, "next ›");
  show(el("h2", {}, "Topics"),
    el("div", { class: "toolbar" }, filter),
    table,
    el("div", { class: "pager" }, prev, pageInfo, next));

  let names = [];
  const load = async () => {
    const list = await admin("GET", "/topics");
    names = list.topics.slice().sort();
  };
  const render = async () => {
    const shown = names.filter((n) => n.includes(overview.filter));
    const pages = Math.max(1, Math.ceil(shown.length / PAGE));
    overview.page = Math.min(overview.page, pages - 1);
    const slice = shown.slice(overview.page * PAGE, overview.page * PAGE + PAGE);
    pageInfo.textContent = `${shown.length} topics · page ${overview.page + 1} of ${pages}`;
    prev.disabled = overview.page === 0;
    next.disabled = overview.page >= pages - 1;
    // Stats only for the topics on the page: the server is asked for 50, not 1,000.
    const stats = await Promise.all(slice.map((name) =>
      admin("GET", `/topics/${enc(name)}/stats`).catch(() => null)));
    const now = Date.now();
    const rows = slice.map((name, i) => {
      const s = stats[i];
      if (!s) return el("tr", { dataset: { topic: name } }, el("td", {}, name), el("td", { colspan: 8, class: "muted" }, "gone"));
      const pending = s.groups.reduce((a, g) => a + g.pending, 0);
      const lag = s.groups.reduce((a, g) => a + g.lag, 0);
      const before = overview.previous.get(name);
      const rate = before ? ((s.length - before.length) * 1000) / (now - before.at) : null;
      overview.previous.set(name, { length: s.length, at: now });
      const paused = s.paused || s.groups.some((g) => g.paused);
      return el("tr", { dataset: { topic: name } },
        el("td", {}, el("a", { class: "topic-link", href: `#/topic/${enc(name)}` }, name)),
        el("td", { class: "num length" }, s.length),
        el("td", { class: "num scheduled" }, s.scheduled),
        el("td", { class: "num dead" }, s.dead_lettered > 0
          ? el("a", { href: `#/topic/${enc(name)}/dead` }, s.dead_lettered) : "0"),
        el("td", { class: "num groups" }, s.groups.length),
        el("td", { class: "num pending" }, pending),
        el("td", { class: "num lag" }, lag),
        el("td", { class: "num rate" }, rate === null ? "…" : rate.toFixed(1)),
        el("td", { class: "state" }, paused ? el("span", { class: "badge paused" }, "paused") : ""));
    });
    table.tBodies[0].replaceChildren(...rows);
    status(`updated ${new Date(now).toLocaleTimeString()}`);
  };
  const refresh = () => load().then(render).catch((e) => failed(e, "admin", route));
  filter.addEventListener("input", () => { overview.filter = filter.value; overview.page = 0; render().catch((e) => failed(e, "admin", route)); });
  prev.addEventListener("click", () => { overview.page -= 1; render(); });
  next.addEventListener("click", () => { overview.page += 1; render(); });
  await refresh();
  timer = setInterval(refresh, POLL_MS);
}

// --- one topic --------------------------------------------------------------------

async function viewTopic(topic) {
  if (!tokens.admin) return show(el("h2", {}, topic), tokenForm("admin", route));
  const figures = el("table", { id: "topic-stats" }, el("tbody"));
  const groups = el("table", { id: "groups" },
    el("thead", {}, el("tr", {}, el("th", {}, "group"), el("th", { class: "num" }, "consumers"),
      el("th", { class: "num" }, "pending"), el("th", { class: "num" }, "lag"), el("th", {}, "state"), el("th", {}, ""))),
    el("tbody"));
  const pauseAll = el("button", { id: "pause", type: "button" }, "Pause topic");
  const resumeAll = el("button", { id: "resume", type: "button" }, "Resume topic");
  show(el("h2", {}, "Topic ", el("span", { id: "topic-name" }, topic)),
    el("div", { class: "toolbar" },
      el("a", { id: "dead-link", href: `#/topic/${enc(topic)}/dead` }, "Dead letters"), pauseAll, resumeAll),
    figures, el("h2", {}, "Consumer groups"), groups);
  const act = (path, group) => admin("POST", `/topics/${enc(topic)}/${path}`, group ? { group } : {})
    .then(refresh).catch((e) => failed(e, "admin", route));
  pauseAll.addEventListener("click", () => act("pause"));
  resumeAll.addEventListener("click", () => act("resume"));
  async function refresh() {
    try {
      const s = await admin("GET", `/topics/${enc(topic)}/stats`);
      const row = (name, value, cls) => el("tr", {}, el("th", {}, name), el("td", { class: `num ${cls}` }, value));
      figures.tBodies[0].replaceChildren(
        row("length", s.length, "length"), row("scheduled", s.scheduled, "scheduled"),
        row("dead letters", s.dead_lettered, "dead"), row("paused (all groups)", s.paused ? "yes" : "no", "paused"));
      groups.tBodies[0].replaceChildren(...s.groups.map((g) => el("tr", { dataset: { group: g.name } },
        el("td", {}, g.name), el("td", { class: "num" }, g.consumers), el("td", { class: "num pending" }, g.pending),
        el("td", { class: "num lag" }, g.lag), el("td", {}, g.paused ? el("span", { class: "badge paused" }, "paused") : "running"),
        el("td", {}, g.paused
          ? el("button", { type: "button", class: "resume-group", onclick: () => act("resume", g.name) }, "resume")
          : el("button", { type: "button", class: "pause-group", onclick: () => act("pause", g.name) }, "pause")))));
      status(`updated ${new Date().toLocaleTimeString()}`);
    } catch (e) { failed(e, "admin", route); }
  }
  await refresh();
  timer = setInterval(refresh, POLL_MS);
}

// --- dead letters -------------------------------------------------------------------

async function viewDeadLetters(topic) {
  if (!tokens.admin) return show(el("h2", {}, topic), tokenForm("admin", route));
  const error = el("input", { id: "dl-error", placeholder: "error contains" });
  const since = el("input", { id: "dl-since", placeholder: "since (RFC 3339)", size: 22 });
  const until = el("input", { id: "dl-until", placeholder: "until (RFC 3339)", size: 22 });
  const search = el("form", { class: "inline", id: "dl-search" }, error, since, until,
    el("button", { type: "submit", id: "dl-search-button" }, "Search"));
  const table = el("table", { id: "dead-letters" },
    el("thead", {}, el("tr", {}, el("th", {}, "dead since"), el("th", {}, "group"), el("th", {}, "error"),
      el("th", { class: "num" }, "attempts"), el("th", {}, ""))),
    el("tbody"));
  const more = el("button", { id: "dl-next", type: "button", hidden: true }, "next page ›");
  const inspect = el("pre", { id: "dl-inspect", hidden: true });
  const rate = el("input", { id: "replay-rate", type: "number", min: "1", placeholder: "per second", size: 8 });
  const replayAll = el("button", { id: "replay-all", type: "button" }, "Replay all matching");
  const purge = el("button", { id: "purge", type: "button", class: "danger" }, "Purge all");
  show(el("h2", {}, "Dead letters of ", el("a", { href: `#/topic/${enc(topic)}` }, topic)),
    search, el("div", { class: "toolbar" }, rate, replayAll, purge), table, el("div", { class: "pager" }, more), inspect);

  const filters = () => ({ error: error.value.trim(), since: since.value.trim(), until: until.value.trim() });
  let after = null;
  const load = async (append) => {
    try {
      const page = await admin("GET", `/topics/${enc(topic)}/dead-letters`, { ...filters(), limit: PAGE, after: append ? after : null });
      const rows = page.items.map((d) => {
        const row = el("tr", { dataset: { id: d.id } },
          el("td", {}, fmtTime(d.dead_at)), el("td", {}, d.group), el("td", { class: "error" }, d.error),
          el("td", { class: "num" }, d.attempts),
          el("td", {},
            el("button", { type: "button", class: "inspect", onclick: () => {
              inspect.hidden = false;
              inspect.textContent = JSON.stringify(d, null, 2);
            } }, "inspect"),
            " ",
            el("button", { type: "button", class: "replay", onclick: async (event) => {
              event.target.disabled = true;
              try {
                await admin("POST", `/topics/${enc(topic)}/dead-letters/${enc(d.id)}/replay`);
                row.classList.add("replayed");
                row.lastChild.replaceChildren(el("span", { class: "replayed-mark" }, "replayed"));
                status(`replayed ${d.id}`);
              } catch (e) { event.target.disabled = false; failed(e, "admin", route); }
            } }, "replay")));
        return row;
      });
      if (append) table.tBodies[0].append(...rows); else table.tBodies[0].replaceChildren(...rows);
      if (!append && rows.length === 0) table.tBodies[0].append(el("tr", {}, el("td", { colspan: 5, class: "muted", id: "dl-empty" }, "no dead letters")));
      after = page.next_after || null;
      more.hidden = !after;
      status(`${table.tBodies[0].rows.length} shown`);
    } catch (e) { failed(e, "admin", route); }
  };
  search.addEventListener("submit", (event) => { event.preventDefault(); load(false); });
  more.addEventListener("click", () => load(true));
  replayAll.addEventListener("click", async () => {
    try {
      const done = await admin("POST", `/topics/${enc(topic)}/dead-letters/replay`, { ...filters(), rate: rate.value });
      status(`replayed ${done.replayed}`);
      load(false);
    } catch (e) { failed(e, "admin", route); }
  });
  purge.addEventListener("click", async () => {
    if (!confirm(`Purge every dead letter of ${topic}? They cannot be replayed afterwards.`)) return;
    try {
      const done = await admin("DELETE", `/topics/${enc(topic)}/dead-letters`);
      status(`purged ${done.purged}`);
      load(false);
    } catch (e) { failed(e, "admin", route); }
  });
  await load(false);
}

// --- a user's inbox ---------------------------------------------------------------

async function viewInbox() {
  if (!tokens.user) return show(el("h2", {}, "Inbox"), tokenForm("user", route));
  const count = el("span", { id: "unread-count", class: "badge" }, "…");
  const table = el("table", { id: "inbox" },
    el("thead", {}, el("tr", {}, el("th", {}, "received"), el("th", {}, "kind"), el("th", {}, "title"),
      el("th", {}, "content"), el("th", {}, "status"), el("th", {}, ""))),
    el("tbody"));
  const unreadOnly = el("input", { id: "inbox-unread-only", type: "checkbox" });
  const allRead = el("button", { id: "mark-all-read", type: "button" }, "Mark all read");
  const more = el("button", { id: "inbox-next", type: "button", hidden: true }, "older ›");
  const signOut = el("button", { id: "user-sign-out", type: "button" }, "Sign out");
  show(el("h2", {}, "Inbox ", count),
    el("div", { class: "toolbar" }, el("label", {}, unreadOnly, " unread only"), allRead, signOut),
    table, el("div", { class: "pager" }, more));
  let cursor = null;
  const row = (n) => el("tr", { dataset: { id: n.id }, class: n.is_read ? "read" : "unread" },
    el("td", {}, fmtTime(n.created_at)), el("td", {}, n.kind), el("td", { class: "title" }, n.title),
    el("td", { class: "content" }, n.content.length > 140 ? `${n.content.slice(0, 140)}…` : n.content),
    el("td", {}, n.status),
    el("td", {}, n.is_read
      ? el("button", { type: "button", class: "mark-unread", onclick: () => mark(n.id, "unread") }, "mark unread")
      : el("button", { type: "button", class: "mark-read", onclick: () => mark(n.id, "read") }, "mark read")));
  const counted = async () => { count.textContent = (await me("GET", "/unread-count")).unread; };
  const load = async (append) => {
    try {
      const page = await me("GET", "/notifications", { limit: PAGE, unread: unreadOnly.checked ? "true" : null, cursor: append ? cursor : null });
      const rows = page.items.map(row);
      if (append) table.tBodies[0].append(...rows); else table.tBodies[0].replaceChildren(...rows);
      cursor = page.next_cursor || null;
      more.hidden = !cursor;
      await counted();
      status(`updated ${new Date().toLocaleTimeString()}`);
    } catch (e) { failed(e, "user", route); }
  };
  async function mark(id, how) {
    try {
      await me("POST", `/notifications/${enc(id)}/${how}`);
      await load(false);
    } catch (e) { failed(e, "user", route); }
  }
  allRead.addEventListener("click", () => me("POST", "/notifications/read-all").then(() => load(false)).catch((e) => failed(e, "user", route)));
  unreadOnly.addEventListener("change", () => load(false));
  more.addEventListener("click", () => load(true));
  signOut.addEventListener("click", () => { tokens.user = ""; route(); });
  await load(false);
  follow(() => load(false), (unread) => { count.textContent = unread; });
}

// The user's event stream, read with fetch (EventSource cannot send the
// Authorization header): a new notification reloads the first page.
function follow(onNotification, onUnread) {
  const controller = new AbortController();
  stream = controller;
  (async () => {
    try {
      const response = await fetch("/v1/me/events", {
        headers: { Authorization: `Bearer ${tokens.user}`, Accept: "text/event-stream" },
        signal: controller.signal,
      });
      if (!response.ok || !response.body) return;
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let name = "message";
          const data = [];
          for (const line of block.split("\n")) {
            if (line.startsWith("event:")) name = line.slice(6).trim();
            else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
          }
          if (data.length === 0) continue;
          let parsed = null;
          try { parsed = JSON.parse(data.join("\n")); } catch (_) { continue; }
          if (name === "unread") onUnread(parsed.unread);
          else if (name === "notification") onNotification(parsed);
        }
      }
    } catch (_) { /* aborted or the server went away: the page's own loads still work */ }
  })();
}

// --- routing --------------------------------------------------------------------------

function route() {
  stopLive();
  status("");
  const hash = location.hash.replace(/^#/, "") || "/";
  const parts = hash.split("/").filter(Boolean).map(decodeURIComponent);
  if (parts[0] === "inbox") return viewInbox();
  if (parts[0] === "topic" && parts[1] !== undefined && parts[2] === "dead") return viewDeadLetters(parts[1]);
  if (parts[0] === "topic" && parts[1] !== undefined) return viewTopic(parts[1]);
  return viewOverview();
}

window.addEventListener("hashchange", route);
window.addEventListener("DOMContentLoaded", route);
