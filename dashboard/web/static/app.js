// pirack Control Center: keeps the rack page live from /api/events and sends commands.
// Data from Pis is only ever written with textContent or attributes, never parsed as HTML.
//
// Rendering is incremental, for racks of a thousand Pis: updates are queued and applied once
// per animation frame; a tile's fields are written only when their text changed; a row is laid
// out again (its slots, then the Pis in no slot) only when its slots or membership changed.
"use strict";

(function () {
  const rack = document.getElementById("rack");
  const tileTemplate = document.getElementById("tile-template");
  const slotTemplate = document.getElementById("slot-template");
  const rowTemplate = document.getElementById("row-template");
  const live = document.getElementById("live");
  const notice = document.getElementById("notice");
  const alertBox = document.getElementById("alerts");
  const alertList = document.getElementById("alert-list");
  const alertTemplate = document.getElementById("alert-template");
  const dialog = document.getElementById("edit-dialog");
  const canCommand = document.body.dataset.canCommand === "true";

  const nodes = new Map(); // mac -> node, as last received
  const rows = new Map(); // row name -> row, as last received
  const tiles = new Map(); // mac -> tile element
  const sections = new Map(); // row name -> section element
  const empties = new Map(); // row + "\n" + slot -> empty slot element
  const members = new Map(); // row name -> Set of MACs reporting that row
  const sparks = new Map(); // mac -> values of the last hour, for the tile's sparkline

  // Units and rounding: the one formatter (fmt.js). The server sends numbers, never their
  // text, so the first render and every live update write the same words.
  const F = window.pirackFmt;
  const dash = F.dash, displayMAC = F.displayMAC, fmtAgo = F.ago;
  const fmtLoad = F.load, fmtMem = F.mem, fmtDisk = F.disk, fmtTemp = F.temp, fmtThrottle = F.throttle, fmtPower = F.power;
  function ledText(l) {
    if (!l) return "";
    let t = "LED " + l.state;
    if (l.action && l.by) t += " (" + l.action + " by " + l.by + ")";
    else if (l.action) t += " (" + l.action + ")";
    return t;
  }
  // locateText: twin of locateText in web.go (a sentence, not a number).
  const fmtDuration = F.duration;
  // switchText: twin of switchText (power.go).
  function switchText(st) {
    if (!st || st.on == null) return "";
    return st.on ? "\u00b7 plug on" : "\u00b7 plug OFF";
  }
  // removalTitle: twin of removalTitle (removal.go).
  function removalTitle(x) {
    if (!x) return "";
    switch (x.step) {
      case "safe": return "SAFE TO PULL";
      case "replaced": return "Removed and replaced";
      case "ended": return "Removal ended";
    }
    return "Removing (started by " + x.by + ")";
  }
  function locateText(l) {
    if (!l) return "";
    if (l.found_at) return "Found at the rack " + fmtDuration(l.found_after_s * 1000) + " after " + l.by + "'s Locate";
    if (l.ended_at && l.ended_by) return l.by + "'s Locate stopped by " + l.ended_by + ", not found";
    if (l.ended_at) return l.by + "'s Locate ran out after " + fmtDuration(new Date(l.ended_at) - new Date(l.at)) + ", not found";
    if (l.action === "identify") return "Locating for " + l.by + ": press its button when found";
    return "Blinking for " + l.by;
  }

  // Writing only what changed: each element remembers what was last written to it.
  // Each tile's fields are looked up once: a thousand tiles updated every few seconds would
  // otherwise spend their frames in querySelector.
  const fieldCache = new WeakMap();
  function field(el, name) {
    let m = fieldCache.get(el);
    if (!m) { m = new Map(); fieldCache.set(el, m); }
    let f = m.get(name);
    if (f === undefined) {
      f = el.querySelector('[data-field="' + name + '"]');
      m.set(name, f);
    }
    return f;
  }
  function setText(el, name, text) {
    const f = field(el, name);
    if (f && f.textContent !== text) f.textContent = text;
  }
  function setData(el, key, value) {
    if (el.dataset[key] !== value) el.dataset[key] = value;
  }
  function setHidden(el, hidden) {
    if (el && el.hidden !== hidden) el.hidden = hidden;
  }

  function fillTile(tile, n) {
    setData(tile, "mac", n.mac);
    setData(tile, "state", n.state);
    setData(tile, "selected", String(n.selected));
    setData(tile, "slot", String(n.slot || 0));
    setHidden(field(tile, "slot_label"), !n.slot);
    setText(tile, "slot", n.slot ? "#" + n.slot : "");
    setText(tile, "slot_name", n.slot_name || "");
    setText(tile, "hostname", n.hostname || displayMAC(n.mac));
    setText(tile, "state", n.state);
    setText(tile, "mac", displayMAC(n.mac));
    setText(tile, "ip", n.ip || dash);
    setText(tile, "model", n.model || dash);
    setText(tile, "agent_version", n.agent_version || dash);
    setText(tile, "load", fmtLoad(n.metrics));
    setText(tile, "mem", fmtMem(n.metrics));
    setText(tile, "disk", fmtDisk(n.metrics));
    setText(tile, "temp", fmtTemp(n.metrics));
    setText(tile, "throttle", fmtThrottle(n.metrics));
    setData(tile, "throttled", n.metrics && n.metrics.throttled_now && n.metrics.throttled_now.length ? "now" : "");
    const seen = field(tile, "last_seen");
    if (seen.getAttribute("datetime") !== (n.last_seen || "")) {
      seen.setAttribute("datetime", n.last_seen || "");
      seen.textContent = fmtAgo(n.last_seen);
      seen.title = n.last_seen ? new Date(n.last_seen).toLocaleString() : "";
    }
    setData(tile, "maintenance", n.maintenance ? "on" : "");
    setHidden(field(tile, "maintenance"), !n.maintenance);
    setText(tile, "maintenance", n.maintenance ? "In maintenance (" + n.maintenance.by + (n.maintenance.note ? ": " + n.maintenance.note : "") + "): alerts held back" : "");
    setText(tile, "maintenance_button", n.maintenance ? "End maintenance" : "Maintenance");
    setData(tile, "pending", String(!!n.pending));
    setHidden(field(tile, "pending"), !n.pending);
    setHidden(field(tile, "selected"), !n.selected);
    setText(tile, "selected", "\u2605 selected" + (n.selected_user ? " by " + n.selected_user + " on the page" : n.selected_by ? " (" + n.selected_by + " press)" : "") +
      (n.selected_at ? " at " + new Date(n.selected_at).toLocaleTimeString() : ""));
    setData(tile, "clickable", String(canCommand && !n.selected));
    setHidden(field(tile, "power_button"), !n.power_switch);
    const rm = n.removal;
    const panel = field(tile, "removal");
    setHidden(panel, !rm);
    setData(panel, "step", rm ? rm.step : "");
    setData(tile, "removal", rm ? rm.step : "");
    setText(tile, "removal_title", removalTitle(rm));
    setText(tile, "removal_note", rm ? rm.note : "");
    setHidden(field(tile, "removal_off"), !(rm && rm.needs_check));
    setHidden(field(tile, "removal_cancel"), !(rm && rm.step !== "replaced" && rm.step !== "ended"));
    setHidden(field(tile, "clear_button"), !n.selected);
    const led = field(tile, "led");
    const ledState = n.led ? n.led.state : "";
    setHidden(led, !n.led);
    setData(led, "led", ledState);
    setData(tile, "led", ledState);
    setText(tile, "led_text", ledText(n.led));
    const loc = field(tile, "locate");
    setHidden(loc, !n.locate);
    setData(loc, "found", n.locate ? String(!!n.locate.found_at) : "");
    setText(tile, "locate", locateText(n.locate));
    setHidden(field(tile, "locate_stop"), !(n.locate && !n.locate.ended_at));
    setHidden(field(tile, "previous"), !n.previous);
    setText(tile, "previous_mac", displayMAC(n.previous || ""));
    const alerts = n.alerts || [];
    const alertKey = alerts.map((a) => a.rule + a.message).join("\n");
    if (tile.dataset.alertKey !== alertKey) {
      tile.dataset.alertKey = alertKey;
      setData(tile, "alerts", String(alerts.length));
      setData(tile, "worst", alerts.some((a) => a.severity === "critical") ? "critical" : alerts.length ? "warning" : "");
      fillAlertItems(field(tile, "alerts"), alerts);
    }
    const detail = field(tile, "detail");
    const href = "/nodes/" + encodeURIComponent(n.mac);
    if (detail.getAttribute("href") !== href) detail.setAttribute("href", href);
  }

  // fillAlertItems lists alerts as text with a warning sign, so severity is never colour alone.
  function fillAlertItems(ul, alerts) {
    ul.replaceChildren();
    for (const a of alerts) {
      const li = document.createElement("li");
      li.dataset.severity = a.severity;
      li.dataset.rule = a.rule;
      const sign = document.createElement("span");
      sign.setAttribute("aria-hidden", "true");
      sign.textContent = "\u26a0";
      li.append(sign, " " + a.message);
      ul.append(li);
    }
    ul.hidden = alerts.length === 0;
  }

  function fillRowHead(sec) {
    const name = sec.dataset.row;
    const r = rows.get(name) || {};
    const pis = (members.get(name) || new Set()).size;
    setText(sec, "row", name);
    setText(sec, "power_text", fmtPower(r.power));
    setText(sec, "per_pi", F.perPi(r.power && r.power.watts, pis));
    setText(sec, "switch_state", switchText(r.power_switch));
    setHidden(field(sec, "row_power_button"), !r.power_switch);
    setHidden(field(sec, "assign"), !r.assign);
    setData(sec, "assign", r.assign ? "on" : "");
    setText(sec, "assign_next", r.assign ? String(r.assign.next) : "");
    setData(sec, "maintenance", r.maintenance ? "on" : "");
    setText(sec, "row_maintenance_button", r.maintenance ? "End maintenance" : "Maintenance");
    const alertKey = (r.alerts || []).map((a) => a.rule + a.message).join("\n");
    if (sec.dataset.alertKey !== alertKey) {
      sec.dataset.alertKey = alertKey;
      fillAlertItems(field(sec, "row_alerts"), r.alerts || []);
    }
  }

  // alertOrder and alertFor: twins of alertOrder (record.go) and alertFor (web.go).
  function alertOrder(a, b) {
    const sev = (x) => (x.severity === "critical" ? 0 : 1);
    return sev(a) - sev(b) || (new Date(a.since || 0) - new Date(b.since || 0)) ||
      (a.row + a.mac + a.rule).localeCompare(b.row + b.mac + b.rule);
  }
  function alertFor(since) {
    if (!since) return "";
    return "for " + fmtDuration(Math.max(0, Date.now() - new Date(since)));
  }
  const baseTitle = document.title.replace(/^\(\d+\) /, "");

  // The banner lists every raised alert, the worst and oldest first.
  // holdOf says whether an alert is held back by an operator, and how, from its Pi's or row's
  // acks and maintenance (holds.go).
  function holdOf(a) {
    const owner = a.mac ? nodes.get(a.mac) : rows.get(a.row);
    const ack = owner && owner.acks && owner.acks[a.rule];
    const row = rows.get(a.row);
    const maint = (a.mac && owner && owner.maintenance) || (row && row.maintenance);
    if (maint) return { kind: "maintenance", text: "in maintenance (" + maint.by + (maint.note ? ": " + maint.note : "") + ")" };
    if (ack && ack.until) return { kind: "silenced", text: "silenced by " + ack.by + " until " + new Date(ack.until).toLocaleTimeString() + (ack.note ? ": " + ack.note : "") };
    if (ack) return { kind: "acknowledged", text: "acknowledged by " + ack.by + (ack.note ? ": " + ack.note : "") };
    return null;
  }
  const holdNoteInput = document.getElementById("hold-note");
  function holdNote() { return holdNoteInput ? holdNoteInput.value.trim() : ""; }

  // The banner lists every raised alert, the worst and oldest first; held ones (acknowledged,
  // silenced, in maintenance) say so and do not count.
  function drawBanner() {
    const all = [];
    for (const r of rows.values()) all.push(...(r.alerts || []));
    for (const n of nodes.values()) all.push(...(n.alerts || []));
    all.sort(alertOrder);
    const holds = all.map(holdOf);
    const key = all.map((a, i) => a.row + a.mac + a.rule + a.message + (a.hostname || "") + (holds[i] ? holds[i].text : "")).join("\n");
    if (alertList.dataset.key === key) return;
    alertList.dataset.key = key;
    alertList.replaceChildren();
    let live = 0;
    all.forEach((a, i) => {
      const li = alertTemplate.content.firstElementChild.cloneNode(true);
      li.dataset.severity = a.severity;
      li.dataset.rule = a.rule;
      li.dataset.mac = a.mac || "";
      li.dataset.row = a.row;
      setText(li, "severity", a.severity);
      const where = field(li, "where");
      where.textContent = a.hostname || (a.mac ? displayMAC(a.mac) : "row " + a.row);
      where.setAttribute("href", a.mac ? "/nodes/" + encodeURIComponent(a.mac) : "#");
      setText(li, "message", a.message);
      const dur = field(li, "for");
      dur.dataset.since = a.since || "";
      dur.textContent = alertFor(a.since);
      const h = holds[i];
      li.dataset.held = h ? h.kind : "";
      setText(li, "held", h ? "· " + h.text : "");
      if (!h) live++;
      if (canCommand && (!h || h.kind !== "maintenance")) {
        for (const [action, label] of h ? [["unack", "Undo"]] : [["ack", "Ack"], ["silence", "Silence 1 h"]]) {
          const b = document.createElement("button");
          b.type = "button";
          b.dataset.alertAction = action;
          b.textContent = label;
          li.append(" ", b);
        }
      }
      alertList.append(li);
    });
    document.title = (live ? "(" + live + ") " : "") + baseTitle;
    document.getElementById("alert-count").textContent = live;
    alertBox.dataset.count = String(live);
    alertBox.hidden = all.length === 0;
  }
  alertList.addEventListener("click", async (e) => {
    const b = e.target.closest("button[data-alert-action]");
    if (!b) return;
    const li = b.closest("li");
    const body = { row: li.dataset.row, mac: li.dataset.mac, rule: li.dataset.rule, note: holdNote() };
    if (b.dataset.alertAction === "silence") body.for_s = 3600;
    if (b.dataset.alertAction === "unack") body.undo = true;
    if (await post("/api/alerts/ack", body, "Alert")) {
      say(b.dataset.alertAction === "unack" ? "The alert counts again." : "Alert held back: it no longer counts or notifies.");
    }
  });

  function summary() {
    let online = 0;
    for (const n of nodes.values()) if (n.state === "online") online++;
    document.getElementById("online-count").textContent = online;
    document.getElementById("total-count").textContent = nodes.size;
  }

  // ---- Rows and slots ----

  function section(name) {
    let sec = sections.get(name);
    if (sec) return sec;
    const empty = document.getElementById("empty");
    if (empty) empty.remove();
    sec = rowTemplate.content.firstElementChild.cloneNode(true);
    sec.id = "row-" + name;
    sec.dataset.row = name;
    sections.set(name, sec);
    rack.append(sec);
    orderSections();
    return sec;
  }

  // orderSections puts the rows in the rack's order, as the server numbers them.
  function orderSections() {
    const list = [...sections.values()];
    const pos = (sec) => {
      const r = rows.get(sec.dataset.row);
      return r ? r.position : 1e9;
    };
    list.sort((a, b) => pos(a) - pos(b) || (a.dataset.row < b.dataset.row ? -1 : 1));
    list.forEach((sec, i) => {
      if (rack.children[i] !== sec) rack.insertBefore(sec, rack.children[i] || null);
    });
  }

  function emptySlot(row, sl) {
    const key = row + "\n" + sl.slot;
    let el = empties.get(key);
    if (!el) {
      el = slotTemplate.content.firstElementChild.cloneNode(true);
      el.dataset.slot = String(sl.slot);
      empties.set(key, el);
    }
    setText(el, "slot", "#" + sl.slot);
    setText(el, "slot_name", sl.name || "");
    setHidden(field(el, "previous"), !sl.previous);
    setText(el, "previous_mac", displayMAC(sl.previous || ""));
    return el;
  }

  function tileFor(n) {
    let tile = tiles.get(n.mac);
    if (!tile) {
      tile = tileTemplate.content.firstElementChild.cloneNode(true);
      tiles.set(n.mac, tile);
      fillTile(tile, n);
      drawSpark(tile, n.mac);
    }
    return tile;
  }

  // layoutRow puts a row's children in order with as few DOM moves as possible: its slots (a
  // tile, or an empty slot), then the Pis of the row in no slot, by MAC.
  function layoutRow(name) {
    const r = rows.get(name);
    const macs = members.get(name) || new Set();
    if (!r && macs.size === 0) {
      const sec = sections.get(name);
      if (sec) sec.remove();
      sections.delete(name);
      return;
    }
    const sec = section(name);
    const box = sec.querySelector(".tiles");
    const want = [];
    const placed = new Set();
    for (const sl of (r && r.slots) || []) {
      const n = sl.mac && nodes.get(sl.mac);
      if (n && n.row === name && n.slot === sl.slot) {
        want.push(tileFor(n));
        placed.add(n.mac);
      } else {
        want.push(emptySlot(name, sl));
      }
    }
    const rest = [...macs].filter((m) => !placed.has(m)).sort();
    for (const m of rest) want.push(tileFor(nodes.get(m)));
    want.forEach((el, i) => {
      if (box.children[i] !== el) box.insertBefore(el, box.children[i] || null);
    });
    while (box.children.length > want.length) box.lastElementChild.remove();
    fillRowHead(sec);
  }

  // ---- Updates, applied once per frame ----

  const pendingNodes = new Map(); // mac -> node, or null for a forgotten one
  const pendingRows = new Map();
  let frameQueued = false;
  function queue() {
    if (frameQueued) return;
    frameQueued = true;
    requestAnimationFrame(flush);
  }

  function flush() {
    frameQueued = false;
    const dirty = new Set();
    for (const [name, r] of pendingRows) {
      const old = rows.get(name);
      rows.set(name, r);
      dirty.add(name);
      if (!old || old.position !== r.position) dirty.add("\u0000order");
    }
    pendingRows.clear();
    for (const [mac, n] of pendingNodes) {
      const old = nodes.get(mac);
      if (n === null) {
        if (!old) continue;
        nodes.delete(mac);
        members.get(old.row)?.delete(mac);
        tiles.get(mac)?.remove();
        tiles.delete(mac);
        dirty.add(old.row);
        continue;
      }
      nodes.set(mac, n);
      if (!old || old.row !== n.row || old.slot !== n.slot) {
        if (old) {
          members.get(old.row)?.delete(mac);
          dirty.add(old.row);
        }
        if (!members.has(n.row)) members.set(n.row, new Set());
        members.get(n.row).add(mac);
        dirty.add(n.row);
      }
      const tile = tiles.get(mac);
      if (tile) fillTile(tile, n);
    }
    pendingNodes.clear();
    const reorder = dirty.delete("\u0000order");
    for (const name of dirty) layoutRow(name);
    if (reorder) orderSections();
    summary();
    drawBanner();
    if (filtering()) applyFilter();
  }

  function snapshot(list) {
    const seen = new Set(list.map((n) => n.mac));
    for (const mac of nodes.keys()) if (!seen.has(mac)) pendingNodes.set(mac, null);
    for (const n of list) pendingNodes.set(n.mac, n);
    queue();
  }

  // adopt takes over the tiles and slots the server rendered, so the first snapshot only
  // fills them in.
  function adopt() {
    for (const sec of rack.querySelectorAll("section.row")) {
      sections.set(sec.dataset.row, sec);
      for (const t of sec.querySelectorAll("article.tile")) tiles.set(t.dataset.mac, t);
      for (const e of sec.querySelectorAll(".slot-empty")) empties.set(sec.dataset.row + "\n" + e.dataset.slot, e);
    }
  }

  // ---- Sparklines: the last hour of load, one request for the whole rack each minute ----

  function drawSpark(tile, mac) {
    const svg = field(tile, "spark");
    const values = sparks.get(mac);
    if (!svg || typeof window.pirackSpark !== "function") return;
    if (!values) { svg.replaceChildren(); return; }
    const n = nodes.get(mac);
    window.pirackSpark(svg, values, { max: n && n.metrics && n.metrics.cpu_count ? n.metrics.cpu_count : undefined });
  }

  async function loadSparks() {
    try {
      const r = await fetch("/api/sparklines?metric=load_1&minutes=60&buckets=60", { credentials: "same-origin" });
      if (!r.ok) {
        document.body.dataset.sparks = "off"; // history is off: no sparklines
        return;
      }
      const body = await r.json();
      sparks.clear();
      for (const [mac, values] of Object.entries(body.series || {})) sparks.set(mac, values);
      document.body.dataset.sparks = "on";
      for (const [mac, tile] of tiles) drawSpark(tile, mac);
    } catch (err) {
      // The next minute tries again; the rack itself does not depend on it.
    }
  }

  // ---- Live stream ----

  // The stream's own state, and whether the control center has lost its MQTT broker (then the
  // tiles show the rack as last heard, and nothing turns stale for it).
  let streamState = "off", streamText = "static page", brokerLostSince = null;
  function setLive(state, text) {
    streamState = state;
    streamText = text;
    showLive();
    showLost();
  }
  // A page-wide banner once the control center has been unreachable for a few seconds: the
  // tiles below are what was last heard, not the rack now.
  const lostBanner = document.getElementById("lost");
  let lostSince = null;
  let lostTimer = null;
  function showLost() {
    if (!lostBanner) return;
    const lost = streamState !== "on" && streamText !== "connecting\u2026";
    if (!lost) {
      lostSince = null;
      clearTimeout(lostTimer);
      lostTimer = null;
      lostBanner.hidden = true;
      return;
    }
    if (!lostSince) lostSince = new Date();
    if (!lostTimer) {
      lostTimer = setTimeout(() => {
        lostBanner.textContent = "The control center cannot be reached since " + lostSince.toLocaleTimeString() +
          ": the rack below is as it was then. Retrying…";
        lostBanner.hidden = false;
      }, 3000);
    }
  }
  function showLive() {
    if (streamState === "on" && brokerLostSince) {
      live.dataset.live = "off";
      live.textContent = "MQTT broker lost since " + brokerLostSince.toLocaleTimeString() + ": showing the rack as last heard";
      return;
    }
    live.dataset.live = streamState;
    live.textContent = streamText;
  }

  let hideTimer;
  function say(text, bad) {
    notice.textContent = text;
    notice.classList.toggle("bad", !!bad);
    notice.hidden = false;
    clearTimeout(hideTimer);
    hideTimer = setTimeout(() => { notice.hidden = true; }, 6000);
  }

  // EventSource reconnects by itself after network errors; after an HTTP error (such as 401
  // once the session expired) it gives up, so check why and retry or sign in again.
  function connect() {
    const es = new EventSource("/api/events");
    es.onopen = () => setLive("on", "live");
    es.addEventListener("snapshot", (e) => snapshot(JSON.parse(e.data)));
    es.addEventListener("node", (e) => { const n = JSON.parse(e.data); pendingNodes.set(n.mac, n); queue(); });
    es.addEventListener("gone", (e) => { pendingNodes.set(JSON.parse(e.data).mac, null); queue(); });
    es.addEventListener("rows", (e) => { for (const r of JSON.parse(e.data)) pendingRows.set(r.name, r); queue(); });
    es.addEventListener("row", (e) => { const r = JSON.parse(e.data); pendingRows.set(r.name, r); queue(); });
    es.addEventListener("broker", (e) => {
      const b = JSON.parse(e.data);
      brokerLostSince = b.lost ? new Date(b.since) : null;
      showLive();
    });
    es.onerror = () => {
      if (es.readyState !== EventSource.CLOSED) {
        setLive("off", "reconnecting\u2026");
        return;
      }
      setLive("off", "disconnected");
      fetch("/api/stats", { credentials: "same-origin" }).then((r) => {
        if (r.status === 401) location.assign("/login");
        else setTimeout(connect, 5000);
      }, () => setTimeout(connect, 5000));
    };
  }

  // ---- Commands ----

  function nameOf(mac) {
    const n = nodes.get(mac);
    return (n && (n.slot_name || n.hostname)) || displayMAC(mac);
  }

  // post sends a command and returns the decoded answer, or null after telling the operator
  // what went wrong.
  async function post(path, body, what) {
    try {
      const r = await fetch(path, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body || {}),
      });
      if (r.status === 401) { location.assign("/login"); return null; }
      const answer = r.status === 204 ? {} : await r.json().catch(() => ({}));
      if (!r.ok) { say(what + ": " + (answer.error || r.statusText), true); return null; }
      return answer;
    } catch (err) {
      say(what + ": " + err.message, true);
      return null;
    }
  }

  const nodePath = (mac) => "/api/nodes/" + encodeURIComponent(mac);
  const rowPath = (row) => "/api/rows/" + encodeURIComponent(row);

  async function tileCommand(mac, action) {
    const name = nameOf(mac);
    const n = nodes.get(mac) || {};
    switch (action) {
      case "blink": {
        const a = await post(nodePath(mac) + "/blink", {}, name);
        if (a) say("Blinking the LED of " + name + " (" + a.count + " times).");
        break;
      }
      case "clear":
        if (await post(nodePath(mac) + "/clear", {}, name)) say("Selection cleared on " + name + ".");
        break;
      case "locate":
        if (await post(nodePath(mac) + "/locate", {}, name)) say("Locating " + name + ": its LED flashes until someone presses its button.");
        break;
      case "maintenance": {
        const on = !n.maintenance;
        if (await post(nodePath(mac) + "/maintenance", { on, note: holdNote() }, name)) say(name + (on ? " is in maintenance: its alerts are held back." : " is out of maintenance."));
        break;
      }
      case "system": {
        const d = document.getElementById("system-dialog");
        if (!d) break;
        d.dataset.mac = mac;
        d.dataset.name = n.hostname || mac;
        document.getElementById("system-name").textContent = n.hostname || displayMAC(mac);
        document.getElementById("system-form").reset();
        document.getElementById("system-result").textContent = "";
        d.showModal();
        break;
      }
      case "power":
        openPower("/api/nodes/" + encodeURIComponent(mac) + "/power", name, n.hostname || mac);
        break;
      case "removal":
        if (await post(nodePath(mac) + "/removal", {}, name)) say("Removing " + name + ": press its button at the rack (its LED flashes) to shut it down.");
        break;
      case "removal-off":
        if (await post(nodePath(mac) + "/removal/off", {}, name)) say(name + " is safe to pull.");
        break;
      case "removal-cancel":
        if (await post(nodePath(mac) + "/removal/cancel", {}, name)) say("Removal of " + name + " cancelled.");
        break;
      case "locate-stop":
        if (await post(nodePath(mac) + "/locate/stop", {}, name)) say("Locate of " + name + " stopped.");
        break;
      case "approve": {
        const a = await post(nodePath(mac) + "/approve", {}, name);
        if (a) say(name + " is approved, in row " + a.row + " slot " + a.slot + ".");
        break;
      }
      case "inherit":
      case "dismiss":
        if (await post(rowPath(n.row) + "/slots/" + n.slot + "/previous", { inherit: action === "inherit" }, name)) {
          say(action === "inherit" ? name + " now carries the history of " + displayMAC(n.previous) + "." : name + " keeps its own history.");
        }
        break;
      case "edit":
        openDialog({ kind: "node", mac, row: n.row, slot: n.slot, name: n.slot_name, online: n.state === "online" });
        break;
    }
  }

  // openPower opens the power dialog for a row or a Pi (path is its endpoint); confirm is the
  // name to type.
  function openPower(path, title, confirm) {
    const d = document.getElementById("power-dialog");
    if (!d) return;
    d.dataset.path = path;
    document.getElementById("power-name").textContent = title;
    document.getElementById("power-confirm-name").textContent = confirm;
    document.getElementById("power-form").reset();
    document.getElementById("power-result").textContent = "";
    d.showModal();
  }

  async function rowCommand(row, action, target) {
    const r = rows.get(row) || { slots: [] };
    switch (action) {
      case "row-maintenance": {
        const on = !r.maintenance;
        if (await post(rowPath(row) + "/maintenance", { on, note: holdNote() }, "Row " + row)) say("Row " + row + (on ? " is in maintenance: its alerts are held back." : " is out of maintenance."));
        break;
      }
      case "row-power":
        openPower(rowPath(row) + "/power", "row " + row, row);
        break;
      case "row-locate": {
        const a = await post(rowPath(row) + "/locate", {}, "Row " + row);
        if (a) say("Locating the " + a.sent.length + " Pis of row " + row + (a.offline && a.offline.length ? " (" + a.offline.length + " offline skipped)" : "") + ".");
        break;
      }
      case "assign":
        if (await post(rowPath(row) + "/assign", { from: 1 }, "Row " + row)) {
          say("Row " + row + ": press the Pis' buttons left to right; each takes the next slot.");
        }
        break;
      case "assign-stop":
        await post(rowPath(row) + "/assign/stop", {}, "Row " + row);
        break;
      case "row-up":
      case "row-down": {
        const position = Math.max(0, (r.position || 0) + (action === "row-up" ? -1 : 1));
        await post(rowPath(row) + "/shelf", { position: Math.min(position, sections.size - 1) }, "Row " + row);
        break;
      }
      case "shelf":
        openDialog({ kind: "shelf", row, slots: r.slots.length });
        break;
      case "name-slot": {
        const slot = Number(target.closest(".slot-empty").dataset.slot);
        const sl = r.slots[slot - 1] || {};
        openDialog({ kind: "slot", row, slot, name: sl.name });
        break;
      }
    }
  }

  // ---- The edit dialog: a Pi's slot and slot name, an empty slot's name, a row's slot count ----

  let editing = null;
  function openDialog(what) {
    if (!dialog) return;
    editing = what;
    const form = dialog.querySelector("form");
    const show = (key, on) => { for (const el of form.querySelectorAll('[data-for="' + key + '"]')) el.hidden = !on; };
    show("slot", what.kind === "node");
    show("name", what.kind !== "shelf");
    show("slots", what.kind === "shelf");
    show("node", what.kind === "node");
    form.elements.slot.value = what.slot || "";
    form.elements.name.value = what.name || "";
    form.elements.slots.value = what.slots != null ? what.slots : "";
    form.elements.slot.required = what.kind === "node";
    let title, hint;
    if (what.kind === "node") {
      title = nameOf(what.mac) + " (" + displayMAC(what.mac) + ")";
      hint = "Row " + what.row + ". The name belongs to the slot: a board put in its place later takes it.";
      setHidden(field(form, "forget"), what.online);
    } else if (what.kind === "slot") {
      title = "Row " + what.row + ", slot " + what.slot;
      hint = "The name stays with the slot, whichever Pi is in it.";
    } else {
      title = "Row " + what.row;
      hint = "Slots are numbered left to right. Slots you remove must be empty and unnamed.";
    }
    setText(form, "title", title);
    setText(form, "hint", hint);
    dialog.showModal();
  }

  async function dialogClosed() {
    const what = editing;
    editing = null;
    if (!what) return;
    const form = dialog.querySelector("form");
    const value = dialog.returnValue;
    const name = form.elements.name.value.trim();
    if (value === "save" && what.kind === "node") {
      const slot = Number(form.elements.slot.value);
      const a = await post(rowPath(what.row) + "/slots/" + slot, { mac: what.mac, name }, nameOf(what.mac));
      if (a) say(nameOf(what.mac) + " is in row " + what.row + " slot " + slot + (a.displaced ? ", replacing " + displayMAC(a.displaced) : "") + ".");
    } else if (value === "save" && what.kind === "slot") {
      await post(rowPath(what.row) + "/slots/" + what.slot, { name }, "Row " + what.row + " slot " + what.slot);
    } else if (value === "save" && what.kind === "shelf") {
      await post(rowPath(what.row) + "/shelf", { slots: Number(form.elements.slots.value) }, "Row " + what.row);
    } else if (value === "unplace") {
      if (await post(nodePath(what.mac) + "/unplace", {}, nameOf(what.mac))) say(nameOf(what.mac) + " is in no slot now.");
    } else if (value === "forget") {
      const name = nameOf(what.mac);
      if (await post(nodePath(what.mac) + "/forget", {}, name)) say(name + " was forgotten; its history stays on its detail page until it ages out.");
    }
  }
  if (dialog) dialog.addEventListener("close", dialogClosed);

  rack.addEventListener("click", (e) => {
    const btn = e.target.closest("button[data-action]");
    if (!btn) {
      // A click on a tile, not on one of its controls, selects it, as a press at the rack does.
      const tile = e.target.closest("article.tile");
      if (!canCommand || !tile || tile.dataset.selected === "true" || e.target.closest("a, button, input, dialog") ||
        String(window.getSelection()).length > 0) return;
      const name = nameOf(tile.dataset.mac);
      post(nodePath(tile.dataset.mac) + "/select", {}, name).then((a) => { if (a) say(name + " is selected."); });
      return;
    }
    const tile = btn.closest("article.tile");
    if (tile) { tileCommand(tile.dataset.mac, btn.dataset.action); return; }
    const sec = btn.closest("section.row");
    if (sec) rowCommand(sec.dataset.row, btn.dataset.action, btn);
  });

  setInterval(() => {
    for (const d of alertList.querySelectorAll('[data-field="for"]')) {
      const text = alertFor(d.dataset.since);
      if (d.textContent !== text) d.textContent = text;
    }
    for (const t of rack.querySelectorAll('time[data-field="last_seen"]')) {
      const text = fmtAgo(t.getAttribute("datetime"));
      if (t.textContent !== text) t.textContent = text;
    }
  }, 5000);

  // Finding Pis: a text filter (hostname, slot name, MAC in either form, IP) and "problems
  // only" (not online, alerts, or selected). Tiles that do not match are hidden, as are empty
  // slots and rows with nothing left to show.
  const filterInput = document.getElementById("filter");
  const problemsButton = document.getElementById("problems");
  const matchCount = document.getElementById("match-count");
  let filterText = "";
  let problemsOnly = false;
  function matches(n) {
    if (problemsOnly && n.state === "online" && !(n.alerts && n.alerts.length) && !n.selected) return false;
    if (!filterText) return true;
    const hay = [n.hostname, n.slot_name, n.mac, displayMAC(n.mac), n.ip].join(" ").toLowerCase();
    return filterText.split(/\s+/).every((word) => hay.includes(word));
  }
  function filtering() { return problemsOnly || filterText !== ""; }
  function markMatch(tile, n) {
    setData(tile, "match", filtering() && !matches(n) ? "no" : "");
  }
  // applyFilter re-marks every tile and hides the rows left empty; cheap enough to run on
  // each keystroke and after each frame of updates while a filter is on.
  function applyFilter() {
    setData(rack, "filtering", filtering() ? "on" : "");
    let shown = 0;
    for (const [mac, tile] of tiles) {
      const n = nodes.get(mac);
      if (n) markMatch(tile, n);
      if (tile.dataset.match !== "no") shown++;
    }
    for (const sec of sections.values()) {
      const any = !filtering() || sec.querySelector('article.tile:not([data-match="no"])') !== null;
      setHidden(sec, !any);
    }
    matchCount.textContent = filtering() ? shown + " of " + nodes.size : "";
  }
  filterInput.addEventListener("input", () => { filterText = filterInput.value.trim().toLowerCase(); applyFilter(); });
  document.getElementById("find").addEventListener("submit", (e) => e.preventDefault());
  // "Clear N selections": every selection at once (they also expire by themselves).
  const clearAll = document.getElementById("clear-selections");
  function countSelected() {
    if (!clearAll) return;
    let n = 0;
    for (const node of nodes.values()) if (node.selected) n++;
    document.getElementById("selected-count").textContent = String(n);
    clearAll.hidden = n < 2;
    document.getElementById("locate-selected").hidden = n < 1;
  }
  const locateSelected = document.getElementById("locate-selected");
  if (locateSelected) {
    locateSelected.addEventListener("click", async () => {
      const a = await post("/api/locate/selected", {}, "Selected Pis");
      if (a) say("Locating " + a.sent.length + " selected Pis" + (a.offline && a.offline.length ? " (" + a.offline.length + " offline skipped)" : "") + ".");
    });
  }
  if (clearAll) {
    clearAll.addEventListener("click", async () => {
      const a = await post("/api/selection/clear", {}, "Selections");
      if (a) say(a.cleared + " selections cleared.");
    });
    setInterval(countSelected, 1000);
  }
  problemsButton.addEventListener("click", () => {
    problemsOnly = !problemsOnly;
    problemsButton.setAttribute("aria-pressed", String(problemsOnly));
    applyFilter();
  });

  // Compact tiles, remembered per browser: a big rack at a glance.
  const density = document.getElementById("density");
  function setDensity(compact) {
    document.body.dataset.density = compact ? "compact" : "";
    density.setAttribute("aria-pressed", String(compact));
    try { localStorage.setItem("pirack.density", compact ? "compact" : ""); } catch (err) { /* private mode */ }
  }
  try { setDensity(localStorage.getItem("pirack.density") === "compact"); } catch (err) { setDensity(false); }
  density.addEventListener("click", () => setDensity(document.body.dataset.density !== "compact"));

  adopt();
  setLive("off", "connecting\u2026");
  connect();
  loadSparks();
  setInterval(loadSparks, 60000);
})();

