// The campaign form: the split-test fields show only while "Split test" is ticked
// (without JavaScript they are always shown and count only when the box is ticked).
(function () {
  var box = document.getElementById("split_test_on");
  var fields = document.getElementById("split-fields");
  if (!box || !fields) return;
  // style, not the hidden attribute: .stack sets display, which would override [hidden]
  function sync() { fields.style.display = box.checked ? "" : "none"; }
  box.addEventListener("change", sync);
  sync();
})();
