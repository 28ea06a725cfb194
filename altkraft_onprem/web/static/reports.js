// Draws every <canvas data-chart="NAME"> from the JSON block #ak-charts (see reports/_charts.html).
(function () {
  "use strict";
  var block = document.getElementById("ak-charts");
  if (!block || typeof Chart === "undefined") { return; }
  var specs = JSON.parse(block.textContent);
  var palette = ["#3451d1", "#8da2f0", "#d9480f", "#f5a06b", "#2f9e44", "#ae3ec9", "#1098ad", "#868e96"];
  document.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
    var spec = specs[canvas.dataset.chart];
    if (!spec) { return; }
    spec.data.datasets.forEach(function (set, i) {
      var round = spec.type === "doughnut" || spec.type === "pie";
      set.backgroundColor = set.backgroundColor || (round ? palette : palette[i % palette.length]);
      set.borderColor = set.borderColor || (round ? "#fff" : palette[i % palette.length]);
    });
    spec.options = Object.assign({responsive: true, maintainAspectRatio: false, animation: false}, spec.options || {});
    new Chart(canvas, spec);
    canvas.dataset.rendered = "1";
  });
}());