// Notification targets on the rack page (package notify, docs/notifications.md): each target's
// state, a failing one with its last error and next attempt, and a test-send for admins. The
// section stays hidden when notifications are not configured (GET /api/notify answers 404).
(() => {
  const box = document.getElementById("notify");
  if (!box) return;
  const list = document.getElementById("notify-targets");
  const testBtn = document.getElementById("notify-test");
  const result = document.getElementById("notify-result");

  const time = (s) => (s ? new Date(s).toLocaleTimeString() : "");

  function render(st) {
    list.replaceChildren();
    for (const t of st.targets || []) {
      const li = document.createElement("li");
      li.dataset.ok = String(t.ok);
      let text = t.name + " (" + t.type + "): " + (t.ok ? "ok" : "failing");
      if (!t.ok && t.last_error) text += " — " + t.last_error;
      if (t.pending) text += ", " + t.pending + " queued";
      if (!t.ok && t.next_attempt_at) text += ", next try " + time(t.next_attempt_at);
      if (t.dropped) text += ", " + t.dropped + " given up";
      li.textContent = text;
      list.append(li);
    }
    box.dataset.failing = String((st.targets || []).some((t) => !t.ok));
    box.hidden = false;
  }

  async function refresh() {
    try {
      const r = await fetch("/api/notify", { credentials: "same-origin" });
      if (r.status === 404) return; // not configured: stop polling
      if (r.ok) render(await r.json());
    } catch (e) { /* offline for a moment: the next poll tries again */ }
    setTimeout(refresh, 15000);
  }

  if (testBtn) {
    testBtn.addEventListener("click", async () => {
      testBtn.disabled = true;
      result.textContent = "sending…";
      try {
        const r = await fetch("/api/notify/test", {
          method: "POST", credentials: "same-origin",
          headers: { "Content-Type": "application/json" }, body: "{}",
        });
        const body = await r.json();
        result.textContent = (body.results || []).map((x) => x.target + ": " + (x.ok ? "sent" : x.error)).join("; ") || body.error || "";
      } catch (e) {
        result.textContent = "test-send failed: " + e;
      }
      testBtn.disabled = false;
      const r = await fetch("/api/notify", { credentials: "same-origin" });
      if (r.ok) render(await r.json());
    });
  }
  refresh();
})();

