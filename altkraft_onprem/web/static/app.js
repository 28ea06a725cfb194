// The shell's menu button below 860 px: a disclosure (aria-expanded) for the sidebar; Escape
// closes it and gives focus back to the button. Tables wider than their box scroll inside it,
// and such a box takes focus so that the keyboard can scroll it too.
(function () {
  "use strict";
  const button = document.getElementById("nav-button");
  const menu = document.getElementById("sidebar");
  if (button && menu) {
    const set = (open) => {
      document.body.classList.toggle("nav-open", open);
      button.setAttribute("aria-expanded", String(open));
    };
    button.addEventListener("click", () => set(button.getAttribute("aria-expanded") !== "true"));
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && button.getAttribute("aria-expanded") === "true") {
        set(false);
        button.focus();
      }
    });
    document.addEventListener("click", (event) => {
      if (document.body.classList.contains("nav-open") && !menu.contains(event.target)
          && !button.contains(event.target)) set(false);
    });
  }

  // Tables: each sits in a box of its own that scrolls sideways when the table is wider than
  // the page (the page itself never does). A box that scrolls takes focus, so the arrow keys
  // scroll it, and is a region named after its section's heading.
  document.querySelectorAll("table").forEach((table) => {
    if (table.closest(".scroll")) return;
    const box = document.createElement("div");
    box.className = "scroll";
    table.parentNode.insertBefore(box, table);
    box.appendChild(table);
  });
  const heading = (box) => {
    const section = box.closest("section, .card, main");
    const found = section && section.querySelector("h2, h1");
    return found ? found.textContent.trim() : "";
  };
  // A box the template made focusable itself stays as it is. A box that stops scrolling
  // loses what it was given here (a name it took from the heading too: a plain box has none).
  const mark = () => document.querySelectorAll(".scroll").forEach((box) => {
    if (box.hasAttribute("tabindex") && !box.dataset.scrollFocus) return;
    if (box.scrollWidth > box.clientWidth + 1) {
      box.tabIndex = 0;
      box.dataset.scrollFocus = "1";
      const name = box.getAttribute("aria-label") || heading(box);
      if (name) {
        box.setAttribute("role", "region");
        if (!box.hasAttribute("aria-label")) box.dataset.scrollLabel = "1";
        box.setAttribute("aria-label", name);
      }
    } else if (box.dataset.scrollFocus) {
      box.removeAttribute("tabindex");
      box.removeAttribute("role");
      if (box.dataset.scrollLabel) box.removeAttribute("aria-label");
      delete box.dataset.scrollFocus;
      delete box.dataset.scrollLabel;
    }
  });
  mark();
  if (window.ResizeObserver) new ResizeObserver(mark).observe(document.body);
})();
