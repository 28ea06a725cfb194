// The segment condition builder: edits the same JSON the API takes, shows a live count.
(function () {
  "use strict";
  // The segments page: each count arrives on its own.
  Array.prototype.forEach.call(document.querySelectorAll("a.segment-count"), function (link) {
    var request = new XMLHttpRequest();
    request.open("GET", link.getAttribute("data-url"));
    request.onload = function () {
      var body = {};
      try { body = JSON.parse(request.responseText); } catch (e) { body = {}; }
      link.textContent = request.status === 200 ? String(body.count) : "⚠ " + (body.error || request.statusText);
    };
    request.send();
  });
  var root = document.getElementById("builder");
  if (!root) { return; }
  var catalogue = JSON.parse(document.getElementById("segment-catalogue").textContent);
  var state = JSON.parse(document.getElementById("segment-conditions").textContent) || {op: "and", rules: []};
  var t = JSON.parse(root.getAttribute("data-i18n"));
  var hidden = document.getElementById("conditions");
  var preview = document.getElementById("conditions-preview");
  var countEl = document.getElementById("live-count");
  var noteEl = document.getElementById("count-note");
  var form = document.getElementById("segment-form");
  var csrf = form.querySelector("input[name=csrf_token]");
  var fields = {};
  catalogue.fields.forEach(function (f) { fields[f.field] = f; });
  var LABELS = {eq: "is", neq: "is not", contains: "contains", not_contains: "does not contain",
    starts_with: "starts with", ends_with: "ends with", "in": "is one of", not_in: "is none of",
    empty: "is empty", not_empty: "is not empty", gt: ">", gte: "≥", lt: "<", lte: "≤",
    on: "is on", before: "is before", after: "is after", in_last_days: "in the last N days",
    not_in_last_days: "not in the last N days", is_true: "is yes", is_false: "is no"};
  var NO_VALUE = ["empty", "not_empty", "is_true", "is_false"];
  var STATUSES = ["confirmed", "unconfirmed", "unsubscribed", "any"];

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") { node.textContent = attrs[k]; } else { node.setAttribute(k, attrs[k]); }
    });
    (children || []).forEach(function (c) { if (c) { node.appendChild(c); } });
    return node;
  }

  function select(options, value, onchange, cls, label) {
    var node = el("select", cls ? {"class": cls, "aria-label": label} : {"aria-label": label});
    options.forEach(function (o) {
      var opt = el("option", {value: String(o[0]), text: o[1]});
      if (String(o[0]) === String(value)) { opt.selected = true; }
      node.appendChild(opt);
    });
    node.addEventListener("change", function () { onchange(node.value); });
    return node;
  }

  function button(label, onclick, cls) {
    var b = el("button", {type: "button", "class": "small " + (cls || "secondary"), text: label});
    b.addEventListener("click", onclick);
    return b;
  }

  function newRule() {
    var first = catalogue.fields[0];
    return {field: first.field, operator: first.operators[0], value: ""};
  }

  function valueInput(rule, info) {
    if (NO_VALUE.indexOf(rule.operator) >= 0) { return null; }
    var multi = rule.operator === "in" || rule.operator === "not_in";
    var days = rule.operator === "in_last_days" || rule.operator === "not_in_last_days";
    if (info.choices && info.choices.length && !multi && !days) {
      var opts = [["", ""]].concat(info.choices.map(function (c) { return [c, c]; }));
      return select(opts, rule.value, function (v) { rule.value = v; changed(); }, "value", t.value);
    }
    var type = days || info.type === "number" ? "number" : info.type === "date" ? "date" :
      info.type === "datetime" && rule.operator !== "on" ? "datetime-local" :
      info.type === "datetime" ? "date" : "text";
    var shown = multi && Array.isArray(rule.value) ? rule.value.join(", ") : (rule.value == null ? "" : rule.value);
    if (type === "datetime-local" && typeof shown === "string") { shown = shown.slice(0, 16); }
    var input = el("input", {type: type, "class": "value", "aria-label": t.value,
      placeholder: multi ? "a, b, c" : ""});
    if (type === "number") { input.setAttribute("step", "any"); }
    input.value = shown;
    input.addEventListener("input", function () {
      if (multi) {
        rule.value = input.value.split(",").map(function (s) { return s.trim(); }).filter(Boolean);
      } else if (days) {
        rule.value = input.value === "" ? "" : parseInt(input.value, 10);
      } else if (type === "datetime-local" && input.value) {
        rule.value = input.value + ":00Z";
      } else {
        rule.value = input.value;
      }
      changed(false);
    });
    return input;
  }

  function ruleRow(rule, parent, index) {
    var row = el("div", {"class": "rule row"});
    var remove = button(t.remove, function () { parent.rules.splice(index, 1); render(); });
    if ("activity" in rule) {
      row.appendChild(select([["did", t.did], ["did_not", t.did_not]], rule.operator || "did",
        function (v) { rule.operator = v; changed(); }, "activity-operator", t.did_label));
      row.appendChild(select([["open", t.open], ["click", t.click], ["read", t.read]], rule.activity,
        function (v) { rule.activity = v; changed(); }, "activity-kind", t.activity));
      [["campaign", t.campaign], ["days", t.days]].forEach(function (pair) {
        var input = el("input", {type: "number", min: "1", "class": "activity-" + pair[0],
          placeholder: pair[1], "aria-label": pair[1]});
        input.value = rule[pair[0]] == null ? "" : rule[pair[0]];
        input.addEventListener("input", function () {
          if (input.value === "") { delete rule[pair[0]]; } else { rule[pair[0]] = parseInt(input.value, 10); }
          changed(false);
        });
        row.appendChild(input);
      });
      row.appendChild(remove);
      return row;
    }
    if ("list" in rule) {
      var lists = catalogue.lists.map(function (l) { return [l.id, l.name]; });
      row.appendChild(el("span", {text: t.list}));
      row.appendChild(select([["member", t.member], ["not_member", t.not_member]], rule.operator || "member",
        function (v) { rule.operator = v; changed(); }, "list-operator", t.membership));
      row.appendChild(select(lists, rule.list, function (v) { rule.list = parseInt(v, 10); changed(); }, "list-choice",
        t.list));
      row.appendChild(select(STATUSES.map(function (s) { return [s, s === "any" ? t.any : s]; }),
        rule.status || "confirmed", function (v) { rule.status = v; changed(); }, "list-status", t.status));
      row.appendChild(remove);
      return row;
    }
    var info = fields[rule.field] || catalogue.fields[0];
    var fieldOptions = catalogue.fields.map(function (f) { return [f.field, f.label]; });
    row.appendChild(select(fieldOptions, info.field, function (v) {
      rule.field = v; rule.operator = fields[v].operators[0]; rule.value = ""; render();
    }, "field", t.field));
    row.appendChild(select(info.operators.map(function (o) { return [o, LABELS[o] || o]; }), rule.operator,
      function (v) { rule.operator = v; if (NO_VALUE.indexOf(v) >= 0) { delete rule.value; } render(); }, "operator",
      t.operator));
    var input = valueInput(rule, info);
    if (input) { row.appendChild(input); }
    row.appendChild(remove);
    return row;
  }

  function groupBox(group, parent, index) {
    var box = el("div", {"class": "group"});
    var head = el("div", {"class": "row group-head"});
    head.appendChild(select([["and", t.and], ["or", t.or]], group.op || "and",
      function (v) { group.op = v; changed(); }, "group-op", t.match));
    head.appendChild(button(t.add_rule, function () { group.rules.push(newRule()); render(); }, "secondary add-rule"));
    head.appendChild(button(t.add_group, function () {
      group.rules.push({op: group.op === "and" ? "or" : "and", rules: [newRule()]}); render();
    }, "secondary add-group"));
    if (catalogue.lists.length) {
      head.appendChild(button(t.add_list, function () {
        group.rules.push({list: catalogue.lists[0].id, operator: "member", status: "confirmed"}); render();
      }, "secondary add-list"));
    }
    head.appendChild(button(t.add_activity, function () {
      group.rules.push({activity: "open", operator: "did", days: 30}); render();
    }, "secondary add-activity"));
    if (parent) { head.appendChild(button(t.remove, function () { parent.rules.splice(index, 1); render(); })); }
    box.appendChild(head);
    group.rules = group.rules || [];
    group.rules.forEach(function (rule, i) {
      box.appendChild("rules" in rule ? groupBox(rule, group, i) : ruleRow(rule, group, i));
    });
    return box;
  }

  var timer = null;
  var sequence = 0;
  function count() {
    var mine = ++sequence;
    noteEl.textContent = t.counting;
    var request = new XMLHttpRequest();
    request.open("POST", root.getAttribute("data-count-url"));
    request.setRequestHeader("Content-Type", "application/json");
    request.setRequestHeader("X-CSRFToken", csrf ? csrf.value : "");
    request.onload = function () {
      if (mine !== sequence) { return; }
      var body = {};
      try { body = JSON.parse(request.responseText); } catch (e) { body = {error: request.statusText}; }
      if (request.status === 200) {
        countEl.textContent = String(body.count);
        noteEl.textContent = body.label;      // "subscriber matches" / "subscribers match"
        root.removeAttribute("data-error");
      } else {
        countEl.textContent = "–";
        noteEl.textContent = (body.field ? body.field + ": " : "") + (body.error || request.statusText);
        root.setAttribute("data-error", "1");
      }
    };
    request.send(JSON.stringify({conditions: state}));
  }

  function changed(now) {
    var text = JSON.stringify(state);
    hidden.value = text;
    preview.textContent = JSON.stringify(state, null, 2);
    clearTimeout(timer);
    timer = setTimeout(count, now === false ? 350 : 50);
  }

  function render() {
    root.replaceChildren(groupBox(state, null, 0));
    changed();
  }

  render();
})();
