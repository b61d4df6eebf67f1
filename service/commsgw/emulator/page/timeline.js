// The emulator's page: each call as a timeline, kept up to date from GET /_emulator/timeline
// (a long poll: the feed answers as soon as something changed, and the page asks again).
// Every value from the feed is rendered as text (textContent, Text nodes): never as HTML.
"use strict";

(() => {
  const WAIT_S = 10; // how long one request of the feed waits for news
  const RETRY_MS = 1000; // after a failed request
  const LANES = { bot: "bot → Graph", graph: "Graph → bot", farEnd: "far end", test: "test" };

  let cursor = null;
  let eventCount = 0;
  const calls = new Map(); // call id -> {view, section, head, ops, list, base}
  const $ = (id) => document.getElementById(id);

  // An element with text children; attrs: class, title, hidden and data-* only.
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "hidden") node.hidden = true;
      else if (key === "title" || key.startsWith("data-")) node.setAttribute(key, String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  function clock(iso) {
    const d = new Date(iso);
    return Number.isNaN(d.getTime()) ? String(iso) : d.toISOString().slice(11, 23);
  }

  function offset(at, base) {
    if (typeof at !== "number" || typeof base !== "number") return "";
    const s = at - base;
    return (s < 0 ? "−" : "+") + Math.abs(s).toFixed(3) + " s";
  }

  function setStatus(state, text) {
    const node = $("feed-status");
    node.dataset.state = state;
    node.textContent = text;
  }

  function summarize() {
    const n = calls.size;
    $("summary").textContent = `${n} call${n === 1 ? "" : "s"} · ${eventCount} event${eventCount === 1 ? "" : "s"}`;
    $("empty").hidden = n > 0;
    const other = $("other");
    other.hidden = !$("show-other").checked || other.querySelector("ol").childElementCount === 0;
  }

  // ------------------------------------------------------------------ calls

  function callOf(id) {
    let c = calls.get(id);
    if (c !== undefined) return c;
    const head = el("div", { class: "call-head" });
    const ops = el("table", { class: "operations", hidden: true });
    const list = el("ol", { class: "timeline" });
    const section = el("section", { class: "call", "data-call-id": id }, head, ops, list);
    c = { id, view: null, section, head, ops, list, base: null, rang: false };
    calls.set(id, c);
    renderHead(c);
    return c;
  }

  function place(c) {
    // newest call first
    const at = c.base ?? 0;
    const box = $("calls");
    for (const other of box.children) {
      if (other === c.section) continue;
      if (Number(other.dataset.at || 0) < at) {
        box.insertBefore(c.section, other);
        return;
      }
    }
    box.append(c.section);
  }

  function who(view) {
    if (view === null) return "call not known to the emulator";
    if (view.direction === "incoming") {
      return `incoming ${view.kind} call` + (view.source ? ` from ${view.source}` : "");
    }
    const to = view.targets.length ? ` to ${view.targets.join(", ")}` : "";
    return `outgoing ${view.kind} call${to}`;
  }

  function renderHead(c) {
    const v = c.view;
    const facts = [];
    if (v !== null) {
      facts.push(el("span", { title: v.time }, `started ${clock(v.time)}`));
      if (v.tonesSubscribed) facts.push(el("span", {}, "tones subscribed"));
      if (v.promptS !== null) facts.push(el("span", {}, `prompts play ${v.promptS} s`));
      if (v.result) facts.push(el("span", { class: "result" }, `result ${v.result}`));
      if (v.farEndHungUp) facts.push(el("span", { class: "far" }, "the far end hung up"));
      if (v.terminationReason) facts.push(el("span", {}, `reason ${v.terminationReason}`));
      if (v.state === "terminated" && !v.result) {
        facts.push(el("span", { class: "bad" }, "ended without a termination notification"));
      }
    }
    c.head.replaceChildren(
      el(
        "h2",
        {},
        el("span", { class: "who" }, who(v)),
        " ",
        el("span", { class: "state", "data-state": v ? v.state : "unknown" }, v ? v.state : "unknown"),
      ),
      el("div", { class: "facts" }, el("code", { class: "call-id" }, c.id), ...facts),
    );
    renderOperations(c);
  }

  function renderOperations(c) {
    const ops = c.view ? c.view.operations : [];
    c.ops.hidden = ops.length === 0;
    const rows = ops.map((op) =>
      el(
        "tr",
        { "data-operation-id": op.id },
        el("td", { class: "op-kind" }, op.kind),
        el("td", { class: "op-context" }, op.clientContext ?? ""),
        el("td", { class: "op-status", "data-status": op.status }, op.status),
        el("td", {}, op.completionReason ?? ""),
        el("td", {}, op.result ?? ""),
        el("td", { class: "op-id" }, el("code", {}, op.id)),
      ),
    );
    const head = el(
      "tr",
      {},
      ...["operation", "clientContext", "status", "completion", "result", "id"].map((h) => el("th", {}, h)),
    );
    c.ops.replaceChildren(el("thead", {}, head), el("tbody", {}, ...rows));
  }

  function applyCall(view) {
    const c = callOf(view.id);
    c.view = view;
    c.base = view.at;
    c.section.dataset.at = String(view.at);
    c.section.dataset.state = view.state;
    renderHead(c);
    if (view.direction === "incoming" && !c.rang) {
      c.rang = true;
      addRow(c, {
        kind: "ring",
        actor: "farEnd",
        at: view.at,
        time: view.time,
        title: "rings the bot" + (view.source ? ` from ${view.source}` : ""),
        status: null,
      });
    }
    place(c);
  }

  // ------------------------------------------------------------------ events

  function statusOf(ev) {
    if (ev.kind === "ring") return null;
    const ok = typeof ev.status === "number" && ev.status >= 200 && ev.status < 300;
    let text;
    if (ev.kind === "notification") {
      const d = ev.delivery;
      text = d.status === null ? `not delivered: ${d.error}` : `delivered ${d.status}`;
      if (d.status !== null && !ok) text = `refused ${d.status}`;
      if (d.attempt > 1) text += ` (attempt ${d.attempt})`;
      if (d.misdelivery) text += ` [${d.misdelivery}]`;
    } else {
      text = ev.status === 0 ? "connection dropped by a fault" : String(ev.status);
      if (ev.request && ev.request.faultId) text += ` [fault ${ev.request.faultId}]`;
    }
    return el("span", { class: ok ? "status ok" : "status bad", "data-ok": ok ? "true" : "false" }, text);
  }

  function details(ev) {
    let detail = null;
    if (ev.kind === "request") detail = ev.request;
    else if (ev.kind === "notification") detail = { delivery: ev.delivery, payload: ev.payload };
    if (detail === null) return null;
    return el("details", {}, el("summary", {}, "details"), el("pre", {}, JSON.stringify(detail, null, 2)));
  }

  function what(ev) {
    const parts = [];
    if (ev.kind === "notification" && ev.notifications.length > 1) {
      parts.push(el("ul", { class: "title" }, ...ev.notifications.map((t) => el("li", {}, t))));
    } else {
      parts.push(el("span", { class: "title" }, ev.title));
    }
    if (ev.note) parts.push(el("span", { class: "note" }, ev.note));
    if (ev.kind === "request") parts.push(el("span", { class: "path" }, `${ev.request.method} ${ev.request.path}`));
    return el("div", { class: "what" }, ...parts);
  }

  function addRow(c, ev) {
    if (c.base === null && !c.other) {
      c.base = ev.at;
      c.section.dataset.at = String(ev.at);
    }
    const when = c.other ? clock(ev.time) : offset(ev.at, c.base);
    const row = el(
      "li",
      { class: `event actor-${ev.actor}`, "data-kind": ev.kind, "data-actor": ev.actor, "data-at": ev.at },
      el("span", { class: "when", title: ev.time }, when),
      el("span", { class: `lane actor-${ev.actor}` }, LANES[ev.actor] ?? ev.actor),
      what(ev),
      statusOf(ev),
      details(ev),
    );
    // in time order: after the last row that is not later
    let after = c.list.lastElementChild;
    while (after !== null && Number(after.dataset.at) > ev.at) after = after.previousElementSibling;
    if (after === null) c.list.prepend(row);
    else after.after(row);
  }

  function applyEvent(ev) {
    eventCount += 1;
    if (ev.callId === null) {
      const other = { list: $("other").querySelector("ol"), base: null, other: true };
      addRow(other, ev);
      return;
    }
    const c = callOf(ev.callId);
    addRow(c, ev);
    place(c);
  }

  function clear() {
    calls.clear();
    eventCount = 0;
    $("calls").replaceChildren();
    $("other").querySelector("ol").replaceChildren();
  }

  function apply(feed) {
    if (feed.reset) clear();
    for (const view of feed.calls) applyCall(view);
    for (const ev of feed.events) applyEvent(ev);
    cursor = feed.cursor;
    document.body.dataset.cursor = cursor;
    summarize();
  }

  // ------------------------------------------------------------------ the feed

  async function poll() {
    const url = new URL("timeline", document.baseURI);
    if (cursor !== null) {
      url.searchParams.set("since", cursor);
      url.searchParams.set("waitS", String(WAIT_S));
    }
    try {
      const resp = await fetch(url, { cache: "no-store", headers: { accept: "application/json" } });
      if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
      apply(await resp.json());
      setStatus("live", "live");
      setTimeout(poll, 0);
    } catch (err) {
      setStatus("offline", `offline (${err.message}), retrying`);
      setTimeout(poll, RETRY_MS);
    }
  }

  $("show-other").addEventListener("change", summarize);
  summarize();
  poll();
})();
