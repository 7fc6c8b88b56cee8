// dms dashboard: hand-written, no dependencies. Reads the REST API with the
// session cookie; every request that changes state carries X-DMS-CSRF.
"use strict";
(function () {
  const $ = (sel) => document.querySelector(sel);
  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") e.className = v; else e.setAttribute(k, v);
    }
    for (const k of kids) e.append(k instanceof Node ? k : String(k ?? ""));
    return e;
  }
  const short = (s) => (!s ? "" : s.startsWith("did:") ? "did:…" + s.slice(-8) : s.length > 12 ? s.slice(0, 12) : s);
  const bytes = (n) => {
    if (!n) return "0";
    const u = ["B", "KiB", "MiB", "GiB", "TiB"]; let i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (Math.round(n * 10) / 10) + " " + u[i];
  };
  const when = (t) => (t && !t.startsWith("0001") ? new Date(t).toLocaleString() : "");
  function status(msg, bad) {
    const s = $("#status"); if (!s) return;
    s.textContent = msg || ""; s.classList.toggle("error", !!bad);
  }
  class HTTPError extends Error { constructor(st, msg, body) { super(msg); this.status = st; this.body = body; } }
  async function api(method, path, body) {
    const opt = { method, credentials: "same-origin", headers: { "Accept": "application/json" } };
    if (method !== "GET") opt.headers["X-DMS-CSRF"] = "1";
    if (body !== undefined) { opt.headers["Content-Type"] = "application/json"; opt.body = JSON.stringify(body); }
    const r = await fetch(path, opt);
    if (r.status === 401) { location.href = "/ui/login"; throw new HTTPError(401, "logged out"); }
    let data = null;
    try { data = await r.json(); } catch (e) { /* not JSON */ }
    if (!r.ok) throw new HTTPError(r.status, (data && data.error && data.error.message) || r.statusText, data);
    return data;
  }
  function fill(tbody, rows) {
    tbody.replaceChildren(...rows);
  }
  function facts(dl, pairs) {
    dl.replaceChildren();
    for (const [k, v] of pairs) {
      if (v === undefined || v === null || v === "") continue;
      dl.append(el("dt", {}, k), el("dd", {}, v));
    }
  }
  function stateBadge(s) { return el("span", { class: "state s-" + s }, s); }

  // Overview.
  async function overview() {
    try {
      const [node, res, peers] = await Promise.all([
        api("GET", "/api/v1/node"),
        api("GET", "/api/v1/resources").catch(() => null),
        api("GET", "/api/v1/peers").catch(() => []),
      ]);
      let providers = [];
      try { providers = await api("GET", "/api/v1/providers"); } catch (e) { /* not an orchestrator */ }
      facts($("#node"), [["Peer ID", node.peer_id], ["DID", node.did], ["User", node.user_did], ["Version", node.version], ["Started", when(node.started)],
        ["Location", res && res.machine && res.machine.location ? [res.machine.location.continent, res.machine.location.country, res.machine.location.city].filter(Boolean).join(" / ") : ""],
        ["Executors", res && res.machine ? (res.machine.executors || []).join(", ") : ""]]);
      $("#addrs").replaceChildren(...(node.addrs || []).map((a) => el("li", {}, a)));
      if (res) {
        const row = (name, r) => el("tr", {}, el("th", { scope: "row" }, name), el("td", {}, r ? r.cpu : "—"), el("td", {}, r ? bytes(r.ram) : "—"), el("td", {}, r ? bytes(r.disk) : "—"), el("td", {}, r && r.gpus ? r.gpus.length : 0));
        fill($("#resources tbody"), [row("machine", res.capacity), row("onboarded", res.onboarded && res.onboarded.resources), row("allocated", res.allocated), row("free", res.free)]);
        const b = res.benchmark;
        facts($("#bench"), b ? [["CPU single", b.cpu_single], ["CPU multi", b.cpu_multi], ["Memory", b.memory_mbps + " MB/s"], ["Disk write", b.disk_write_mbps + " MB/s"], ["Disk read", b.disk_read_mbps + " MB/s"], ["fsync p50", b.fsync_p50_us + " µs"]] : [["Scores", "not benchmarked yet (dms onboard runs it)"]]);
      }
      const where = {};
      for (const p of providers || []) {
        const l = p.location;
        if (p.peer && l) where[p.peer] = [l.continent, l.country, l.city].filter(Boolean).join(" / ");
      }
      fill($("#peers tbody"), (peers || []).map((p) => el("tr", {},
        el("td", { class: "mono", title: p.id }, short(p.id)),
        el("td", {}, p.connected ? "yes" : "no"),
        el("td", {}, p.latency_ms ? p.latency_ms.toFixed(2) + " ms" : "—"),
        el("td", {}, where[p.id] || ""),
        el("td", { class: "mono" }, (p.addrs || []).join(" ")))));
      if (!peers || !peers.length) fill($("#peers tbody"), [el("tr", {}, el("td", { colspan: 5 }, "No peers."))]);
    } catch (e) { status(e.message, true); }
  }

  // Deployments index: the server renders it; the stream replaces the rows.
  function deployments() {
    const table = $("#deployments"); const state = table.dataset.state;
    const es = new EventSource("/api/v1/dashboard/deployments/stream" + (state ? "?state=" + encodeURIComponent(state) : ""));
    es.addEventListener("index", (ev) => {
      const ix = JSON.parse(ev.data);
      const rows = ix.deployments.map((d) => {
        const why = el("td", {});
        if (d.reason) why.append(el("span", { class: "reason" }, d.reason), " ");
        why.append(d.message || "");
        if (d.waiting && d.waiting.length) why.append(el("ul", { class: "why" }, ...d.waiting.map((c) => el("li", {}, el("span", { class: "mono" }, short(c.peer)), ` (${c.node}): ${c.kind}` + (c.reasons || []).map((r) => "; " + r).join("")))));
        return el("tr", { "data-id": d.id, "data-state": d.state },
          el("td", { class: "mono" }, el("a", { href: "/ui/deployments/" + d.id }, short(d.id))),
          el("td", {}, stateBadge(d.state)),
          el("td", {}, `${d.running}/${d.allocations} running`),
          el("td", {}, d.restarts),
          el("td", { class: "mono" }, (d.providers || []).map(short).join(", ")),
          el("td", {}, el("time", { datetime: d.updated }, when(d.updated))),
          why);
      });
      if (!rows.length) rows.push(el("tr", { class: "empty" }, el("td", { colspan: 7 }, "No deployments" + (state ? " in state " + state : "") + ".")));
      fill(table.tBodies[0], rows);
      status("live · " + ix.total + " deployments");
    });
    es.onerror = () => status("reconnecting…", true);
  }

  // One deployment.
  function deployment() {
    const id = document.body.dataset.id;
    const base = "/api/v1/deployments/" + encodeURIComponent(id);
    let full = id;
    const shutdown = $("#shutdown");
    shutdown.addEventListener("click", async () => {
      if (!confirm("Shut down deployment " + short(full) + "?")) return;
      shutdown.disabled = true;
      try { await api("POST", base + "/shutdown"); status("shutting down…"); } catch (e) { status(e.message, true); shutdown.disabled = false; }
    });
    function show(d) {
      full = d.id;
      const st = $("#state"); st.textContent = d.state; st.className = "state s-" + d.state;
      shutdown.disabled = d.state === "completed" || d.state === "failed" || d.state === "stopped" || d.state === "shutting-down";
      facts($("#facts"), [["ID", d.id], ["Owner", d.owner], ["Created", when(d.created)], ["Updated", when(d.updated)], ["Message", d.message], ["Reason", d.reason],
        ["Exit code", d.exit_code ?? ""], ["Epoch", d.epoch], ["Subnet", d.subnet], ["Orchestrator", d.orchestrator]]);
      fill($("#allocs tbody"), (d.allocations || []).map((a) => el("tr", { "data-name": a.name, "data-state": a.state },
        el("td", {}, a.name), el("td", {}, stateBadge(a.state), a.message ? " " + a.message : ""),
        el("td", { class: "mono", title: a.provider || "" }, short(a.provider)),
        el("td", {}, a.restarts), el("td", {}, a.attempt || ""),
        el("td", {}, a.exit_code ?? "", a.reason ? " (" + a.reason + ")" : ""),
        el("td", { class: "mono" }, [a.address, ...(a.ports || [])].filter(Boolean).join(" ")))));
      const why = d.state === "queued" ? d.candidates || [] : [];
      $("#why-section").hidden = !why.length;
      $("#why").replaceChildren(...why.map((c) => el("li", {}, el("span", { class: "mono" }, short(c.peer)), ` (${c.node}): ${c.kind}` + (c.reasons || []).map((r) => "; " + r).join(""))));
      const evs = d.events || [];
      $("#events").replaceChildren(...evs.map((e) => el("li", {}, el("time", { datetime: e.time }, when(e.time)), " ", el("span", { class: "kind" }, e.kind), e.allocation ? " " + e.allocation : "", ": " + e.message)));
      if (!evs.length) $("#events").replaceChildren(el("li", { class: "hint" }, "No events yet."));
      if (!logsStarted && d.state !== "queued" && d.state !== "bidding" && d.state !== "committing") { logsStarted = true; logs(); }
      // Outputs and the final usage exist once it has ended: read them again.
      const ended = d.state === "completed" || d.state === "failed" || d.state === "stopped";
      if (ended && !endSeen && shownOnce) { results(base); usage(base); }
      endSeen = endSeen || ended; shownOnce = true;
    }
    let endSeen = false, shownOnce = false;
    let logsStarted = false;
    async function logs() {
      const pre = $("#logs");
      const multi = () => $("#allocs tbody").rows.length > 1;
      try {
        const r = await fetch(base + "/logs?follow=true&tail=500", { credentials: "same-origin" });
        if (!r.ok || !r.body) { pre.textContent = "logs: " + r.status; return; }
        const reader = r.body.getReader(); const dec = new TextDecoder(); let buf = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += dec.decode(value, { stream: true });
          let i;
          while ((i = buf.indexOf("\n")) >= 0) {
            const line = buf.slice(0, i); buf = buf.slice(i + 1);
            if (!line) continue;
            let l; try { l = JSON.parse(line); } catch (e) { continue; }
            const stick = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
            let text = l.data; if (!text.endsWith("\n")) text += "\n";
            const span = el("span", { class: l.stream, title: l.time || null }, (multi() && l.allocation ? "[" + l.allocation + "] " : "") + text);
            // How long after the provider read it the line is shown (the
            // browser test checks it against the 1 s goal).
            if (l.time) span.dataset.lag = Date.now() - Date.parse(l.time);
            pre.append(span);
            if (stick) pre.scrollTop = pre.scrollHeight;
          }
        }
      } catch (e) { pre.append(el("span", { class: "stderr" }, "logs: " + e.message + "\n")); }
    }
    const es = new EventSource(base + "/stream");
    es.addEventListener("deployment", (ev) => { show(JSON.parse(ev.data)); status("live"); });
    es.addEventListener("end", () => { es.close(); status("ended"); });
    es.addEventListener("failure", (ev) => { status(JSON.parse(ev.data).message, true); es.close(); });
    es.onerror = () => {
      if (es.readyState !== EventSource.CLOSED) { status("reconnecting…", true); return; }
      api("GET", base).then(() => status("the live stream closed; reload the page", true), (e) => status(e.message, true));
    };
    usage(base); results(base); trace(base);
  }
  async function usage(base) {
    const box = $("#usage");
    try {
      const u = await api("GET", base + "/usage");
      const money = (m) => (m && typeof m === "object" ? JSON.stringify(m) : m ?? "");
      if (!u.contracts.length) { box.replaceChildren(el("p", { class: "hint" }, "No contracts for this deployment.")); return; }
      box.replaceChildren(el("div", { class: "scroll" }, el("table", { id: "usage-table" },
        el("thead", {}, el("tr", {}, ...["Contract", "Provider", "Allocations", "Notes", "Amount", "Owed", "State"].map((h) => el("th", { scope: "col" }, h)))),
        el("tbody", {}, ...u.contracts.map((c) => el("tr", {}, el("td", { class: "mono" }, short(c.contract)), el("td", { class: "mono" }, short(c.provider)), el("td", {}, (c.allocations || []).join(", ")), el("td", {}, c.notes), el("td", {}, money(c.amount)), el("td", {}, money(c.owed)), el("td", {}, c.state)))))),
        el("p", {}, "Total: ", money(u.amount), " · owed ", money(u.owed), u.budget ? " · budget " + money(u.budget) : ""));
    } catch (e) { box.replaceChildren(el("p", { class: "hint" }, e.status === 503 ? "This node keeps no contracts." : "Usage: " + e.message)); }
  }
  async function results(base) {
    const box = $("#results");
    try {
      const list = (await api("GET", base + "/results")) || [];
      if (!list.length) { box.replaceChildren(el("p", { class: "hint" }, "No output volumes.")); return; }
      box.replaceChildren(el("ul", { class: "volumes" }, ...list.map((v) => {
        const li = el("li", { "data-volume": v.allocation + "/" + v.volume },
          v.allocation + " / " + v.volume + " (" + v.kind + ", " + v.mode + ")" + (v.bucket ? " · s3://" + v.bucket + "/" + (v.prefix || "") : ""));
        if (!v.ready) { li.append(el("span", { class: "hint" }, " · " + (v.reason || "not ready"))); return li; }
        const btn = el("button", { type: "button" }, "Files");
        btn.addEventListener("click", () => { btn.disabled = true; files(base, v, li); });
        li.append(" ", btn);
        return li;
      })), el("p", { class: "hint" }, "Or all at once: dms deployment results " + short(document.body.dataset.id) + " -o DIR"));
    } catch (e) { box.replaceChildren(el("p", { class: "hint" }, e.status === 503 || e.status === 404 ? "No outputs." : "Outputs: " + e.message)); }
  }
  // files lists a result volume's files, each with a download button.
  async function files(base, v, li) {
    const vbase = base + "/results/" + encodeURIComponent(v.allocation) + "/" + encodeURIComponent(v.volume);
    try {
      const m = await api("GET", vbase + "/manifest");
      li.append(el("ul", {}, ...m.files.map((f) => {
        const btn = el("button", { type: "button" }, "Download");
        const note = el("span", { class: "hint" });
        btn.addEventListener("click", async () => {
          btn.disabled = true;
          try { await download(vbase, f, note); } catch (e) { note.textContent = " " + e.message; } finally { btn.disabled = false; }
        });
        return el("li", {}, el("span", { class: "mono" }, f.path), " " + bytes(f.size) + " ", btn, note);
      })));
    } catch (e) { li.append(el("span", { class: "error" }, " " + e.message)); }
  }
  // maxDownload bounds what the page holds in memory for one file.
  const maxDownload = 256 << 20, chunk = 1 << 20;
  // download fetches a file chunk by chunk, checks its SHA-256 against
  // the manifest and hands it to the browser.
  async function download(vbase, f, note) {
    if (f.size > maxDownload) throw new Error("too large for the browser: use dms deployment results");
    const parts = [];
    for (let off = 0; off < f.size; off += chunk) {
      note.textContent = " " + Math.floor(100 * off / f.size) + " %";
      const q = new URLSearchParams({ path: f.path, offset: off, length: Math.min(chunk, f.size - off) });
      const r = await fetch(vbase + "/chunk?" + q, { credentials: "same-origin" });
      if (!r.ok) throw new Error("chunk at " + off + ": " + r.status);
      parts.push(await r.arrayBuffer());
    }
    const blob = new Blob(parts);
    if (crypto.subtle) {
      const sum = [...new Uint8Array(await crypto.subtle.digest("SHA-256", await blob.arrayBuffer()))].map((b) => b.toString(16).padStart(2, "0")).join("");
      if (sum !== f.sha256) throw new Error("SHA-256 mismatch: not saved");
    }
    const a = el("a", { href: URL.createObjectURL(blob), download: f.path.split("/").pop() });
    document.body.append(a); a.click(); a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
    note.textContent = " saved, SHA-256 checked";
  }
  async function trace(base) {
    const box = $("#trace");
    const hint = (t) => box.replaceChildren(el("p", { class: "hint" }, t));
    try {
      const t = await api("GET", base + "/trace");
      const spans = (t && t.spans) || [];
      if (!spans.length) { hint("No spans yet."); return; }
      // A waterfall: one row per span, indented under its parent, its bar
      // placed on the trace's time line.
      const at = (x) => Date.parse(x);
      const t0 = Math.min(...spans.map((x) => at(x.start))), t1 = Math.max(...spans.map((x) => at(x.end || x.start)));
      const w = Math.max(1, t1 - t0);
      const byID = Object.fromEntries(spans.map((x) => [x.span_id, x]));
      const depth = (x) => { let d = 0; while (x && x.parent_id && byID[x.parent_id] && d < 20) { x = byID[x.parent_id]; d++; } return d; };
      box.replaceChildren(el("div", { class: "scroll" }, el("table", { class: "waterfall", id: "waterfall" },
        el("thead", {}, el("tr", {}, ...["Span", "Node", "Duration", ""].map((h) => el("th", { scope: "col" }, h)))),
        el("tbody", {}, ...spans.map((x) => {
          const a = at(x.start) - t0, d = at(x.end || x.start) - at(x.start);
          const bar = el("div", { class: "bar" + (x.error ? " failed" : ""), title: x.error || "" });
          bar.style.marginLeft = (100 * a / w) + "%"; bar.style.width = Math.max(0.3, 100 * d / w) + "%";
          const name = el("td", {}, x.name || ""); name.style.paddingLeft = (8 + 14 * depth(x)) + "px";
          return el("tr", {}, name, el("td", { class: "mono", title: x.node || "" }, short(x.node)), el("td", {}, d + " ms"), el("td", { class: "span-bar" }, bar));
        })))));
    } catch (e) {
      if (e.status === 404 && !e.body) hint("Tracing not available on this node.");
      else if (e.status === 503) hint("Tracing is not enabled on this node.");
      else hint("Trace: " + e.message);
    }
  }

  // Deploy.
  function deploy() {
    const ta = $("#ensemble"), form = $("#deploy-form");
    $("#file").addEventListener("change", async (ev) => {
      const f = ev.target.files[0]; if (!f) return;
      ta.value = await f.text(); check();
    });
    function showProblems(v) {
      const sec = $("#problems-section");
      if (v.valid) { sec.hidden = true; status("valid: " + v.allocations + " allocation(s) on " + v.nodes + " node(s)"); return true; }
      sec.hidden = false;
      const lines = new Set(v.problems.map((p) => p.line).filter(Boolean));
      $("#problems").replaceChildren(...v.problems.map((p) => el("li", { "data-line": p.line || "" }, (p.line ? "line " + p.line + ": " : "") + (p.path ? p.path + ": " : "") + p.message)));
      $("#listing").replaceChildren(...ta.value.split("\n").map((l, i) => el("span", { "data-n": i + 1, class: lines.has(i + 1) ? "bad" : null, id: "line-" + (i + 1) }, l || " ")));
      status(v.problems.length + " problem(s)", true);
      return false;
    }
    async function check() {
      try { return showProblems(await api("POST", "/api/v1/validate", { ensemble: ta.value })); } catch (e) { status(e.message, true); return false; }
    }
    $("#validate").addEventListener("click", check);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const btn = $("#deploy"); btn.disabled = true; status("deploying…");
      try {
        const d = await api("POST", "/api/v1/dashboard/deploy", { ensemble: ta.value, passphrase: $("#passphrase").value });
        $("#passphrase").value = "";
        location.href = "/ui/deployments/" + d.id;
      } catch (e) {
        if (e.status === 422 && e.body) showProblems(e.body); else status(e.message, true);
      } finally { btn.disabled = false; }
    });
  }

  // Capabilities.
  async function caps() {
    try {
      const c = await api("GET", "/api/v1/cap");
      const roots = {};
      for (const a of c.anchors || []) (roots[a.root] = roots[a.root] || []).push(a.cmd);
      const none = (t, n) => [el("tr", {}, el("td", { colspan: n, class: "hint" }, t))];
      const ar = Object.entries(roots).map(([r, cmds]) => el("tr", {}, el("td", { class: "mono" }, r), el("td", { class: "mono" }, cmds.join(" "))));
      fill($("#anchors tbody"), ar.length ? ar : none("No trusted roots.", 2));
      const tr = (c.tokens || []).map((t) => el("tr", {}, el("td", { class: "mono", title: t.issuer }, short(t.issuer)), el("td", { class: "mono", title: t.audience }, short(t.audience)), el("td", { class: "mono" }, t.cmd), el("td", {}, when(t.expiry) || "never"), el("td", {}, t.source), el("td", {}, t.revoked ? "yes" : "")));
      fill($("#tokens tbody"), tr.length ? tr : none("No grants.", 6));
      const rr = (c.revocations || []).map((r) => el("tr", {}, el("td", { class: "mono" }, r.cid), el("td", { class: "mono", title: r.issuer }, short(r.issuer)), el("td", {}, when(r.time))));
      fill($("#revocations tbody"), rr.length ? rr : none("No revocations.", 3));
    } catch (e) { status(e.message, true); }
  }

  const pages = { overview, deployments, deployment, deploy, caps };
  const run = pages[document.body.dataset.page];
  if (run) run();
})();
