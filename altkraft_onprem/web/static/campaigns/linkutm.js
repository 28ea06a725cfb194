// The campaign form's "Per-link UTM marks": when another message is chosen, its numbered
// links come from /campaigns/messages/<id>/links.json and replace the list (the inputs of
// the message shown first are rendered by the server; without JavaScript the list follows
// the message after saving).
(function () {
  var box = document.getElementById("link-utm");
  var form = document.getElementById("campaign-form");
  var select = form && form.querySelector("select[name=message_id]");
  if (!box || !select) return;
  var list = document.getElementById("link-utm-links");
  var keys = box.dataset.utmKeys.split(" ");

  function note(text) {
    var p = document.createElement("p");
    p.className = "muted";
    p.textContent = text;
    list.replaceChildren(p);
  }

  function linkFieldset(link) {
    var set = document.createElement("fieldset");
    set.className = "link-utm";
    set.dataset.number = link.number;
    var legend = document.createElement("legend");
    legend.textContent = box.dataset.legend.replace("{number}", link.number);
    var url = document.createElement("code");
    url.className = "link-utm-url";
    url.textContent = link.url;
    set.append(legend, url);
    keys.forEach(function (key) {
      var name = "link_utm-" + link.number + "-" + key;
      var label = document.createElement("label");
      label.htmlFor = name;
      label.textContent = key;
      var input = document.createElement("input");
      input.id = input.name = name;
      input.maxLength = Number(box.dataset.maxlength);
      input.setAttribute("aria-describedby", "link-utm-help");
      set.append(label, input);
    });
    return set;
  }

  select.addEventListener("change", function () {
    var id = select.value;
    var error = document.getElementById("link-utm-error");
    if (error) error.remove();
    if (!id) { list.replaceChildren(); return; }
    var wanted = id;
    fetch(box.dataset.linksUrl.replace("/0/", "/" + id + "/"), {credentials: "same-origin"})
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
      .then(function (data) {
        if (select.value !== wanted) return;     // another message chosen meanwhile
        if (!data.links.length) { note(box.dataset.empty); return; }
        list.replaceChildren.apply(list, data.links.map(linkFieldset));
      })
      .catch(function () { if (select.value === wanted) note(box.dataset.failed); });
  });
})();
