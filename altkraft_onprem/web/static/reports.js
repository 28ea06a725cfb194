// Draws every <canvas data-chart="NAME"> from the JSON block #ak-charts (see reports/_charts.html).
// Every chart is an image with a name (its aria-label, else its section's heading) and its
// figures as a table behind a "show" toggle, unless the page already shows them in a table
// (data-table names it); a chart with nothing to draw says so instead.
(function () {
  "use strict";
  var block = document.getElementById("ak-charts");
  if (!block) { return; }
  var specs = JSON.parse(block.textContent);
  var text = JSON.parse(block.getAttribute("data-labels") || "{}");
  var palette = ["#3451d1", "#8da2f0", "#d9480f", "#f5a06b", "#2f9e44", "#ae3ec9", "#1098ad", "#868e96"];

  function el(tag, content) {
    var node = document.createElement(tag);
    if (content !== undefined) { node.textContent = content; }
    return node;
  }

  function heading(canvas) {
    var section = canvas.closest("section, .card");
    var found = section && section.querySelector("h2, h3");
    return found ? found.textContent.trim() : "";
  }

  function figures(spec, axis) {
    var table = el("table");
    table.className = "grid";
    var head = el("tr");
    head.appendChild(el("th", axis));
    spec.data.datasets.forEach(function (set) { head.appendChild(el("th", set.label || text.count)); });
    table.appendChild(el("thead")).appendChild(head);
    var body = table.appendChild(el("tbody"));
    spec.data.labels.forEach(function (label, row) {
      var line = body.appendChild(el("tr"));
      line.appendChild(el("th", String(label))).setAttribute("scope", "row");
      spec.data.datasets.forEach(function (set) {
        var value = set.data[row];
        line.appendChild(el("td", value === null || value === undefined ? "–" : String(value)));
      });
    });
    var details = el("details");
    details.className = "chart-table";
    details.appendChild(el("summary", text.table));
    var box = details.appendChild(el("div"));
    box.className = "scroll";
    box.appendChild(table);
    return details;
  }

  document.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
    var spec = specs[canvas.dataset.chart];
    if (!spec) { return; }
    var axis = spec.axis || "";
    delete spec.axis;
    var box = canvas.closest(".chart-box") || canvas;
    canvas.setAttribute("role", "img");
    if (!canvas.getAttribute("aria-label")) { canvas.setAttribute("aria-label", heading(canvas)); }
    // Nothing to draw: no points at all, or a round chart of zeros (a line of zeros is data).
    var values = [];
    spec.data.datasets.forEach(function (set) { values = values.concat(set.data); });
    var round = spec.type === "doughnut" || spec.type === "pie";
    var known = values.filter(function (v) { return v !== null && v !== undefined; });
    if (!spec.data.labels.length || !known.length || (round && known.every(function (v) { return !v; }))) {
      var empty = el("p", text.empty);
      empty.className = "muted chart-empty";
      box.replaceWith(empty);
      empty.dataset.chart = canvas.dataset.chart;
      return;
    }
    if (typeof Chart !== "undefined") {
      spec.data.datasets.forEach(function (set, i) {
        set.backgroundColor = set.backgroundColor || (round ? palette : palette[i % palette.length]);
        set.borderColor = set.borderColor || (round ? "#fff" : palette[i % palette.length]);
      });
      spec.options = Object.assign({responsive: true, maintainAspectRatio: false, animation: false}, spec.options || {});
      new Chart(canvas, spec);
      canvas.dataset.rendered = "1";
    }
    if (!canvas.dataset.table) { box.after(figures(spec, axis)); }
  });
}());
