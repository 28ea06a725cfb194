// Live progress on the campaign page: polls the progress JSON while the campaign is active.
(function () {
  const box = document.getElementById("progress");
  if (!box) return;
  const active = new Set(["running", "scheduled"]);
  const state = document.getElementById("state");
  function show(data) {
    state.dataset.state = data.state;
    state.textContent = data.state_label;
    for (const [key, value] of Object.entries(data.stats)) {
      const cell = document.getElementById("stat-" + key);
      if (cell) cell.textContent = value === null ? "—" : value;
    }
    const eta = document.getElementById("stat-eta");
    if (eta) eta.textContent = data.stats.eta_seconds ? data.stats.eta_seconds + " s" : "—";
    const bar = document.getElementById("bar");
    bar.max = data.stats.total || 1;
    bar.value = data.stats.total - data.stats.remaining;
    document.getElementById("bar-percent").textContent = data.done_label;
    const split = document.getElementById("split-test");
    if (split && data.split) {
      // A split test decided meanwhile: reload once so the winner and the buttons show.
      if (split.dataset.state !== data.split.state) { window.location.reload(); return; }
      for (const v of data.split.variants) {
        const cells = {recipients: v.recipients, delivered: v.delivered,
                       opens: v.unique_opens + " (" + v.open_rate + "%)",
                       clicks: v.unique_clicks + " (" + v.click_rate + "%)",
                       click_to_open: v.click_to_open + "%"};
        for (const [key, text] of Object.entries(cells)) {
          const cell = document.getElementById("split-" + v.variant + "-" + key);
          if (cell) cell.textContent = text;
        }
      }
    }
    const reason = document.getElementById("pause-reason");
    // the late-start notice says it in the reader's language
    reason.hidden = !data.pause_reason || document.getElementById("late-start") !== null;
    reason.textContent = data.pause_reason || "";
  }
  let polls = 0;
  async function poll() {
    try {
      // A split test's figures every tenth poll: they read the tracking events.
      const withSplit = document.getElementById("split-test") && polls++ % 10 === 0;
      const url = box.dataset.url + (withSplit ? "?split=1" : "");
      const response = await fetch(url, {credentials: "same-origin"});
      if (response.ok) {
        const data = await response.json();
        show(data);
        // Finished, paused or cancelled: reload once so the action buttons match the state.
        if (!active.has(data.state)) { window.location.reload(); return; }
      }
    } catch (e) { /* retry below */ }
    setTimeout(poll, 1000);
  }
  if (active.has(state.dataset.state)) setTimeout(poll, 500);
})();