// "Not in the rack": clients the broker refused (a Pi with an unknown MAC or a wrong secret)
// and agent accounts no Pi has used yet, so that neither is a silent loop. Text only: the
// names come from whoever knocked on the broker.
(function () {
  const box = document.getElementById("joining");
  const list = document.getElementById("joining-list");
  if (!box || !list) return;
  const when = (t) => new Date(t).toLocaleString();
  function item(kind, text) {
    const li = document.createElement("li");
    li.dataset.kind = kind;
    const b = document.createElement("strong");
    b.textContent = kind === "refused" ? "Refused" : "Never seen";
    li.append(b, " " + text);
    return li;
  }
  function render(e) {
    const items = [];
    for (const r of e.refused || []) {
      items.push(item("refused", (r.username || "(no user name)") + " from " + r.address + ": " + r.reason +
        " (" + r.count + (r.count === 1 ? " time" : " times") + ", last " + when(r.last) + ")"));
    }
    for (const n of e.never_seen || []) {
      items.push(item("never-seen", n.mac + " in row " + n.row + ", registered " + when(n.created) +
        (n.pending ? ", enrolled and waiting for approval" : "") + ": has its agent ever started?"));
    }
    list.replaceChildren(...items);
    box.hidden = items.length === 0;
  }
  async function refresh() {
    try {
      const r = await fetch("/api/enrolment", { credentials: "same-origin" });
      if (r.ok) render(await r.json());
    } catch (e) { /* the next poll tries again */ }
    setTimeout(refresh, 10000);
  }
  refresh();
})();

