// pirack Control Center: keeps the rack page live from /api/events and sends commands.
// Data from Pis is only ever written with textContent or attributes, never parsed as HTML.
"use strict";

(function () {
  const rack = document.getElementById("rack");
  const tileTemplate = document.getElementById("tile-template");
  const rowTemplate = document.getElementById("row-template");
  const live = document.getElementById("live");
  const notice = document.getElementById("notice");
  const alertBox = document.getElementById("alerts");
  const alertList = document.getElementById("alert-list");
  const alertTemplate = document.getElementById("alert-template");
  const nodes = new Map(); // mac -> node, as last received
  const rows = new Map(); // row name -> row (power, alerts), as last received

  // Formatters: twins of the Go ones in web.go; keep them in step.
  const dash = "\u2013";
  function displayMAC(mac) {
    return mac && mac.length === 12 ? mac.match(/../g).join(":") : mac;
  }
  function bytesIEC(n) {
    if (n < 1024) return n + " B";
    const units = "KMGTP";
    let exp = -1;
    do { n /= 1024; exp++; } while (n >= 1024 && exp < 4);
    return n.toFixed(1) + " " + units[exp] + "iB";
  }
  function fmtLoad(m) {
    if (!m || m.load_1 == null) return dash;
    const l = m.load_1.toFixed(2);
    return m.cpu_count == null ? l : l + " / " + m.cpu_count + " cores";
  }
  function fmtMem(m) {
    if (!m || m.mem_available_bytes == null) return dash;
    const free = bytesIEC(m.mem_available_bytes) + " free";
    return m.mem_total_bytes == null ? free : free + " of " + bytesIEC(m.mem_total_bytes);
  }
  function fmtDisk(m) {
    if (!m || !m.disk_total_bytes || m.disk_free_bytes == null) return dash;
    const used = (m.disk_total_bytes - m.disk_free_bytes) / m.disk_total_bytes * 100;
    return used.toFixed(0) + "% used of " + bytesIEC(m.disk_total_bytes);
  }
  function fmtTemp(m) {
    return !m || m.cpu_temp_c == null ? dash : m.cpu_temp_c.toFixed(1) + " \u00b0C";
  }
  function fmtAgo(iso) {
    if (!iso) return "never";
    const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
    if (s < 60) return s + " s ago";
    if (s < 3600) return Math.floor(s / 60) + " min ago";
    if (s < 86400) return Math.floor(s / 3600) + " h ago";
    return new Date(iso).toLocaleString();
  }

  function fmtPower(p) {
    if (!p) return "no power reading";
    const parts = [];
    if (p.watts != null) parts.push(p.watts.toFixed(1) + " W");
    if (p.volts != null) parts.push(p.volts.toFixed(2) + " V");
    if (p.amps != null && p.watts == null) parts.push(p.amps.toFixed(2) + " A");
    return parts.join(" \u00b7 ");
  }
  function ledText(l) {
    if (!l) return "";
    let t = "LED " + l.state;
    if (l.action && l.by) t += " (" + l.action + " by " + l.by + ")";
    else if (l.action) t += " (" + l.action + ")";
    return t;
  }

  function field(el, name) {
    return el.querySelector('[data-field="' + name + '"]');
  }
  function setText(el, name, text) {
    const f = field(el, name);
    if (f) f.textContent = text;
  }

  function fillTile(tile, n) {
    tile.dataset.mac = n.mac;
    tile.dataset.state = n.state;
    tile.dataset.selected = String(n.selected);
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
    const seen = field(tile, "last_seen");
    seen.setAttribute("datetime", n.last_seen || "");
    seen.textContent = fmtAgo(n.last_seen);
    if (n.last_seen) seen.title = new Date(n.last_seen).toLocaleString();
    const sel = field(tile, "selected");
    sel.hidden = !n.selected;
    sel.textContent = "\u2605 selected" + (n.selected_by ? " (" + n.selected_by + " press)" : "");
    const clear = tile.querySelector('[data-action="clear"]');
    if (clear) clear.hidden = !n.selected;
    const led = field(tile, "led");
    led.hidden = !n.led;
    led.dataset.led = n.led ? n.led.state : "";
    tile.dataset.led = n.led ? n.led.state : "";
    setText(tile, "led_text", ledText(n.led));
    const loc = field(tile, "locate");
    if (loc) {
      loc.hidden = !n.locate;
      loc.dataset.found = n.locate ? String(!!n.locate.found_at) : "";
      loc.textContent = locateText(n.locate);
    }
    const alerts = n.alerts || [];
    tile.dataset.alerts = String(alerts.length);
    fillAlertItems(field(tile, "alerts"), alerts);
    field(tile, "detail").setAttribute("href", "/nodes/" + encodeURIComponent(n.mac));
  }

  // locateText: twin of locateText in web.go.
  function locateText(l) {
    if (!l) return "";
    if (!l.found_at) return "Locate sent by " + l.by;
    return "found " + Math.round(l.found_after_s) + "s after " + l.by + "'s Locate";
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
    const r = rows.get(sec.dataset.row) || {};
    const pis = sec.querySelectorAll("article.tile").length;
    setText(sec, "power_text", fmtPower(r.power));
    const w = r.power && r.power.watts;
    setText(sec, "per_pi", w != null && pis > 0 ? (w / pis).toFixed(1) + " W per Pi" : "");
    fillAlertItems(field(sec, "row_alerts"), r.alerts || []);
  }

  // The banner lists every raised alert; it is redrawn once per animation frame at most, so a
  // burst of updates on a large rack costs one redraw.
  let bannerQueued = false;
  function banner() {
    if (bannerQueued) return;
    bannerQueued = true;
    requestAnimationFrame(() => {
      bannerQueued = false;
      const all = [];
      for (const r of rows.values()) all.push(...(r.alerts || []));
      for (const n of nodes.values()) all.push(...(n.alerts || []));
      all.sort((a, b) => (a.row + a.mac + a.rule).localeCompare(b.row + b.mac + b.rule));
      alertList.replaceChildren();
      for (const a of all) {
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
        alertList.append(li);
      }
      document.getElementById("alert-count").textContent = all.length;
      alertBox.dataset.count = String(all.length);
      alertBox.hidden = all.length === 0;
    });
  }

  function rowSection(name) {
    for (const sec of rack.querySelectorAll("section.row")) {
      if (sec.dataset.row === name) return sec;
    }
    const empty = document.getElementById("empty");
    if (empty) empty.remove();
    const sec = rowTemplate.content.firstElementChild.cloneNode(true);
    sec.dataset.row = name;
    setText(sec, "row", name);
    fillRowHead(sec);
    // Keep rows sorted by name, as the server renders them.
    const after = [...rack.querySelectorAll("section.row")].find((s) => s.dataset.row > name);
    rack.insertBefore(sec, after || null);
    return sec;
  }

  function upsert(n) {
    nodes.set(n.mac, n);
    let tile = rack.querySelector('article.tile[data-mac="' + CSS.escape(n.mac) + '"]');
    const sec = rowSection(n.row);
    const tiles = sec.querySelector(".tiles");
    if (!tile || tile.closest("section.row") !== sec) {
      if (tile) {
        const old = tile.closest("section.row");
        tile.remove();
        if (old && !old.querySelector("article.tile")) old.remove();
        else if (old) fillRowHead(old);
      }
      tile = tileTemplate.content.firstElementChild.cloneNode(true);
      const after = [...tiles.querySelectorAll("article.tile")].find((t) => t.dataset.mac > n.mac);
      tiles.insertBefore(tile, after || null);
      fillRowHead(sec);
    }
    fillTile(tile, n);
    banner();
  }

  function upsertRow(r) {
    rows.set(r.name, r);
    fillRowHead(rowSection(r.name));
    banner();
  }

  function summary() {
    let online = 0;
    for (const n of nodes.values()) if (n.state === "online") online++;
    document.getElementById("online-count").textContent = online;
    document.getElementById("total-count").textContent = nodes.size;
  }

  function snapshot(list) {
    nodes.clear();
    rows.clear();
    for (const t of rack.querySelectorAll("article.tile")) t.remove();
    for (const s of rack.querySelectorAll("section.row")) s.remove();
    for (const n of list) upsert(n);
    summary();
    banner();
  }

  function setLive(state, text) {
    live.dataset.live = state;
    live.textContent = text;
  }

  let hideTimer;
  function say(text, bad) {
    notice.textContent = text;
    notice.classList.toggle("bad", !!bad);
    notice.hidden = false;
    clearTimeout(hideTimer);
    hideTimer = setTimeout(() => { notice.hidden = true; }, 6000);
  }

  // Live updates. EventSource reconnects by itself after network errors; after an HTTP error
  // (such as 401 once the session expired) it gives up, so check why and retry or sign in again.
  function connect() {
    const es = new EventSource("/api/events");
    es.onopen = () => setLive("on", "live");
    es.addEventListener("snapshot", (e) => snapshot(JSON.parse(e.data)));
    es.addEventListener("node", (e) => { upsert(JSON.parse(e.data)); summary(); });
    es.addEventListener("rows", (e) => { for (const r of JSON.parse(e.data)) upsertRow(r); });
    es.addEventListener("row", (e) => upsertRow(JSON.parse(e.data)));
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

  async function command(mac, action) {
    const n = nodes.get(mac);
    const name = (n && n.hostname) || displayMAC(mac);
    try {
      const r = await fetch("/api/nodes/" + encodeURIComponent(mac) + "/" + action, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json" },
        body: "{}",
      });
      if (r.status === 401) { location.assign("/login"); return; }
      const body = await r.json().catch(() => ({}));
      if (!r.ok) { say(name + ": " + (body.error || r.statusText), true); return; }
      if (action === "blink") say("Blinking the LED of " + name + " (" + body.count + " times).");
      else say("Selection cleared on " + name + ".");
    } catch (err) {
      say(name + ": " + err.message, true);
    }
  }

  rack.addEventListener("click", (e) => {
    const btn = e.target.closest("button[data-action]");
    if (!btn) return;
    const tile = btn.closest("article.tile");
    if (tile) command(tile.dataset.mac, btn.dataset.action);
  });

  setInterval(() => {
    for (const t of rack.querySelectorAll('time[data-field="last_seen"]')) {
      t.textContent = fmtAgo(t.getAttribute("datetime"));
    }
  }, 5000);

  setLive("off", "connecting\u2026");
  connect();
})();
