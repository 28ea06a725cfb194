// The workflow builder: Drawflow draws the graph; every step can also be added, chosen,
// changed and connected with the form controls beside it (keyboard, small screens).
// Saves the workflow JSON of the API contract: {name, trigger, entry, graph{start, nodes, edges}}.
(function () {
  "use strict";
  const root = document.getElementById("builder");
  if (!root) return;
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const read = (id) => JSON.parse(document.getElementById(id).textContent);
  const draft = read("workflow-draft");
  const stats = read("workflow-stats");
  const BRANCHES = read("node-branches");
  const WORDS = read("builder-words");
  const $ = (id) => document.getElementById(id);
  const status = $("builder-status");
  const editable = root.dataset.editable === "yes";

  // Starting configs per step type: what the panel offers to edit.
  const DEFAULTS = {
    send_email: { message_id: 1, from_email: "news@example.com", from_name: "" },
    notify: { to: ["staff@example.com"], subject: "{{ subscriber.email }}", text: "" },
    webhook: { url: "https://example.com/hook", method: "POST" },
    wait: { duration: "P1D" },
    wait_until: { weekdays: [1, 2, 3, 4, 5], time: "09:00" },   // or {conditions, timeout}
    wait_for_event: { event: "order_paid", timeout: "P3D" },
    condition: { conditions: { op: "and", rules: [] } },
    switch: { cases: [{ branch: "first", conditions: { op: "and", rules: [] } }] },
    split: { variants: { a: 50, b: 50 } },
    goal: { name: "converted" },
    exit: { reason: "" },
    goto: { target: "", max_visits: 3 },
    enroll: { workflow_id: 1 },
    update_fields: { fields: { company: "" } },
    add_to_list: { list_id: 1 },
    remove_from_list: { list_id: 1 },
    suppress: { reason: "workflow" },
    frequency_cap: { max_emails: 3, days: 7 },
    send_window: { start: "09:00", end: "18:00", weekdays: [1, 2, 3, 4, 5] },
  };

  const editor = new Drawflow($("drawflow"));
  editor.reroute = false;
  editor.start();
  if (!editable) editor.editor_mode = "view";
  const byWf = new Map();          // workflow step id -> Drawflow node id

  function branchesOf(type, config) {
    if (type === "switch") return [...((config && config.cases) || []).map((c) => c.branch), "default"];
    if (type === "split") return Object.keys((config && config.variants) || {});
    if (type === "wait_until" && config && config.conditions) return [null, "timeout"];
    if (Object.prototype.hasOwnProperty.call(BRANCHES, type)) return BRANCHES[type];
    return [null];
  }
  const branchLabel = (b) => (b === null || b === undefined ? WORDS.branch_plain : b);
  function escapeHtml(text) {
    const div = document.createElement("div");
    div.textContent = text;
    return div.innerHTML;
  }
  function nodeHtml(data) {
    const s = Object.assign({ entered: 0, waiting: 0, done: 0, exited: 0, converted: 0 }, stats[data.id] || {});
    const outs = branchesOf(data.type, data.config).map(branchLabel).join(" · ");
    const counters = ["entered", "waiting", "done", "exited", "converted"]
      .map((key) => `<span>${escapeHtml(WORDS[key])} <b>${Number(s[key])}</b></span>`).join(" ");
    return `<div class="wf-node" data-wf="${escapeHtml(data.id)}">` +
      `<strong>${escapeHtml(data.name || data.id)}</strong> <span class="wf-type">${escapeHtml(data.type)}</span>` +
      `<span class="wf-counters">${counters}</span>` +
      `<span class="wf-branches">${escapeHtml(outs)}</span></div>`;
  }

  // Where the n-th step goes when it has no place yet: down a column (narrow canvases too).
  const slot = (n) => ({ x: 30 + (n % 2) * 40, y: 20 + n * 115 });

  function addNode(data, x, y) {
    const outputs = Math.max(branchesOf(data.type, data.config).length, 0);
    const inputs = 1;
    const dfId = editor.addNode(data.type, inputs, outputs, x, y, "wf", data, nodeHtml(data));
    byWf.set(data.id, dfId);
    return dfId;
  }

  // The Drawflow output of a step's branch, or null.
  function output(from, branch) {
    const src = byWf.get(from);
    if (!src) return null;
    const node = editor.getNodeFromId(src);
    const index = branchesOf(node.data.type, node.data.config).findIndex((b) => branchLabel(b) === branchLabel(branch));
    return index < 0 ? null : `output_${index + 1}`;
  }

  function connect(from, branch, to) {
    const dst = byWf.get(to);
    const out = output(from, branch);
    if (!dst || !out) return false;
    editor.addConnection(byWf.get(from), dst, out, "input_1");
    return true;
  }

  function disconnect(from, branch, to) {
    const dst = byWf.get(to);
    const out = output(from, branch);
    if (!dst || !out) return false;
    const src = byWf.get(from);
    const linked = editor.getNodeFromId(src).outputs[out].connections.some((c) => String(c.node) === String(dst));
    if (!linked) return false;
    editor.removeSingleConnection(src, dst, out, "input_1");
    return true;
  }

  // --- load the draft ----------------------------------------------------------------------
  const graph = draft.graph || {};
  (graph.nodes || []).forEach((n, i) => {
    const pos = n.position || {};
    addNode({ id: n.id, type: n.type, name: n.name || "", config: n.config || {} },
      pos.x !== undefined ? pos.x : slot(i).x, pos.y !== undefined ? pos.y : slot(i).y);
  });
  (graph.edges || []).forEach((e) => connect(e.from, e.branch === undefined ? null : e.branch, e.to));

  const trigger = Object.assign({ type: "manual" }, draft.trigger || {});
  $("wf-name").value = draft.name || "";
  $("trigger-type").value = trigger.type;
  const triggerRest = Object.assign({}, trigger);
  delete triggerRest.type;
  $("trigger-config").value = JSON.stringify(triggerRest);

  // --- the workflow JSON -------------------------------------------------------------------
  function parseJson(text, what) {
    try {
      return text.trim() ? JSON.parse(text) : {};
    } catch (error) {
      throw new Error(`${what}: ${error.message}`);
    }
  }

  function toWorkflow() {
    const data = editor.export().drawflow.Home.data;
    const nodes = [];
    const edges = [];
    const incoming = new Set();
    Object.values(data).forEach((n) => {
      const d = n.data;
      nodes.push({ id: d.id, type: d.type, name: d.name || "", config: d.config, position: { x: n.pos_x, y: n.pos_y } });
      const branches = branchesOf(d.type, d.config);
      Object.entries(n.outputs).forEach(([key, out]) => {
        const branch = branches[parseInt(key.split("_")[1], 10) - 1];
        out.connections.forEach((c) => {
          const to = data[c.node].data.id;
          const edge = { from: d.id, to };
          if (branch !== null && branch !== undefined) edge.branch = branch;
          edges.push(edge);
          incoming.add(to);
        });
      });
    });
    const roots = nodes.filter((n) => !incoming.has(n.id)).sort((a, b) => a.position.x - b.position.x);
    const start = (roots[0] || nodes[0] || { id: "" }).id;
    const entry = Object.assign({}, draft.entry || {});
    const number = (id) => parseInt($(id).value, 10);
    entry.reentry = $("reentry").value === "after_days" ? { after_days: number("reentry-days") } : $("reentry").value;
    entry.backfill = $("backfill").value === "days" ? { days: number("backfill-days") } : $("backfill").value;
    [["segment_id", "entry-segment"], ["exit_segment_id", "exit-segment"]].forEach(([key, id]) => {
      if ($(id).value) entry[key] = number(id);
      else delete entry[key];
    });
    const out = Object.assign({}, draft, {
      name: $("wf-name").value.trim(),
      trigger: Object.assign(parseJson($("trigger-config").value, "trigger settings"), { type: $("trigger-type").value }),
      entry, timezone: $("wf-timezone").value.trim() || "UTC", graph: { start, nodes, edges },
    });
    return out;
  }

  async function save() {
    let body;
    try {
      body = JSON.stringify(toWorkflow());
    } catch (error) {
      status.textContent = error.message;
      return false;
    }
    const response = await fetch(root.dataset.saveUrl, {
      method: "POST", body,
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf, Accept: "application/json" },
    });
    const answer = await response.json().catch(() => ({}));
    status.textContent = response.ok ? WORDS.saved : (answer.error || `HTTP ${response.status}`);
    return response.ok;
  }

  // --- the panels --------------------------------------------------------------------------
  function nodeIds() {
    return Object.values(editor.export().drawflow.Home.data).map((n) => n.data.id);
  }
  function fill(select, values, labels) {
    const previous = select.value;
    select.innerHTML = "";
    values.forEach((v, i) => {
      const option = document.createElement("option");
      option.value = v === null ? "" : v;
      option.textContent = labels ? labels[i] : v;
      select.appendChild(option);
    });
    if (values.map((v) => (v === null ? "" : v)).includes(previous)) select.value = previous;
  }
  function refreshLists() {
    const ids = nodeIds();
    ["connect-from", "connect-to", "node-select"].forEach((id) => fill($(id), ids));
    refreshBranches();
    showNode($("node-select").value);
  }
  function refreshBranches() {
    const src = byWf.get($("connect-from").value);
    const branches = src ? branchesOf(editor.getNodeFromId(src).data.type, editor.getNodeFromId(src).data.config) : [];
    fill($("connect-branch"), branches, branches.map(branchLabel));
  }
  function showNode(id) {
    const dfId = byWf.get(id);
    $("node-none").hidden = Boolean(dfId);
    if (!dfId) {
      $("node-name").value = "";
      $("node-config").value = "";
      return;
    }
    const data = editor.getNodeFromId(dfId).data;
    $("node-select").value = id;
    $("node-name").value = data.name || "";
    $("node-config").value = JSON.stringify(data.config, null, 2);
  }
  function redraw(dfId, data) {
    const element = document.querySelector(`#node-${dfId} .drawflow_content_node`);
    if (element) element.innerHTML = nodeHtml(data);
  }

  let counter = nodeIds().length;
  $("add-node").addEventListener("click", () => {
    const type = $("node-type").value;
    let id;
    do { counter += 1; id = `${type}${counter}`; } while (byWf.has(id));
    const count = nodeIds().length;
    addNode({ id, type, name: "", config: JSON.parse(JSON.stringify(DEFAULTS[type] || {})) },
      slot(count).x, slot(count).y);
    refreshLists();
    showNode(id);
    status.textContent = WORDS.added;
    $("node-config").focus();
  });
  $("connect-from").addEventListener("change", refreshBranches);
  $("connect").addEventListener("click", () => {
    const raw = $("connect-branch").value;
    const ok = connect($("connect-from").value, raw === "" ? null : raw, $("connect-to").value);
    status.textContent = ok ? WORDS.connected : WORDS.not_connected;
  });
  $("disconnect").addEventListener("click", () => {
    const raw = $("connect-branch").value;
    const ok = disconnect($("connect-from").value, raw === "" ? null : raw, $("connect-to").value);
    status.textContent = ok ? WORDS.disconnected : WORDS.no_such_edge;
  });
  $("node-select").addEventListener("change", () => showNode($("node-select").value));
  $("apply-node").addEventListener("click", () => {
    const dfId = byWf.get($("node-select").value);
    if (!dfId) return;
    const data = editor.getNodeFromId(dfId).data;
    let config;
    try {
      config = parseJson($("node-config").value, data.id);
    } catch (error) {
      status.textContent = error.message;
      return;
    }
    const before = branchesOf(data.type, data.config).length;
    const updated = Object.assign({}, data, { config, name: $("node-name").value.trim() });
    let after = branchesOf(updated.type, updated.config).length;
    for (; after > before; after -= 1) editor.addNodeOutput(dfId);
    for (let n = before; n > branchesOf(updated.type, updated.config).length; n -= 1) editor.removeNodeOutput(dfId, `output_${n}`);
    editor.updateNodeDataFromId(dfId, updated);
    redraw(dfId, updated);
    refreshBranches();
    status.textContent = WORDS.applied;
  });
  $("delete-node").addEventListener("click", () => {
    const id = $("node-select").value;
    const dfId = byWf.get(id);
    if (!dfId) return;
    editor.removeNodeId(`node-${dfId}`);
    byWf.delete(id);
    refreshLists();
    status.textContent = WORDS.deleted;
  });
  editor.on("nodeSelected", (dfId) => showNode(editor.getNodeFromId(dfId).data.id));
  $("save-draft").addEventListener("click", save);
  const publish = $("publish-form");
  if (publish) {
    publish.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (await save()) publish.submit();
    });
  }
  refreshLists();
  // The controls come disabled: a click before this script has wired them would be lost (or,
  // for "Save and publish", publish the draft as last saved). Ready now.
  document.querySelectorAll("[data-builder-control]").forEach((control) => { control.disabled = false; });
})();