// "Password…": the signed-in user changes their own password.
(function () {
  const open = document.getElementById("password-open");
  const dialog = document.getElementById("password-dialog");
  if (!open || !dialog) return;
  const form = document.getElementById("password-form");
  const result = document.getElementById("password-result");
  open.addEventListener("click", () => { form.reset(); result.textContent = ""; dialog.showModal(); });
  document.getElementById("password-cancel").addEventListener("click", () => dialog.close());
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const f = form.elements;
    if (f.new.value !== f.again.value) { result.textContent = "The two new passwords differ."; return; }
    try {
      const r = await fetch("/api/me/password", {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ current: f.current.value, new: f.new.value }),
      });
      const body = await r.json();
      if (r.ok) { result.textContent = "Password changed."; setTimeout(() => dialog.close(), 800); }
      else result.textContent = body.error || ("failed: " + r.status);
    } catch (err) {
      result.textContent = "The Control Center cannot be reached: " + err;
    }
  });
})();

// "Kiosk link": a read-only link for a wall display, shown once.
(function () {
  const btn = document.getElementById("kiosk-new");
  const notice = document.getElementById("notice");
  if (!btn) return;
  btn.addEventListener("click", async () => {
    const name = "display-" + Date.now().toString(36);
    const r = await fetch("/api/kiosk", {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json" }, body: JSON.stringify({ name }),
    });
    const body = await r.json();
    notice.textContent = r.ok ? "Kiosk link " + body.name + " (shown once; open it on the display): " + location.origin + body.path :
      "No kiosk link: " + (body.error || r.status);
    notice.dataset.kiosk = r.ok ? location.origin + body.path : "";
    notice.hidden = false;
  });
})();

