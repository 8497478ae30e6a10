// The page of `verticals serve`: pick a model, ask it, correct it. Plain JavaScript, no dependencies, no
// network beyond this server. Every text from the server or the user is inserted with textContent, never as
// markup. URLs are relative, so the page also works behind a proxy that serves the API under a prefix.
"use strict";
(() => {
  const KEY = "verticals.apiKey";
  const $ = (id) => document.getElementById(id);
  let models = [];
  let current = null;
  let answers = 0; // numbers the answers' ids, so each feedback form's controls have unique ids

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (name === "class") node.className = value;
      else if (name === "text") node.textContent = value;
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children) if (child !== null && child !== undefined) node.append(child);
    return node;
  }

  const pct = (x) => (100 * x).toFixed(x >= 0.995 || x < 0.001 ? 0 : 1) + "%";

  function setStatus(message, kind) {
    const status = $("status");
    status.textContent = message || "";
    status.className = "status" + (kind ? " " + kind : "");
  }

  // ---- the API ----------------------------------------------------------------------------------------
  async function call(method, path, body) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const key = sessionStorage.getItem(KEY);
    if (key) headers.Authorization = "Bearer " + key;
    let response;
    try {
      response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (err) {
      return { status: 0, data: { detail: "cannot reach the server (" + err.message + ")" } };
    }
    let data;
    try { data = await response.json(); } catch (err) { data = { detail: response.statusText || "no answer" }; }
    return { status: response.status, data };
  }

  function detail(data) {
    const d = data && data.detail;
    return typeof d === "string" ? d : JSON.stringify(d);
  }

  function needKey(data) {
    setStatus("This server needs an API key: type it into the API key field and press Enter. (" + detail(data) + ")",
      "error");
    $("api-key").focus();
  }

  function modelUrl(name, verb) {
    return "v1/models/" + encodeURIComponent(name) + "/" + verb;
  }

  // ---- models -------------------------------------------------------------------------------------------
  async function loadModels() {
    setStatus("Loading the models…");
    const { status, data } = await call("GET", "v1/models");
    if (status === 401) { $("model-section").hidden = true; needKey(data); return; }
    if (status !== 200) { setStatus("Cannot list the models: " + detail(data), "error"); return; }
    models = data;
    const picker = $("model");
    picker.replaceChildren(...models.map((m) => el("option", { value: m.name, text: m.name })));
    const wanted = new URLSearchParams(location.hash.slice(1)).get("model");
    picker.value = models.some((m) => m.name === wanted) ? wanted : models[0].name;
    $("model-section").hidden = false;
    setStatus("");
    selectModel();
  }

  function selectModel() {
    current = models.find((m) => m.name === $("model").value);
    history.replaceState(null, "", "#model=" + encodeURIComponent(current.name));
    document.title = current.name + " – Verticals";
    const types = entityTypes(current);
    const classes = types.length ? types.length + " entity types: " + types.join(", ")
      : current.labels.length ? current.labels.length + " labels" : "";
    $("model-info").textContent = [current.task, current.pack ? "pack " + current.pack + " " + (current.pack_version || "")
      : null, "engine " + current.engine, classes].filter(Boolean).join(" · ");
    buildInput(current);
    $("results").replaceChildren();
    $("results-section").hidden = true;
  }

  // BIO tags (B-Disease, I-Disease, O) -> entity types (Disease)
  function entityTypes(model) {
    const tags = model.labels.filter((l) => /^[BI]-/.test(l));
    return tags.length ? [...new Set(tags.map((t) => t.slice(2)))] : [];
  }

  // ---- input --------------------------------------------------------------------------------------------
  function buildInput(model) {
    const text = model.text_input || !model.example;
    $("text-input").hidden = !text;
    $("record-input").hidden = text;
    if (text) {
      const sample = model.example ? Object.values(model.example)[0] : null;
      $("query").placeholder = sample ? "e.g. " + (Array.isArray(sample) ? sample.join(" ") : sample) : "";
      return;
    }
    const fields = Object.entries(model.example).map(([name, value], i) => {
      const id = "field-" + i;
      const kind = typeof value === "number" ? "number" : typeof value === "boolean" ? "boolean"
        : Array.isArray(value) ? "list" : "text";
      const input = kind === "boolean" ? el("input", { id, type: "checkbox", checked: value })
        : el("input", { id, type: kind === "number" ? "number" : "text", step: kind === "number" ? "any" : null,
          inputmode: kind === "number" ? "decimal" : null, value: kind === "list" ? value.join(", ") : value });
      input.dataset.name = name;
      input.dataset.kind = kind;
      const hint = kind === "list" ? el("span", { class: "hint", text: " (comma-separated)" }) : null;
      const wide = kind === "text" && String(value).length > 24; // free text (a merchant's name), not a code
      return el("div", { class: wide ? "field wide" : "field" }, el("label", { for: id, text: name }, hint), input);
    });
    $("fields").replaceChildren(...fields);
  }

  function readRecord() {
    const record = {};
    for (const input of $("fields").querySelectorAll("input")) {
      const { name, kind } = input.dataset;
      const raw = input.value.trim();
      if (kind === "boolean") record[name] = input.checked;
      else if (kind === "number") record[name] = raw === "" || isNaN(Number(raw)) ? raw : Number(raw);
      else if (kind === "list") record[name] = raw ? raw.split(",").map((s) => s.trim()).filter(Boolean) : [];
      else record[name] = input.value;
    }
    return record;
  }

  async function predict(event) {
    event.preventDefault();
    const model = current;
    let inputs;
    if (!$("text-input").hidden) {
      inputs = $("query").value.split(/\r?\n/).map((s) => s.trim()).filter(Boolean);
      if (!inputs.length) { setStatus("Type a text first.", "error"); $("query").focus(); return; }
    } else {
      inputs = [readRecord()];
    }
    $("send").disabled = true;
    setStatus("Asking " + model.name + "…");
    const { status, data } = await call("POST", modelUrl(model.name, "predict"), { inputs });
    $("send").disabled = false;
    if (status === 401) { needKey(data); return; }
    if (status !== 200) { setStatus("The server refused the request (" + status + "): " + detail(data), "error"); return; }
    const items = data.results.map((result) => renderResult(model, inputs[result.index], result));
    $("results").replaceChildren(...items);
    $("results-section").hidden = false;
    const failed = data.results.filter((r) => !r.ok).length;
    setStatus(data.results.length + (data.results.length === 1 ? " answer" : " answers")
      + (failed ? ", " + failed + " refused" : "") + ".");
  }

  // ---- answers ------------------------------------------------------------------------------------------
  function describeInput(input) {
    if (typeof input === "string") return input;
    return Object.entries(input).map(([k, v]) => k + ": " + (Array.isArray(v) ? v.join(" ") : v)).join(" · ");
  }

  function renderResult(model, input, result) {
    const n = ++answers;
    const item = el("li", { class: "result", "aria-labelledby": "q-" + n });
    item.append(el("p", { class: "query", id: "q-" + n, text: describeInput(input) }));
    if (!result.ok) {
      const e = result.error || {};
      item.append(el("p", { class: "refused", text: "Refused (" + e.status + "): " + e.message
        + (e.field ? " [field " + e.field + "]" : "") }));
      return item;
    }
    const p = result.prediction;
    const kind = p.entities ? "ner" : p.intent !== undefined ? "intent" : p.items ? "items"
      : p.threshold !== undefined ? "fraud" : p.label !== undefined ? "label" : "other";
    item.append(VIEWS[kind](model, p, input));
    item.append(feedback(model, kind, p, input, result, n));
    return item;
  }

  function confidence(label, score) {
    return el("span", { class: "confidence" }, el("meter", { min: 0, max: 1, value: score, "aria-label": label }),
      " " + pct(score));
  }

  function otherScores(scores, shown, title = "next: ") {
    const rest = Object.entries(scores || {}).filter(([l]) => l !== shown).sort((a, b) => b[1] - a[1]).slice(0, 3);
    return rest.length ? el("p", { class: "minor", text: title + rest.map(([l, s]) => l + " " + pct(s)).join(", ") })
      : null;
  }

  const VIEWS = {
    label(model, p) {
      return el("div", { class: "answer" },
        el("p", {}, el("span", { class: "label", text: p.label }), " ", confidence("confidence", p.score)),
        otherScores(p.scores, p.label));
    },
    intent(model, p) {
      const head = el("p", {}, p.out_of_scope ? el("span", { class: "badge oos", text: "Out of scope" })
        : el("span", { class: "label", text: p.intent }), " ", confidence("classifier confidence", p.confidence),
      p.fallback && !p.out_of_scope ? el("span", { class: "badge", text: "by retrieval" }) : null);
      const answer = p.answer ? el("blockquote", { class: "faq" }, el("span", { class: "minor", text: "FAQ answer" }),
        el("p", { text: p.answer })) : null;
      const matches = p.matches && p.matches.length ? el("details", { class: "matches" },
        el("summary", { text: "Closest matches (" + p.matches.length + ")" }),
        el("ol", {}, ...p.matches.map((m) => el("li", {}, el("span", { text: m.text }), el("span", { class: "minor",
          text: " · " + (m.intent || m.source) + " · similarity " + m.similarity.toFixed(2) }))))) : null;
      return el("div", { class: "answer" }, head, answer, matches, el("p", { class: "minor", text: p.reason }),
        otherScores(p.scores, p.intent, p.out_of_scope ? "classifier's nearest intents: " : "next: "));
    },
    ner(model, p, input) {
      const { text, spans } = entitySpans(p, input);
      const types = entityTypes(model);
      const shown = el("p", { class: "ner-text" });
      let at = 0;
      for (const s of spans) {
        if (s.start < at) continue; // overlapping spans cannot both be marked; the list below has them all
        shown.append(text.slice(at, s.start));
        const colour = "t" + (Math.max(0, types.indexOf(s.type)) % 6);
        shown.append(el("mark", { class: "entity " + colour }, text.slice(s.start, s.end),
          el("span", { class: "etype", text: s.type })));
        at = s.end;
      }
      shown.append(text.slice(at));
      const list = spans.length ? null : el("p", { class: "minor", text: "No entities found." });
      return el("div", { class: "answer" }, shown, list);
    },
    items(model, p) {
      if (!p.items.length) return el("p", { class: "minor", text: "No items to recommend." });
      return el("ol", { class: "items" }, ...p.items.map((it) => el("li", {},
        el("strong", { text: it.item }), it.text ? " " + it.text : "", " ",
        el("span", { class: "minor", text: "score " + it.score.toFixed(3) }),
        it.cold ? el("span", { class: "badge", text: "new item" }) : null)));
    },
    fraud(model, p) {
      return el("div", { class: "answer" },
        el("p", {}, el("span", { class: p.label ? "badge flag" : "badge ok", text: p.label ? "Flagged as fraud"
          : "Not flagged" }), " fraud score ", confidence("fraud score", p.score)),
        el("p", { class: "minor", text: "flagged at " + pct(p.threshold) + " or more (cost-minimising threshold)" }));
    },
    other(model, p) {
      return el("pre", { class: "answer", text: JSON.stringify(p, null, 2) });
    },
  };

  // Entities as character spans of the text shown: medical.ner gives offsets into the input text; the
  // generic token tagger gives token indices, shown over its tokens joined by spaces.
  // Also each token's [start, end) in that text (medical.ner's words appear in order in its input).
  function entitySpans(p, input) {
    const given = typeof input === "string" ? input : input.text;
    const chars = typeof given === "string" && p.entities.every((e) => e.token_start !== undefined);
    const text = chars ? given : p.tokens.join(" ");
    const tokens = [];
    let at = 0;
    for (const t of p.tokens) {
      const start = chars ? Math.max(at, text.indexOf(t, at)) : at;
      tokens.push([start, start + t.length]);
      at = start + t.length + (chars ? 0 : 1);
    }
    const spans = chars ? p.entities.map((e) => ({ ...e }))
      : p.entities.map((e) => ({ ...e, start: tokens[e.start][0], end: tokens[e.end - 1][1] }));
    return { text, spans, tokens };
  }

  // ---- corrections --------------------------------------------------------------------------------------
  function feedback(model, kind, p, input, result, n) {
    const panelId = "fix-" + n;
    const toggle = el("button", { type: "button", class: "linkish", "aria-expanded": "false", "aria-controls": panelId,
      text: kind === "ner" ? "Wrong? Fix the entities" : kind === "items" ? "Wrong? Name the right item"
        : "Wrong? Pick the right label" });
    const panel = el("form", { id: panelId, class: "fix", hidden: true });
    const note = el("p", { class: "minor note", role: "status", "aria-live": "polite" });
    toggle.addEventListener("click", () => {
      const open = panel.hidden;
      panel.hidden = !open;
      toggle.setAttribute("aria-expanded", String(open));
      if (open) panel.querySelector("select, input").focus();
    });
    let correction;
    if (kind === "ner") correction = entityEditor(model, p, input, panel, n);
    else if (kind === "items") {
      const field = el("input", { id: "fix-item-" + n, type: "text" });
      panel.append(el("label", { for: field.id, text: "The item that was right (its id)" }), field);
      correction = () => (field.value.trim() ? { label: field.value.trim() } : null);
    } else {
      const predicted = kind === "intent" ? p.intent : String(p.label);
      const names = kind === "fraud" ? { 0: "0 – legitimate", 1: "1 – fraud" } : {};
      const labels = model.feedback_labels && model.feedback_labels.length ? model.feedback_labels : model.labels;
      // No label is preselected: a correction is what the person chose, never a default sent by an Enter.
      const choose = el("select", { id: "fix-label-" + n },
        el("option", { value: "", text: "choose the right label", selected: true }),
        ...labels.map((l) => el("option", { value: l, text: (names[l] || l) + (l === predicted ? " (the model's answer)" : "") })));
      panel.append(el("label", { for: choose.id, text: "The right label" }), choose);
      correction = () => (choose.value ? { label: choose.value } : null);
    }
    panel.append(el("button", { type: "submit", text: "Send correction" }), note);
    panel.addEventListener("submit", async (event) => {
      event.preventDefault();
      const fix = correction();
      if (!fix) { note.textContent = "Fill in the correction first."; return; }
      const body = { prediction_id: result.prediction_id ?? null, input, ...fix };
      note.textContent = "Sending…";
      const { status, data } = await call("POST", modelUrl(model.name, "feedback"), body);
      if (status >= 200 && status < 300) {
        note.textContent = "Thank you: correction saved" + (data && data.feedback_id !== undefined
          ? " (#" + data.feedback_id + ")" : "") + ".";
        note.className = "minor note done";
      } else if (status === 401) {
        note.textContent = "Not saved: this server needs an API key (field at the top).";
      } else if (status === 404 || status === 503 || status === 405) {
        note.textContent = "Not saved: this server does not collect corrections (" + status + ": " + detail(data) + ").";
      } else {
        note.textContent = "Not saved (" + status + "): " + detail(data);
      }
    });
    return el("div", { class: "feedback" }, toggle, panel);
  }

  // NER corrections: each found entity keeps, changes or loses its type; an entity the model missed is
  // added by typing its words (the first occurrence in the text not already marked is taken). The
  // feedback route takes one BIO tag per token of the prediction's tokens.
  function entityEditor(model, p, input, panel, n) {
    const { text, spans, tokens } = entitySpans(p, input);
    const types = entityTypes(model);
    const typeOptions = (selected, none) => [...(none ? [el("option", { value: "", text: none })] : []),
      ...types.map((t) => el("option", { value: t, text: t, selected: t === selected }))];
    const rows = el("ul", { class: "entities" });
    const entities = spans.map((s) => ({ start: s.start, end: s.end, type: s.type }));
    function addRow(entity) {
      const id = "fix-ent-" + n + "-" + rows.children.length;
      const choose = el("select", { id }, ...typeOptions(entity.type, "not an entity"));
      choose.addEventListener("change", () => { entity.type = choose.value; });
      rows.append(el("li", {}, el("label", { for: id, text: "“" + text.slice(entity.start, entity.end) + "”" }),
        choose));
    }
    entities.forEach(addRow);
    const words = el("input", { id: "fix-words-" + n, type: "text" });
    const type = el("select", { id: "fix-type-" + n, "aria-label": "type of the missed entity" }, ...typeOptions(types[0]));
    const add = el("button", { type: "button", text: "Add" });
    const addNote = el("span", { class: "minor", role: "status" });
    add.addEventListener("click", () => {
      const wanted = words.value.trim();
      let from = 0, start = -1;
      while ((start = text.indexOf(wanted, from)) >= 0
        && entities.some((e) => e.type && start < e.end && start + wanted.length > e.start)) from = start + 1;
      if (!wanted || start < 0) { addNote.textContent = "“" + wanted + "” is not in the text (or already marked)."; return; }
      const entity = { start, end: start + wanted.length, type: type.value };
      entities.push(entity);
      addRow(entity);
      words.value = "";
      addNote.textContent = "Added.";
    });
    words.addEventListener("keydown", (event) => {
      if (event.key === "Enter") { event.preventDefault(); add.click(); }
    });
    panel.append(rows, el("div", { class: "add" }, el("label", { for: words.id, text: "Missed entity (its words)" }),
      el("span", { class: "row" }, words, type, add), addNote));
    return () => {
      const tags = tokens.map(() => "O");
      for (const e of entities.filter((e) => e.type).sort((a, b) => a.start - b.start)) {
        let first = true; // every token the entity's characters touch is inside it
        tokens.forEach(([s, end], i) => {
          if (s < e.end && end > e.start && tags[i] === "O") { tags[i] = (first ? "B-" : "I-") + e.type; first = false; }
        });
      }
      return { tags };
    };
  }

  // ---- wiring -------------------------------------------------------------------------------------------
  document.addEventListener("DOMContentLoaded", () => {
    $("api-key").value = sessionStorage.getItem(KEY) || "";
    $("key-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const key = $("api-key").value.trim();
      if (key) sessionStorage.setItem(KEY, key); else sessionStorage.removeItem(KEY);
      loadModels();
    });
    $("model").addEventListener("change", selectModel);
    window.addEventListener("hashchange", () => { // a link to another model's page (#model=NAME)
      const wanted = new URLSearchParams(location.hash.slice(1)).get("model");
      if (models.some((m) => m.name === wanted) && wanted !== current.name) { $("model").value = wanted; selectModel(); }
    });
    $("ask").addEventListener("submit", predict);
    $("query").addEventListener("input", () => { // grow with pasted lines, up to about 12 of them
      const box = $("query");
      box.style.height = "auto";
      box.style.height = Math.min(box.scrollHeight + 2, 18 * 16) + "px";
    });
    $("query").addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        $("ask").requestSubmit();
      }
    });
    loadModels();
  });
})();
