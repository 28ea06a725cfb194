// Pre-send checks (message editor tab, campaign page): a button fetches the findings as JSON
// and lists them. Every text comes from the server, translated.
(function () {
  document.querySelectorAll("[data-presend-url]").forEach((box) => {
    const button = box.querySelector(".presend-run");
    const list = box.querySelector(".presend-findings");
    const status = box.querySelector(".presend-status");
    button.addEventListener("click", async () => {
      button.disabled = true;
      status.textContent = box.dataset.runningLabel;
      list.replaceChildren();
      try {
        const from = box.querySelector(".presend-from");
        const url = box.dataset.presendUrl + (from && from.value ? "?from_email=" + encodeURIComponent(from.value) : "");
        const response = await fetch(url, {headers: {"Accept": "application/json"}, credentials: "same-origin"});
        const data = await response.json();
        if (!response.ok) { status.textContent = data.error || response.status; return; }
        status.textContent = data.findings.length ? "" : data.none;
        for (const item of data.findings) {
          const li = document.createElement("li");
          li.dataset.code = item.code;
          li.dataset.severity = item.severity;
          const badge = document.createElement("span");
          badge.className = "status " + ({info: "pass", warning: "warn", block: "fail"}[item.severity]);
          badge.textContent = item.severity_label;
          const title = document.createElement("strong");
          title.textContent = " " + item.title + ": ";
          li.append(badge, title, document.createTextNode(item.detail));
          list.append(li);
        }
      } catch (error) {
        status.textContent = String(error);
      } finally {
        button.disabled = false;
      }
    });
  });
})();
