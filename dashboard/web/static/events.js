// pirack Control Center, event log page: the server renders the first page; this script shows
// times in local time, adds new entries on top every few seconds (from /api/log?after=), pages
// back in place (from /api/log?before=) and applies a filter as soon as it is chosen.
// Data from Pis is only ever written with textContent or attributes, never parsed as HTML.
"use strict";

(function () {
  const body = document.body;
  if (body.dataset.history !== "true") return;
  const tbody = document.querySelector("#event-log tbody");
  const empty = document.getElementById("event-empty");
  const older = document.getElementById("older");
  const live = document.getElementById("live");
  const POLL_MS = 5000;

  // The filters in force, as the server parsed them.
  function filters() {
    const q = new URLSearchParams();
    for (const k of ["row", "kind", "mac"]) if (body.dataset[k]) q.set(k, body.dataset[k]);
    return q;
  }

  function displayMAC(mac) {
    return mac && mac.length === 12 ? mac.match(/../g).join(":") : mac;
  }

  function localTime(el) {
    const t = new Date(el.getAttribute("datetime"));
    if (!isNaN(t)) el.textContent = t.toLocaleString();
  }

  function cell(tr, content) {
    const td = document.createElement("td");
    td.append(content);
    tr.append(td);
  }

  // row builds a table row like the server's "logrow" template.
  function row(e) {
    const tr = document.createElement("tr");
    tr.dataset.id = String(e.id);
    tr.dataset.t = String(Date.parse(e.time));
    tr.dataset.kind = e.kind;
    const time = document.createElement("time");
    time.setAttribute("datetime", e.time);
    localTime(time);
    cell(tr, time);
    cell(tr, e.row || "–");
    if (e.mac) {
      const a = document.createElement("a");
      a.href = "/nodes/" + encodeURIComponent(e.mac);
      a.textContent = e.hostname || displayMAC(e.mac);
      if (e.hostname) a.title = displayMAC(e.mac);
      cell(tr, a);
    } else {
      cell(tr, "–");
    }
    cell(tr, e.kind);
    cell(tr, e.detail || "");
    cell(tr, e.by || "");
    return tr;
  }

  // newer reports whether entry a comes before row b in the table: newest first by time, then by
  // recording order, as the server sorts.
  function newer(a, b) {
    const ta = Number(a.dataset.t), tb = Number(b.dataset.t);
    return ta !== tb ? ta > tb : Number(a.dataset.id) > Number(b.dataset.id);
  }

  function known(id) {
    return tbody.querySelector('tr[data-id="' + String(Number(id)) + '"]') !== null;
  }

  // newest is the highest entry id shown: what the next poll asks to be after.
  function newest() {
    let max = 0;
    for (const tr of tbody.rows) max = Math.max(max, Number(tr.dataset.id) || 0);
    return max;
  }

  async function get(q) {
    const r = await fetch("/api/log?" + q.toString(), { credentials: "same-origin" });
    if (r.status === 401) { location.assign("/login"); return null; }
    const data = await r.json();
    if (!r.ok) throw new Error(data.error || r.statusText);
    return data;
  }

  function setLive(on, text) {
    live.dataset.live = on ? "on" : "off";
    live.textContent = text;
  }

  async function poll() {
    const q = filters();
    const after = newest();
    if (after > 0) q.set("after", String(after));
    try {
      const data = await get(q);
      if (!data) return;
      // Each new entry goes where it belongs: usually the top, lower for one recorded late.
      for (const e of data.events.slice().reverse()) {
        if (known(e.id)) continue;
        const tr = row(e);
        let before = null;
        for (const other of tbody.rows) {
          if (newer(tr, other)) { before = other; break; }
        }
        tbody.insertBefore(tr, before);
      }
      empty.hidden = tbody.rows.length > 0;
      setLive(true, "live");
    } catch (err) {
      setLive(false, "not updating: " + err.message);
    }
    setTimeout(poll, POLL_MS); // after the answer, so a slow server is not asked twice at once
  }

  older.addEventListener("click", async (ev) => {
    ev.preventDefault();
    const url = new URL(older.href, location.href);
    const q = filters();
    q.set("before", url.searchParams.get("before"));
    if (url.searchParams.get("limit")) q.set("limit", url.searchParams.get("limit"));
    try {
      const data = await get(q);
      if (!data) return;
      for (const e of data.events) if (!known(e.id)) tbody.append(row(e));
      empty.hidden = tbody.rows.length > 0;
      if (data.older) {
        url.searchParams.set("before", String(data.older));
        older.href = url.pathname + "?" + url.searchParams.toString();
      } else {
        older.hidden = true;
      }
    } catch (err) {
      older.textContent = "Older entries (could not load: " + err.message + ")";
    }
  });

  // A filter applies as soon as it is chosen; the button stays for keyboards and no-script.
  const form = document.querySelector(".log-filters");
  if (form) form.addEventListener("change", () => form.submit());

  for (const t of tbody.querySelectorAll("time")) localTime(t);
  if (body.dataset.live === "true") {
    setLive(true, "live");
    setTimeout(poll, POLL_MS);
  }
})();
