// Swagger UI over our own OpenAPI document; served from the package, no CDN. No deep links:
// they put a link inside each operation's expand button (a control inside a control).
window.addEventListener("DOMContentLoaded", () => {
  const el = document.getElementById("swagger");
  window.SwaggerUIBundle({
    url: el.dataset.spec, dom_id: "#swagger", deepLinking: false,
    onComplete: () => {
      const servers = document.getElementById("servers");      // its visible title is not its label
      if (servers) servers.setAttribute("aria-label", "Servers");
    },
  });
});
