// pirack Control Center: the one formatter of units and rounding. The rack page's tiles (first
// render and live updates alike: the server sends numbers, never their text), the Pi page's
// charts and the fleet table all write values through it.
"use strict";

window.pirackFmt = (function () {
  const dash = "\u2013";

  function displayMAC(mac) {
    return mac && mac.length === 12 ? mac.match(/../g).join(":") : mac;
  }
  // bytesIEC writes a size as people read memory and disks: "312.0 MiB", "3.8 GiB".
  function bytesIEC(n) {
    if (n < 1024) return Math.round(n) + " B";
    const units = "KMGTP";
    let exp = -1;
    do { n /= 1024; exp++; } while (n >= 1024 && exp < 4);
    return n.toFixed(1) + " " + units[exp] + "iB";
  }
  // sig writes a number with three significant digits, no exponent: 0.0123, 4.56, 78.9, 1234.
  function sig(v) {
    const a = Math.abs(v);
    if (a >= 100 || a === 0) return v.toFixed(0);
    if (a >= 10) return v.toFixed(1);
    if (a >= 1) return v.toFixed(2);
    return v.toPrecision(3).replace(/0+$/, "").replace(/\.$/, "");
  }
  // rateSI writes a rate in decimal units, as network tools do: "812 B/s", "1.25 MB/s".
  function rateSI(v, unit) {
    const prefixes = ["", "k", "M", "G", "T"];
    let i = 0;
    while (Math.abs(v) >= 1000 && i < prefixes.length - 1) { v /= 1000; i++; }
    return sig(v) + " " + prefixes[i] + unit;
  }

  // value writes v in unit, as every chart, caption, legend and table cell shows it.
  function value(v, unit) {
    if (v == null || Number.isNaN(v)) return dash;
    switch (unit) {
      case "B": return bytesIEC(v);
      case "B/s": return rateSI(v, "B/s");
      case "/s": return sig(v) + "/s";
      case "%": return v.toFixed(1) + "%";
      case "\u00b0C": return v.toFixed(1) + " \u00b0C";
      case "MHz": return v.toFixed(0) + " MHz";
      case "W": return v.toFixed(1) + " W";
      case "V": return v.toFixed(2) + " V";
      case "A": return v.toFixed(2) + " A";
    }
    return sig(v);
  }

  // diskPercent is df's Use% of the root filesystem: used / (used + free), or, from an agent
  // without disk_used_bytes, 1 - free / total (topics.Metrics.DiskUsedPercent).
  function diskPercent(m) {
    if (!m || m.disk_free_bytes == null) return null;
    if (m.disk_used_bytes != null && m.disk_used_bytes + m.disk_free_bytes > 0) {
      return m.disk_used_bytes / (m.disk_used_bytes + m.disk_free_bytes) * 100;
    }
    if (m.disk_total_bytes > 0) return (m.disk_total_bytes - m.disk_free_bytes) / m.disk_total_bytes * 100;
    return null;
  }
  // memPercent is the share of memory in use: 100 - available / total.
  function memPercent(m) {
    if (!m || m.mem_available_bytes == null || !m.mem_total_bytes) return null;
    return 100 - m.mem_available_bytes / m.mem_total_bytes * 100;
  }

  // The tiles' lines.
  function load(m) {
    if (!m || m.load_1 == null) return dash;
    const l = m.load_1.toFixed(2);
    return m.cpu_count == null ? l : l + " / " + m.cpu_count + " cores";
  }
  function mem(m) {
    if (!m || m.mem_available_bytes == null) return dash;
    const free = bytesIEC(m.mem_available_bytes) + " free";
    return m.mem_total_bytes == null ? free : free + " of " + bytesIEC(m.mem_total_bytes);
  }
  function disk(m) {
    const used = diskPercent(m);
    if (used == null || m.disk_total_bytes == null) return dash;
    return used.toFixed(0) + "% used of " + bytesIEC(m.disk_total_bytes);
  }
  function temp(m) {
    return !m || m.cpu_temp_c == null ? dash : value(m.cpu_temp_c, "\u00b0C");
  }
  function throttle(m) {
    if (!m || (m.throttled_now == null && m.throttled_since_boot == null)) return dash;
    const words = (f) => f.join(", ").replaceAll("_", " ");
    const parts = [];
    if (m.throttled_now && m.throttled_now.length) parts.push(words(m.throttled_now) + " now");
    if (m.throttled_since_boot && m.throttled_since_boot.length) parts.push(words(m.throttled_since_boot) + " since boot");
    return parts.length ? parts.join("; ") : "none";
  }
  function power(p) {
    if (!p) return "no power reading";
    const parts = [];
    if (p.watts != null) parts.push(value(p.watts, "W"));
    if (p.volts != null) parts.push(value(p.volts, "V"));
    if (p.amps != null && p.watts == null) parts.push(value(p.amps, "A"));
    return parts.join(" \u00b7 ");
  }
  function perPi(watts, pis) {
    return watts != null && pis > 0 ? value(watts / pis, "W") + " per Pi" : "";
  }
  function ago(iso) {
    if (!iso) return "never";
    const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
    if (s < 60) return s + " s ago";
    if (s < 3600) return Math.floor(s / 60) + " min ago";
    if (s < 86400) return Math.floor(s / 3600) + " h ago";
    return new Date(iso).toLocaleString();
  }
  // duration writes a length of time: "42 s", "3 min 12 s", "2 h 5 min".
  function duration(ms) {
    const s = Math.round(ms / 1000);
    if (s < 60) return s + " s";
    if (s < 3600) return Math.floor(s / 60) + " min" + (s % 60 ? " " + (s % 60) + " s" : "");
    const m = Math.floor(s / 60) % 60;
    return Math.floor(s / 3600) + " h" + (m ? " " + m + " min" : "");
  }

  return { dash, displayMAC, bytesIEC, value, diskPercent, memPercent, load, mem, disk, temp, throttle, power, perPi, ago, duration };
})();