// "Shut down…": a Pi shut down or rebooted through its agent, its name typed to confirm.
(function () {
  const d = document.getElementById("system-dialog");
  if (!d) return;
  const form = document.getElementById("system-form");
  const result = document.getElementById("system-result");
  document.getElementById("system-cancel").addEventListener("click", () => d.close());
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const action = e.submitter ? e.submitter.value : "shutdown";
    const r = await fetch("/api/nodes/" + encodeURIComponent(d.dataset.mac) + "/system", {
      method: "POST", credentials: "same-origin", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ action, confirm: form.elements.confirm.value.trim() }),
    });
    const body = await r.json();
    if (r.ok) {
      result.textContent = (action === "shutdown" ? "Shutting down " : "Rebooting ") + d.dataset.name + ": its tile goes offline when the agent stops.";
      setTimeout(() => d.close(), 1500);
    } else {
      result.textContent = body.error || ("failed: " + r.status);
    }
  });
})();

// "Power…": a row's smart plug or a Pi's hub port switched, the name typed to switch it off.
(function () {
  const d = document.getElementById("power-dialog");
  if (!d) return;
  const form = document.getElementById("power-form");
  const result = document.getElementById("power-result");
  document.getElementById("power-cancel").addEventListener("click", () => d.close());
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const action = e.submitter ? e.submitter.value : "cycle";
    result.textContent = action === "cycle" ? "Power-cycling\u2026" : "Switching " + action + "\u2026";
    const r = await fetch(d.dataset.path, {
      method: "POST", credentials: "same-origin", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ action, confirm: form.elements.confirm.value.trim() }),
    });
    const body = await r.json().catch(() => ({}));
    if (r.ok) {
      result.textContent = "Done: the power is " + (body.on ? "on" : "off") + " (" + body.via + ").";
      setTimeout(() => d.close(), 1500);
    } else {
      result.textContent = body.error || ("failed: " + r.status);
    }
  });
})();

// "Add a Pi": a one-use enrolment token for a row, and the command to run on the new Pi.
(function () {
  const open = document.getElementById("enrol-open");
  const d = document.getElementById("enrol-dialog");
  if (!open || !d) return;
  const form = document.getElementById("enrol-form");
  const cmd = document.getElementById("enrol-command");
  const result = document.getElementById("enrol-result");
  open.addEventListener("click", () => { cmd.textContent = ""; result.textContent = ""; d.showModal(); });
  document.getElementById("enrol-cancel").addEventListener("click", () => d.close());
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const r = await fetch("/api/enroll/tokens", {
      method: "POST", credentials: "same-origin", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ row: form.elements.row.value.trim() }),
    });
    const body = await r.json();
    if (r.ok) {
      cmd.textContent = body.command;
      result.textContent = "Valid until " + new Date(body.expires).toLocaleTimeString() + ", for one Pi of row " + body.row + ".";
    } else {
      cmd.textContent = "";
      result.textContent = body.error || ("failed: " + r.status);
    }
  });
})();
