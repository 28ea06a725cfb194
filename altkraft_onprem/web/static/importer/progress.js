// Import progress: polls the JSON endpoint until the import has finished or failed.
(function () {
  "use strict";
  var box = document.getElementById("import-progress");
  if (!box) return;
  function set(id, value) {
    var el = document.getElementById(id);
    if (el) el.textContent = value;
  }

  function render(data) {
    var p = data.progress;
    // Translated by the server, with their plural forms ("1 error so far", "2 errors so far").
    set("import-state", data.phrases.state);
    set("import-rows", data.phrases.rows);
    set("import-rate", data.phrases.rate);
    set("import-errors", data.phrases.errors);
    var bar = document.getElementById("import-bar");
    if (p.rows_total) {
      bar.max = p.rows_total;
      bar.value = Math.min(p.rows_done, p.rows_total);
    } else if (data.state === "finished") {
      bar.max = 1; bar.value = 1;
    } else {
      bar.removeAttribute("value");       // indeterminate
    }
    Object.keys(data.counts).forEach(function (key) {
      var cell = document.querySelector('[data-count="' + key + '"]');
      if (cell) cell.textContent = data.counts[key];
    });
    var error = document.getElementById("import-error");
    if (data.error) { error.textContent = data.error; error.hidden = false; }
    box.dataset.state = data.state;
    var undo = document.getElementById("undo-action");     // an ended import can be undone
    if (undo && (data.state === "finished" || data.state === "failed")) undo.hidden = false;
  }

  function poll() {
    fetch(box.dataset.url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (r) { return r.json(); })
      .then(function (data) {
        render(data);
        if (data.state === "queued" || data.state === "running") setTimeout(poll, 700);
      })
      .catch(function () { setTimeout(poll, 3000); });
  }
  poll();
})();
