// The message editor: GrapesJS (visual) and CodeMirror (HTML) on the same message, the text
// version, images, external data, preview in a sandboxed iframe, test sends, emoji subject.
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("editor-data").textContent);
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const $ = (id) => document.getElementById(id);
  const L = data.labels;

  let mode = data.editor === "visual" ? "visual" : "code";
  let dirty = false;
  let gjs = null;
  let cm = null;

  // --- Jinja tags and the visual editor ----------------------------------------------------
  // Block tags ({% if %} between table rows) would be moved by the browser's HTML parser, so
  // they travel through GrapesJS as comments; entities GrapesJS adds inside tags are undone.
  function encode(text) { return btoa(unescape(encodeURIComponent(text))); }
  function decode(text) { return decodeURIComponent(escape(atob(text))); }
  function protectJinja(html) {
    return html.replace(/\{%[\s\S]*?%\}|\{#[\s\S]*?#\}/g, (m) => "<!--ak:" + encode(m) + "-->");
  }
  function unescapeEntities(text) {
    return text.replace(/&quot;/g, '"').replace(/&#0?39;/g, "'").replace(/&lt;/g, "<")
      .replace(/&gt;/g, ">").replace(/&amp;/g, "&");
  }
  function unprotectJinja(html) {
    html = html.replace(/(?:<|&lt;)!--ak:([A-Za-z0-9+/=]+)--(?:>|&gt;)/g, (_m, b64) => decode(b64));
    return html.replace(/\{\{[\s\S]*?\}\}|\{%[\s\S]*?%\}/g, unescapeEntities);
  }

  // --- the document around the body --------------------------------------------------------
  // GrapesJS edits the body and the CSS only: the doctype, the <html> attributes (lang, VML
  // namespaces), the <head> (title, meta, links; its <style> blocks do go into GrapesJS's
  // CSS) and the <body> attributes are kept here and written back around its output.
  const DEFAULT_HEAD = '<meta charset="utf-8">\n' +
    '<meta name="viewport" content="width=device-width, initial-scale=1">';
  const STYLE_BLOCK = /<style\b[^>]*>[\s\S]*?<\/style>/gi;
  let shell = splitShell(data.html || "");

  function splitShell(html) {
    const doctype = html.match(/^\s*(<!doctype[^>]*>)/i);
    const root = html.match(/<html\b([^>]*)>/i);
    const head = html.match(/<head\b[^>]*>([\s\S]*?)<\/head>/i);
    const body = html.match(/<body\b([^>]*)>/i);
    let headInner = head ? head[1].replace(STYLE_BLOCK, "").replace(/\n{2,}/g, "\n").trim() : "";
    if (!/<meta\b[^>]*charset/i.test(headInner)) {
      headInner = (headInner ? DEFAULT_HEAD.split("\n")[0] + "\n" + headInner : DEFAULT_HEAD);
    }
    return {
      doctype: doctype ? doctype[1] : "<!DOCTYPE html>",
      htmlAttrs: root ? root[1] : "",
      head: headInner,
      bodyAttrs: body ? body[1] : "",
    };
  }

  // What GrapesJS is given: the styles of the head and the inside of the body.
  function bodyForVisual(html) {
    const styles = (html.match(/<head\b[^>]*>([\s\S]*?)<\/head>/i) || ["", ""])[1].match(STYLE_BLOCK) || [];
    const body = html.match(/<body\b[^>]*>([\s\S]*)<\/body>/i);
    const inner = body ? body[1] : html.replace(/^\s*<!doctype[^>]*>/i, "")
      .replace(/<head\b[^>]*>[\s\S]*?<\/head>/i, "").replace(/<\/?html\b[^>]*>/gi, "");
    return styles.join("\n") + inner;
  }

  function visualHtml() {
    let body = gjs.getHtml();
    if (!/^\s*<body/i.test(body)) body = "<body>" + body + "</body>";
    // Our <body> attributes, unless the visual editor gave the body its own.
    if (shell.bodyAttrs.trim()) body = body.replace(/^\s*<body\s*>/i, "<body" + shell.bodyAttrs + ">");
    const css = gjs.getCss({ avoidProtected: true });
    return unprotectJinja(shell.doctype + "\n<html" + shell.htmlAttrs + ">\n<head>\n" + shell.head +
      "\n<style>\n" + css + "\n</style>\n</head>\n" + body + "\n</html>\n");
  }

  function loadVisual(html) {
    shell = splitShell(html);
    gjs.setStyle("");
    gjs.setComponents(protectJinja(bodyForVisual(html)));
  }

  function currentHtml() { return mode === "visual" ? visualHtml() : cm.getValue(); }

  function initVisual() {
    const preset = window["grapesjs-preset-newsletter"];
    const postcss = window["grapesjs-parser-postcss"];
    gjs = grapesjs.init({
      container: "#gjs",
      height: "680px",
      fromElement: false,
      storageManager: false,
      telemetry: false,          // no calls home from an on-premise product
      cssIcons: "",              // no icon font from a CDN (the CSP would refuse it anyway)
      plugins: [preset.default || preset, postcss.default || postcss],
      pluginsOpts: {},
      assetManager: {
        upload: data.urls.upload,
        uploadName: "file",
        multiUpload: false,
        headers: { "X-CSRFToken": csrf, "Accept": "application/json" },
        credentials: "same-origin",
        assets: data.media,
        autoAdd: true,
      },
      // A click on a block adds it (to the selected block, or at the end): dragging is not
      // the only way, which also helps keyboard and touch users.
      blockManager: { appendOnClick: true },
      parser: { optionsHtml: { allowScripts: false, allowUnsafeAttr: false } },
    });
    if (data.editor === "visual" && data.editor_state) {
      try { gjs.loadProjectData(JSON.parse(data.editor_state)); }
      catch (e) { loadVisual(data.html); }
    } else {
      loadVisual(data.html);
    }
    gjs.on("update", () => markDirty());
  }

  function initCode() {
    // Tab and Shift+Tab leave the editor like any field (no keyboard trap); indenting is
    // Ctrl+] / Ctrl+[ (CodeMirror's own keys, Cmd on a Mac), which the pane's hint states.
    cm = CodeMirror.fromTextArea($("code"), {
      mode: "htmlmixed", lineNumbers: true, lineWrapping: true, readOnly: !data.can_write,
      extraKeys: { Tab: false, "Shift-Tab": false },
    });
    const input = cm.getInputField();
    input.setAttribute("aria-label", $("code").getAttribute("aria-label"));
    input.setAttribute("aria-describedby", "code-keys");
    cm.setValue(data.html);
    let timer = null;
    cm.on("change", () => {
      markDirty();
      // Problems (syntax errors, unknown variables) follow the typing, with their lines.
      clearTimeout(timer);
      timer = setTimeout(checkNow, 1200);
    });
  }

  async function checkNow() {
    if (mode !== "code") return;
    const follows = $("text-follows").checked;
    const response = await post(data.urls.check, {
      subject: $("subject").value, preheader: $("preheader").value, html: cm.getValue(),
      text: follows ? null : $("text").value, text_follows_html: follows,
    });
    if (response.ok) showProblems((await response.json()).problems);
  }

  // --- tabs and mode switching ---------------------------------------------------------------
  function showPane(name) {
    if ((name === "visual" || name === "code") && name !== mode) {
      if (name === "code") { cm.setValue(visualHtml()); }
      else { loadVisual(cm.getValue()); }
      mode = name;
    }
    document.querySelectorAll(".pane").forEach((pane) => { pane.hidden = pane.id !== "pane-" + name; });
    document.querySelectorAll("#editor-tabs [role=tab]").forEach((tab) => {
      const selected = tab.dataset.pane === name;
      tab.setAttribute("aria-selected", String(selected));
      tab.tabIndex = selected ? 0 : -1;
    });
    if (name === "code") cm.refresh();
    if (name === "visual") gjs.refresh();
    if (name === "text" && $("text-follows").checked) generateText();
  }

  // --- text version --------------------------------------------------------------------------
  // A generated text arrives later than it was asked for: one asked for before the latest
  // request, or before the person typed into the text, must not overwrite what is there now.
  let textRequest = 0;
  async function generateText() {
    const ticket = ++textRequest;
    const response = await post(data.urls.text, { html: currentHtml() });
    if (!response.ok) return;
    const text = (await response.json()).text;
    if (ticket === textRequest) $("text").value = text;
  }

  // --- saving --------------------------------------------------------------------------------
  function markDirty() {
    dirty = true;
    $("save-status").textContent = L.unsaved;
  }

  function dataSource() {
    const kind = $("data-kind").value;
    if (kind === "document") return { kind, document: $("data-document").value };
    if (kind === "url") return { kind, url: $("data-url").value };
    if (kind === "per_subscriber") return { kind, url_template: $("data-url-template").value };
    return { kind: "none" };
  }

  function content() {
    const follows = $("text-follows").checked;
    return {
      subject: $("subject").value,
      preheader: $("preheader").value,
      html: currentHtml(),
      text: follows ? null : $("text").value,
      text_follows_html: follows,
      editor: mode,
      editor_state: mode === "visual" ? JSON.stringify(gjs.getProjectData()) : null,
      data_source: dataSource(),
    };
  }

  function post(url, body) {
    return fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf, "Accept": "application/json" },
      body: JSON.stringify(body),
    });
  }

  // The answer of a save, or why there is none: a failed save must never look like "Saving…"
  // forever, since the person would leave the page and lose the work.
  async function saveAnswer(payload) {
    let response;
    try {
      response = await post(data.urls.save, payload);
    } catch (e) {
      return { error: L.not_saved.replace("{status}", e.message) };
    }
    if (response.redirected && new URL(response.url).pathname.endsWith("/login")) {
      return { error: L.signed_out };
    }
    let body = null;
    try { body = await response.json(); } catch (e) { body = null; }
    if (!response.ok || body === null) {
      return { error: (body && body.error) || L.not_saved.replace("{status}", response.status) };
    }
    return body;
  }

  async function save() {
    $("save-status").textContent = L.saving;
    const body = await saveAnswer(Object.assign({ name: $("message-name").value }, content()));
    if (body.error) {
      $("save-status").textContent = body.error;
      return;
    }
    dirty = false;
    data.version = body.version;
    $("save-status").textContent = L.saved.replace("{n}", body.version);
    $("version-label").textContent = "v" + body.version;
    if ($("text-follows").checked) $("text").value = body.text;
    showProblems(body.problems);
  }

  // --- problems (line numbers) ---------------------------------------------------------------
  let marked = [];
  function showProblems(problems) {
    const list = $("problems");
    list.innerHTML = "";
    marked.forEach((line) => cm.removeLineClass(line, "background", "cm-problem"));
    marked = [];
    (problems || []).forEach((p) => {
      const item = document.createElement("li");
      item.textContent = p.part + (p.line ? " " + L.line + " " + p.line : "") + ": " + p.message;
      list.appendChild(item);
      if (p.part === "html" && p.line) {
        const handle = cm.addLineClass(p.line - 1, "background", "cm-problem");
        if (handle) marked.push(handle);
      }
    });
  }

  // --- preview and test ----------------------------------------------------------------------
  async function preview() {
    const email = $("preview-email").value.trim();
    const body = Object.assign(content(), email ? { email } : {});
    const response = await post(data.urls.preview, body);
    const result = await response.json();
    $("preview-error").hidden = response.ok;
    if (!response.ok) {
      $("preview-error").textContent = result.error || response.statusText;
      if (result.problem) showProblems([result.problem]);
      return;
    }
    showProblems([]);
    $("preview-subject").textContent = result.subject;
    $("preview-frame").srcdoc = result.html;     // sandbox="" : no scripts, no same origin
    $("preview-text").textContent = result.text;
  }

  async function sendTest() {
    const response = await post(data.urls.send_test, {
      recipients: $("test-recipients").value, from_email: $("test-from").value,
    });
    const body = await response.json();
    const list = $("test-results");
    list.innerHTML = "";
    const results = response.ok ? body.results : [{ email: "", sent: false, error: body.error }];
    results.forEach((r) => {
      const item = document.createElement("li");
      item.textContent = r.email + " — " + (r.sent ? L.sent : L.failed + ": " + r.error);
      list.appendChild(item);
    });
  }

  // --- images --------------------------------------------------------------------------------
  function insertImage(url, name, width) {
    const w = width && Number(width) < 600 ? Number(width) : 600;
    if (mode === "visual") {
      const image = { type: "image", src: url, attributes: { alt: name, width: String(w) },
                      style: { "max-width": "100%", height: "auto" } };
      const selected = gjs.getSelected();
      const view = selected && selected.getView && selected.getView();
      if (view && view.disableEditing) view.disableEditing();   // keep text being typed
      if (!selected || selected === gjs.getWrapper()) {
        gjs.getWrapper().append(image);
      } else if (selected.get("type") === "text" || !selected.get("droppable")) {
        selected.parent().append(image, { at: selected.index() + 1 });   // after it
      } else {
        selected.append(image);
      }
    } else {
      const tag = '<img src="' + url + '" alt="' + name.replace(/"/g, "&quot;") + '" width="' + w +
                  '" style="max-width:100%;height:auto;">';
      cm.replaceSelection(tag);
    }
    markDirty();
  }

  function addPick(url, name, width) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "media-pick";
    button.dataset.url = url;
    button.dataset.name = name;
    button.dataset.width = width || "";
    const img = document.createElement("img");
    img.src = url;
    img.alt = name;
    button.appendChild(img);
    $("image-list").prepend(button);
  }

  async function upload() {
    const file = $("image-file").files[0];
    if (!file) return;
    const form = new FormData();
    form.append("file", file);
    const response = await fetch(data.urls.upload, {
      method: "POST", credentials: "same-origin", body: form,
      headers: { "X-CSRFToken": csrf, "Accept": "application/json" },
    });
    const body = await response.json();
    if (!response.ok) { alert(body.error || response.statusText); return; }
    body.data.forEach((asset) => {
      addPick(asset.src, asset.name, asset.width);
      gjs.AssetManager.add(asset.src);
    });
  }

  // --- emoji in the subject ------------------------------------------------------------------
  function initEmoji() {
    const button = $("emoji-button");
    const popup = $("emoji-popup");
    button.addEventListener("click", () => {
      popup.hidden = !popup.hidden;
      button.setAttribute("aria-expanded", String(!popup.hidden));
    });
    popup.querySelector("emoji-picker").addEventListener("emoji-click", (event) => {
      const input = $("subject");
      const start = input.selectionStart ?? input.value.length;
      const end = input.selectionEnd ?? start;
      input.setRangeText(event.detail.unicode, start, end, "end");
      input.focus();
      popup.hidden = true;
      button.setAttribute("aria-expanded", "false");
      markDirty();
    });
  }

  // --- wiring --------------------------------------------------------------------------------
  function initData() {
    const source = data.data_source || { kind: "none" };
    $("data-kind").value = source.kind || "none";
    $("data-document").value = source.document ? JSON.stringify(source.document, null, 2) : "";
    $("data-url").value = source.url || "";
    $("data-url-template").value = source.url_template || "";
    const sync = () => document.querySelectorAll("#pane-data [data-for]").forEach((el) => {
      el.hidden = el.dataset.for !== $("data-kind").value;
    });
    $("data-kind").addEventListener("change", () => { sync(); markDirty(); });
    sync();
  }

  initVisual();
  initCode();
  initEmoji();
  initData();
  $("text").value = data.text;
  $("text-follows").checked = data.text_follows_html;
  $("text").readOnly = !data.can_write;
  $("text").addEventListener("input", () => {
    textRequest++;                       // a generation still on its way is out of date
    $("text-follows").checked = false;
    markDirty();
  });
  $("text-follows").addEventListener("change", () => {
    markDirty();
    if ($("text-follows").checked) generateText();
  });
  $("generate-text").addEventListener("click", () => { generateText(); markDirty(); });
  ["subject", "preheader", "message-name"].forEach((id) => $(id).addEventListener("input", markDirty));
  const tabs = Array.from(document.querySelectorAll("#editor-tabs [role=tab]"));
  tabs.forEach((tab, index) => {
    tab.addEventListener("click", () => showPane(tab.dataset.pane));
    tab.addEventListener("keydown", (event) => {
      const to = { ArrowRight: index + 1, ArrowLeft: index - 1, Home: 0, End: tabs.length - 1 }[event.key];
      if (to === undefined) return;
      event.preventDefault();
      tabs[(to + tabs.length) % tabs.length].focus();
    });
  });
  if ($("save")) $("save").addEventListener("click", save);
  $("preview-run").addEventListener("click", preview);
  if ($("send-test")) $("send-test").addEventListener("click", sendTest);
  $("image-upload").addEventListener("click", upload);
  $("image-list").addEventListener("click", (event) => {
    const pick = event.target.closest(".media-pick");
    if (pick) insertImage(pick.dataset.url, pick.dataset.name, pick.dataset.width);
  });
  document.querySelectorAll("#pane-preview .width").forEach((button) => button.addEventListener("click", () => {
    $("preview-frame").style.width = button.dataset.width + "px";
    document.querySelectorAll("#pane-preview .width").forEach((b) => b.setAttribute("aria-pressed", String(b === button)));
  }));
  document.querySelectorAll("#pane-preview .view").forEach((button) => button.addEventListener("click", () => {
    const text = button.dataset.view === "text";
    $("preview-frame").hidden = text;
    $("preview-text").hidden = !text;
    document.querySelectorAll("#pane-preview .view").forEach((b) => b.setAttribute("aria-pressed", String(b === button)));
  }));
  window.addEventListener("beforeunload", (event) => { if (dirty) event.preventDefault(); });
  showPane(mode);
  showProblems(data.problems);
  dirty = false;
  $("save-status").textContent = "";
  window.altkraftEditor = { gjs: () => gjs, cm: () => cm, mode: () => mode, currentHtml };
})();
