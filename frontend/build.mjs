// Copies the browser builds of our npm dependencies into the package's static folder.
// No bundler: each library ships a ready browser file; we serve it from our own origin.
import { cpSync, mkdirSync, rmSync, existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const vendor = join(root, "altkraft_onprem", "web", "static", "vendor");
const modules = join(root, "node_modules");

// target folder in vendor/ -> files or folders inside node_modules
const COPIES = {
  "swagger-ui": ["swagger-ui-dist/swagger-ui-bundle.js", "swagger-ui-dist/swagger-ui.css"],
  "chartjs": ["chart.js/dist/chart.umd.js"],
  // The workflow builder's canvas (nodes, connections, drag and zoom).
  "drawflow": ["drawflow/dist/drawflow.min.js", "drawflow/dist/drawflow.min.css"],
  "grapesjs": ["grapesjs/dist/grapes.min.js", "grapesjs/dist/css/grapes.min.css"],
  "grapesjs-preset-newsletter": ["grapesjs-preset-newsletter/dist/index.js"],
  // CSS read by PostCSS instead of the browser, which drops properties it does not know
  // (mso-hide, -webkit-text-size-adjust…) when a message goes from code to visual mode.
  "grapesjs-parser-postcss": ["grapesjs-parser-postcss/dist/index.js"],
  "codemirror": ["codemirror/lib/codemirror.js", "codemirror/lib/codemirror.css",
                 "codemirror/mode/xml/xml.js", "codemirror/mode/htmlmixed/htmlmixed.js",
                 "codemirror/mode/css/css.js", "codemirror/mode/javascript/javascript.js",
                 "codemirror/mode/jinja2/jinja2.js"],
  // The proof-of-work robot check of public forms: the build without inlined workers (the CSP
  // allows no blob: workers), its PBKDF2 worker, and the Russian texts.
  "altcha": ["altcha/dist/external/altcha.js", "altcha/dist/external/altcha.css",
             "altcha/dist/workers/pbkdf2.js", "altcha/dist/i18n/ru.js"],
  "emoji-picker-element": ["emoji-picker-element"],
  // The picker fetches its data from a CDN unless told otherwise: we serve it ourselves.
  "emoji-data/en": ["emoji-picker-element-data/en/emojibase/data.json"],
  "emoji-data/ru": ["emoji-picker-element-data/ru/emojibase/data.json"],
};

rmSync(vendor, { recursive: true, force: true });
for (const [folder, sources] of Object.entries(COPIES)) {
  for (const source of sources) {
    const from = join(modules, source);
    if (!existsSync(from)) {
      console.error(`missing ${from}: run npm ci first`);
      process.exit(1);
    }
    const name = source.split("/").pop();
    const to = join(vendor, folder, name);
    mkdirSync(dirname(to), { recursive: true });
    cpSync(from, to, { recursive: true });
  }
}
console.log(`front-end libraries copied to ${vendor}`);
