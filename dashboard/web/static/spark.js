// pirack Control Center: pirackSpark draws a sparkline into an <svg>. Standalone, no
// dependencies, and styled by classes only (the pages' CSP allows no inline style): spark-line,
// spark-area, spark-last and, with no value at all, spark-empty on the svg (style.css,
// "sparkline").
"use strict";

(function () {
  const svgNS = "http://www.w3.org/2000/svg";

  function fmt(v) {
    const a = Math.abs(v);
    return a >= 100 ? v.toFixed(0) : a >= 10 ? v.toFixed(1) : v.toFixed(2);
  }

  function el(name, attrs) {
    const e = document.createElementNS(svgNS, name);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    return e;
  }

  // pirackSpark(svg, values, opts) replaces the content of svg with a line through values,
  // oldest first, spread evenly across the svg's viewBox (set to "0 0 120 24" when it has
  // none). A null (or any non-number) is a gap: the line breaks there. The vertical range runs
  // from 0 (or the lowest value, if below) to the highest value; opts.min and opts.max widen it,
  // for example to a Pi's core count for its load. opts.label, if given, becomes the svg's
  // accessible name; a <title> summarising the values (also a tooltip) is always added.
  function pirackSpark(svg, values, opts) {
    opts = opts || {};
    const vals = Array.isArray(values) ? values.map((v) => (typeof v === "number" && isFinite(v) ? v : null)) : [];
    const nums = vals.filter((v) => v !== null);
    if (!svg.getAttribute("viewBox")) svg.setAttribute("viewBox", "0 0 120 24");
    const vb = svg.getAttribute("viewBox").trim().split(/[\s,]+/).map(Number);
    const [x0, y0, w, h] = vb.length === 4 && vb.every(isFinite) && vb[2] > 0 && vb[3] > 0 ? vb : [0, 0, 120, 24];
    if (opts.label) svg.setAttribute("aria-label", opts.label);
    svg.replaceChildren();
    svg.classList.toggle("spark-empty", nums.length === 0);
    const title = el("title", {});
    svg.append(title);
    if (nums.length === 0) {
      title.textContent = "no data";
      return;
    }

    let lo = Math.min(0, ...nums), hi = Math.max(...nums);
    if (typeof opts.min === "number" && isFinite(opts.min)) lo = Math.min(lo, opts.min);
    if (typeof opts.max === "number" && isFinite(opts.max)) hi = Math.max(hi, opts.max);
    if (hi <= lo) hi = lo + 1;
    const pad = h * 0.08; // room for the stroke at the top and bottom
    const x = (i) => x0 + (vals.length === 1 ? w / 2 : (i * w) / (vals.length - 1));
    const y = (v) => y0 + pad + (1 - (v - lo) / (hi - lo)) * (h - 2 * pad);
    const pt = (i) => x(i).toFixed(2) + "," + y(vals[i]).toFixed(2);

    // Runs of consecutive values; each is drawn on its own so gaps stay gaps.
    const runs = [];
    let run = [];
    vals.forEach((v, i) => {
      if (v === null) {
        if (run.length) runs.push(run);
        run = [];
      } else {
        run.push(i);
      }
    });
    if (run.length) runs.push(run);
    const base = (y0 + h).toFixed(2);
    for (const r of runs) {
      const line = r.map(pt);
      if (r.length > 1) {
        svg.append(el("polygon", {
          class: "spark-area",
          points: x(r[0]).toFixed(2) + "," + base + " " + line.join(" ") + " " + x(r[r.length - 1]).toFixed(2) + "," + base,
        }));
      }
      // A lone value is a dot: a zero-length line with round caps.
      svg.append(el("polyline", { class: "spark-line", points: (r.length > 1 ? line : [line[0], line[0]]).join(" ") }));
    }
    let last = vals.length - 1;
    while (vals[last] === null) last--;
    svg.append(el("polyline", { class: "spark-last", points: pt(last) + " " + pt(last) }));
    title.textContent = "latest " + fmt(vals[last]) + ", lowest " + fmt(Math.min(...nums)) + ", highest " + fmt(Math.max(...nums));
  }

  window.pirackSpark = pirackSpark;
})();
