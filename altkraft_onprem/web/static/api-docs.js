// Swagger UI over our own OpenAPI document; served from the package, no CDN.
window.addEventListener("DOMContentLoaded", () => {
  const el = document.getElementById("swagger");
  window.SwaggerUIBundle({ url: el.dataset.spec, dom_id: "#swagger", deepLinking: true });
});
