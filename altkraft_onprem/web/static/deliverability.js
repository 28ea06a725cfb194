// Deliverability page: a "Copy" button beside every record to publish.
document.querySelectorAll("textarea.record").forEach((area) => {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "secondary small copy";
  button.textContent = area.dataset.copyLabel || "Copy";
  button.addEventListener("click", async () => {
    area.select();
    try {
      await navigator.clipboard.writeText(area.value);
    } catch (error) {
      document.execCommand("copy");     // older browsers, or clipboard permission refused
    }
    button.textContent = area.dataset.copiedLabel || "Copied";
  });
  area.insertAdjacentElement("afterend", button);
});
