/* procexec run report: hover details, zoom and pan, the time axis.
 * The bars and charts are drawn by the page itself (SVG); this script only adds
 * interaction, so the page still shows everything with scripts off.
 * When done it sets data-ready on <html>; an uncaught error sets data-script-error. */
(function () {
  "use strict";
  var root = document.documentElement;
  window.addEventListener("error", function (event) {
    root.setAttribute("data-script-error", String(event.message || event));
  });

  var data = JSON.parse(document.getElementById("jobs-data").textContent);
  var SPAN = data.span;               /* the x extent of the charts, in user units */
  var WALL = data.wall > 0 ? data.wall : 1e-6;
  var MIN_WIDTH = SPAN / 1e6;         /* the deepest zoom: a millionth of the batch */
  var timeline = document.getElementById("timeline");
  var concurrency = document.getElementById("concurrency");
  var axis = document.getElementById("axis");
  var tip = document.getElementById("tip");
  var bars = document.getElementById("bars").children;
  var view = { x0: 0, x1: SPAN };
  var SVG = "http://www.w3.org/2000/svg";

  var barIndex = new WeakMap();
  for (var i = 0; i < bars.length; i++) barIndex.set(bars[i], i);
  var timedOut = {};
  data.timed_out.forEach(function (k) { timedOut[k] = true; });
  function command(k) { return data.cmd.prefix + data.cmd.middle[k] + data.cmd.suffix; }
  function signalOf(k) { return data.sig[k] || 0; }
  function attempts(k) { return data.att[k] || 1; }
  function slotOf(k) { return Math.round(bars[k].y.baseVal.value + 0.9); }
  function startOf(k) { return bars[k].x.baseVal.value / SPAN * WALL; }

  /* ------------------------------------------------------------- formatting */
  function seconds(s) {
    if (s < 1) return (s * 1000).toFixed(s < 0.01 ? 2 : 1) + " ms";
    if (s < 120) return s.toFixed(s < 10 ? 3 : 1) + " s";
    if (s < 7200) return Math.floor(s / 60) + " min " + Math.round(s % 60) + " s";
    return Math.floor(s / 3600) + " h " + Math.round((s % 3600) / 60) + " min";
  }
  function bytes(n) {
    var units = ["B", "KiB", "MiB", "GiB", "TiB"], u = 0;
    while (n >= 1024 && u < units.length - 1) { n /= 1024; u++; }
    return (u ? n.toFixed(1) : String(n)) + " " + units[u];
  }
  function status(k) {
    var sig = signalOf(k);
    var ended = sig ? (data.signames[sig] || "signal " + sig) : "exit " + data.exit[k];
    if (data.errors[k] !== undefined && data.exit[k] === null) ended = data.errors[k];
    return timedOut[k] ? "timed out (" + ended + ")" : ended;
  }

  /* ------------------------------------------------------------- hover */
  function add(parent, cls, text) {
    var el = document.createElement("div");
    if (cls) el.className = cls;
    el.textContent = text;
    parent.appendChild(el);
  }
  function describe(k) {
    tip.textContent = "";
    add(tip, "cmd", command(k));
    add(tip, "", "#" + data.seq[k] + " \u00b7 " + status(k) + " \u00b7 " + seconds(data.dur[k] / 1e6));
    var more = ["slot " + slotOf(k)];
    if (data.calls.indexOf(k) >= 0) more.unshift("Python call");
    if (data.pid[k] !== null) more.push("pid " + data.pid[k]);
    if (data.host) more.push("host " + data.hosts[data.host[k]]);
    if (attempts(k) > 1) more.push("attempt " + attempts(k));
    add(tip, "k", more.join(" \u00b7 "));
    var usage = [];
    if (data.cpu && data.cpu[k] !== null) usage.push("CPU " + seconds(data.cpu[k] / 1000));
    if (data.rss && data.rss[k] !== null) usage.push("peak RSS " + bytes(data.rss[k] * 1024));
    if (usage.length) add(tip, "k", usage.join(" \u00b7 "));
    if (data.errors[k] !== undefined) add(tip, "k", data.errors[k]);
    add(tip, "k", "started at +" + seconds(startOf(k)));
  }
  function place(event) {
    var pad = 14, w = tip.offsetWidth, h = tip.offsetHeight;
    var x = event.clientX + pad, y = event.clientY + pad;
    if (x + w > window.innerWidth) x = Math.max(0, event.clientX - w - pad);
    if (y + h > window.innerHeight) y = Math.max(0, event.clientY - h - pad);
    tip.style.left = x + "px";
    tip.style.top = y + "px";
  }
  timeline.addEventListener("mousemove", function (event) {
    var k = barIndex.get(event.target);
    if (drag || k === undefined) { tip.hidden = true; return; }
    describe(k);
    tip.hidden = false;
    place(event);
  });
  timeline.addEventListener("mouseleave", function () { tip.hidden = true; });

  /* ------------------------------------------------------------- zoom and pan */
  function show(x0, x1) {
    var width = Math.min(SPAN, Math.max(MIN_WIDTH, x1 - x0));
    x0 = Math.min(Math.max(0, x0), SPAN - width);
    view = { x0: x0, x1: x0 + width };
    timeline.setAttribute("viewBox", x0 + " 0 " + width + " " + data.rows);
    concurrency.setAttribute("viewBox", x0 + " 0 " + width + " " + data.conc_height);
    drawAxis();
  }
  function zoom(factor, at) {           /* at: 0..1 across the plot, stays in place */
    var width = view.x1 - view.x0, centre = view.x0 + width * at;
    var next = Math.min(SPAN, Math.max(MIN_WIDTH, width * factor));
    show(centre - next * at, centre - next * at + next);
  }
  var drag = null;
  function interactive(svg) {
    svg.addEventListener("wheel", function (event) {
      event.preventDefault();
      var box = svg.getBoundingClientRect();
      zoom(Math.pow(1.0015, event.deltaY), (event.clientX - box.left) / box.width);
    }, { passive: false });
    svg.addEventListener("pointerdown", function (event) {
      drag = { svg: svg, x: event.clientX, x0: view.x0, x1: view.x1 };
      svg.setPointerCapture(event.pointerId);
      svg.classList.add("dragging");
    });
    svg.addEventListener("pointermove", function (event) {
      if (!drag || drag.svg !== svg) return;
      var box = svg.getBoundingClientRect();
      var shift = (drag.x - event.clientX) / box.width * (drag.x1 - drag.x0);
      show(drag.x0 + shift, drag.x1 + shift);
    });
    function end() { drag = null; svg.classList.remove("dragging"); }
    svg.addEventListener("pointerup", end);
    svg.addEventListener("pointercancel", end);
    svg.addEventListener("dblclick", function () { show(0, SPAN); });
  }
  interactive(timeline);
  interactive(concurrency);
  document.getElementById("zoom-in").addEventListener("click", function () { zoom(0.5, 0.5); });
  document.getElementById("zoom-out").addEventListener("click", function () { zoom(2, 0.5); });
  document.getElementById("zoom-reset").addEventListener("click", function () { show(0, SPAN); });

  /* ------------------------------------------------------------- time axis */
  function niceStep(raw) {
    var power = Math.pow(10, Math.floor(Math.log10(raw)));
    var m = raw / power;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * power;
  }
  function drawAxis() {
    var width = axis.getBoundingClientRect().width || 800;
    var s0 = view.x0 / SPAN * WALL, s1 = view.x1 / SPAN * WALL;
    var step = niceStep((s1 - s0) / Math.max(2, Math.floor(width / 90)));
    var digits = Math.max(0, -Math.floor(Math.log10(step)));
    while (axis.firstChild) axis.removeChild(axis.firstChild);
    for (var t = Math.ceil(s0 / step) * step; t <= s1 + step * 1e-9; t += step) {
      var x = (t - s0) / (s1 - s0) * width;
      var tick = document.createElementNS(SVG, "line");
      tick.setAttribute("x1", x); tick.setAttribute("x2", x);
      tick.setAttribute("y1", 0); tick.setAttribute("y2", 5);
      var label = document.createElementNS(SVG, "text");
      label.setAttribute("x", Math.min(Math.max(x, 16), width - 16));
      label.setAttribute("y", 17);
      label.textContent = t.toFixed(Math.min(digits, 6)) + " s";
      axis.appendChild(tick);
      axis.appendChild(label);
    }
  }
  window.addEventListener("resize", drawAxis);
  show(0, SPAN);

  var box = timeline.getBoundingClientRect();
  root.setAttribute("data-timeline-box", [box.left + window.scrollX, box.top + window.scrollY,
                                          box.width, box.height].map(Math.round).join(","));
  root.setAttribute("data-ready", String(bars.length));
})();
