// Relance dashboard scripts: charts, the live feed, the rule editor. No inline code (the
// content security policy forbids it); page data comes from <script type="application/json">.
"use strict";

(function () {
  const csrf = document.body.dataset.csrf || "";
  const $ = (sel) => document.querySelector(sel);
  const data = (id) => {
    const el = document.getElementById(id);
    return el ? JSON.parse(el.textContent) : null;
  };
  const el = (tag, text, cls) => {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  };
  const palette = ["#7b1e3a", "#2b6cb0", "#2f855a", "#b7791f", "#6b46c1", "#c05621", "#2c7a7b", "#718096", "#d53f8c", "#4a5568"];
  // The page's language and the estate's time zone (server-rendered; see layout.rs).
  const page = data("texts") || { lang: "en", zone: "Europe/Paris", texts: {} };
  const tx = (key) => {
    const t = page.texts[key];
    if (t === undefined) {
      console.error("missing translation: " + key);
      return key;
    }
    return t;
  };
  // A text with its {} filled in order.
  const txf = (key, ...args) => { let i = 0; return tx(key).replace(/\{\}/g, () => String(args[i++])); };
  const intlLocale = page.lang === "fr" ? "fr-FR" : "en-GB";
  const inZone = (opts) => new Intl.DateTimeFormat(intlLocale, { timeZone: page.zone, hourCycle: "h23", ...opts });
  const dateTime = inZone({ day: "numeric", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit" });
  const dateTimeSeconds = inZone({ day: "numeric", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit" });
  const dayHour = inZone({ weekday: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
  const shortDate = inZone({ day: "numeric", month: "short" });
  const hourLabel = (ms) => dayHour.format(new Date(ms));
  const hasChart = typeof window.Chart === "function";
  const reduceMotion = window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches;
  const baseOptions = { responsive: true, maintainAspectRatio: false, animation: reduceMotion ? false : { duration: 300 } };

  // Forms that need a confirmation.
  document.querySelectorAll("form[data-confirm]").forEach((f) =>
    f.addEventListener("submit", (ev) => {
      if (!window.confirm(f.dataset.confirm)) ev.preventDefault();
    }));

  // Overview: events per hour by trigger (stacked), score histogram.
  const activity = data("events-data");
  if (activity && hasChart) {
    new window.Chart($("#events-chart"), {
      type: "bar",
      data: {
        labels: activity.hours.map(hourLabel),
        datasets: activity.series.map((s, i) => ({ label: s.label, data: s.counts, backgroundColor: palette[i % palette.length] })),
      },
      options: { ...baseOptions, scales: { x: { stacked: true, ticks: { maxTicksLimit: 14 } }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } } },
    });
  }
  const scores = data("score-data");
  if (scores && hasChart) {
    new window.Chart($("#score-chart"), {
      type: "bar",
      data: { labels: scores.labels, datasets: [{ label: tx("JsContacts"), data: scores.counts, backgroundColor: palette[0] }] },
      options: { ...baseOptions, plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } },
    });
  }

  // Contact: score over time (a step line: a score holds until the next change).
  const points = data("contact-score-data");
  if (points && hasChart) {
    // Within two days, ticks show the day and time (24 h, the estate's zone); beyond, the date.
    const shortSpan = points[points.length - 1][0] - points[0][0] < 2 * 86400 * 1000;
    new window.Chart($("#contact-score-chart"), {
      type: "line",
      data: { datasets: [{ label: tx("JsScore"), data: points.map(([x, y]) => ({ x, y })), borderColor: palette[0], backgroundColor: palette[0], stepped: true, pointRadius: 4 }] },
      options: {
        ...baseOptions,
        plugins: { legend: { display: false }, tooltip: { callbacks: { title: (items) => dateTimeSeconds.format(new Date(items[0].parsed.x)) } } },
        scales: {
          x: { type: "linear", ticks: { maxTicksLimit: 6, callback: (v) => (shortSpan ? dayHour : shortDate).format(new Date(v)) } },
          y: { min: 0, max: 100 },
        },
      },
    });
  }

  // Overview: the live feed (server-sent events).
  const feed = $("#feed");
  if (feed && window.EventSource) {
    const status = $("#feed-status");
    const source = new EventSource("/ui/feed?after=" + encodeURIComponent(feed.dataset.after || "0"));
    source.addEventListener("open", () => { status.textContent = tx("JsLive"); });
    source.addEventListener("error", () => { status.textContent = tx("JsReconnecting"); });
    source.addEventListener("events", (msg) => {
      for (const e of JSON.parse(msg.data)) {
        const li = el("li", null, "new");
        const at = new Date(e.received_at);
        const t = el("time", dateTime.format(at));
        t.setAttribute("datetime", e.received_at);
        t.title = dateTimeSeconds.format(at);
        li.append(t, " ", el("strong", e.event_type));
        if (e.trigger) li.append(" → " + e.trigger);
        li.append(" · ");
        if (e.contact) {
          const a = el("a", e.contact);
          a.href = "/ui/contacts/" + encodeURIComponent(e.contact);
          li.append(a);
        } else {
          li.append(el("span", tx("JsAnonymous"), "muted"));
        }
        li.append(" ", el("span", "(" + e.source + ")", "muted"));
        if (e.source === "test") li.append(" ", el("span", tx("JsTest"), "badge test"));
        feed.prepend(li);
      }
      while (feed.children.length > 100) feed.lastElementChild.remove();
    });
  }

  // Rules: the TOML editor.
  const editor = $("#rules-editor");
  if (editor) {
    const gutter = $("#rules-gutter");
    const statusLine = $("#rules-status");
    const errorList = $("#rules-errors");
    const backtestButton = $("#backtest");
    const activateButton = $("#activate");
    const report = $("#backtest-report");
    const original = editor.value;
    let errorLines = new Set();
    let valid = true;
    let backtested = null;
    let timer = null;
    let checking = 0;

    const renderGutter = () => {
      const count = editor.value.split("\n").length;
      gutter.replaceChildren();
      for (let i = 1; i <= count; i++) {
        const line = el("span", (errorLines.has(i) ? "⚠ " : "") + i + "\n", errorLines.has(i) ? "err" : "");
        gutter.append(line);
      }
      gutter.scrollTop = editor.scrollTop;
    };
    const refreshButtons = () => {
      activateButton.disabled = !(valid && backtested === editor.value && editor.value !== original);
      backtestButton.disabled = !valid;
    };
    const goToLine = (line) => {
      const lines = editor.value.split("\n");
      const start = lines.slice(0, line - 1).reduce((n, l) => n + l.length + 1, 0);
      editor.focus();
      editor.setSelectionRange(start, start + (lines[line - 1] || "").length);
      editor.scrollTop = Math.max(0, (line - 3) * 19.5);
    };
    const api = (method, path, body, type) => fetch(path, {
      method, body, credentials: "same-origin",
      headers: { "content-type": type, "x-csrf-token": csrf, accept: "application/json" },
    });
    const validate = async () => {
      const text = editor.value;
      const ticket = ++checking;
      let verdict;
      try {
        const resp = await api("POST", "/api/rules/validate", text, "application/toml");
        verdict = await resp.json();
        if (!resp.ok) throw new Error(verdict.detail || resp.statusText);
      } catch (e) {
        if (ticket === checking) statusLine.textContent = txf("JsCheckFailed", e.message);
        return;
      }
      if (ticket !== checking) return; // a newer check is under way
      valid = verdict.valid;
      errorLines = new Set(verdict.errors.map((e) => e.line).filter(Boolean));
      errorList.replaceChildren();
      for (const e of verdict.errors) {
        const li = el("li");
        const where = (e.line ? txf("JsLineAt", e.line) : "") + (e.rule_id ? txf("JsRuleAt", e.rule_id) : "") + (e.path ? e.path + ": " : "");
        if (e.line) {
          const b = el("button", where);
          b.type = "button";
          b.addEventListener("click", () => goToLine(e.line));
          li.append(b, " " + e.message);
        } else {
          li.append(where + e.message);
        }
        errorList.append(li);
      }
      statusLine.className = valid ? "notice good" : "notice bad";
      statusLine.textContent = valid
        ? (text === original ? tx("JsValidSame") : txf("JsValidRules", verdict.rules))
        : txf("JsProblems", verdict.errors.length);
      renderGutter();
      refreshButtons();
    };
    editor.addEventListener("input", () => {
      renderGutter();
      refreshButtons();
      clearTimeout(timer);
      timer = setTimeout(validate, 350);
    });
    editor.addEventListener("scroll", () => { gutter.scrollTop = editor.scrollTop; });

    const cell = (tr, text, cls) => tr.append(el("td", text, cls));
    backtestButton.addEventListener("click", async () => {
      const text = editor.value;
      backtestButton.disabled = true;
      report.replaceChildren(el("p", tx("JsReplaying"), "muted"));
      try {
        const resp = await api("POST", "/api/simulate", JSON.stringify({ rules: text, examples: 10 }), "application/json");
        const answer = await resp.json();
        if (!resp.ok) throw new Error(answer.detail || resp.statusText);
        const r = answer.report;
        report.replaceChildren();
        report.append(el("h3", txf("JsBacktestTitle", r.events, r.contacts, answer.seconds.toLocaleString(intlLocale, { maximumFractionDigits: 2 }))));
        const summary = el("ul");
        for (const [key, n] of [
          ["JsDiffContacts", r.contacts_ending_differently],
          ["JsDiffScore", r.score_differs],
          ["JsDiffSegment", r.segment_differs],
          ["JsDiffTags", r.tags_differ],
          ["JsDiffEmailsGone", r.emails_no_longer_sent],
          ["JsDiffEmailsNew", r.emails_newly_sent],
        ]) summary.append(el("li", txf(key, n)));
        report.append(summary);
        const table = el("table", null, "diff");
        const head = el("tr");
        for (const h of ["JsRule", "JsAction", "JsColLive", "JsColCandidate"]) head.append(el("th", tx(h), h === "JsColLive" || h === "JsColCandidate" ? "num" : ""));
        table.append(el("thead"), el("tbody"));
        table.tHead.append(head);
        const rows = new Map();
        for (const [side, stats] of [["live", r.live], ["candidate", r.candidate]]) {
          for (const [rule, byType] of Object.entries(stats.actions)) {
            for (const [type, n] of Object.entries(byType)) {
              const key = rule + "\u0000" + type;
              const row = rows.get(key) || { rule, type, live: 0, candidate: 0 };
              row[side] = n;
              rows.set(key, row);
            }
          }
        }
        for (const row of [...rows.values()].sort((a, b) => a.rule.localeCompare(b.rule) || a.type.localeCompare(b.type))) {
          const tr = el("tr");
          const differs = row.live !== row.candidate;
          const changed = differs ? "num changed" : "num";
          // A mark, not only bold, for a row that differs.
          cell(tr, row.rule); cell(tr, row.type); cell(tr, row.live, changed); cell(tr, (differs ? "≠ " : "") + row.candidate, changed);
          table.tBodies[0].append(tr);
        }
        report.append(el("h3", tx("JsActionsPerRule")), table);
        const runRules = [...new Set([...Object.keys(r.live.runs || {}), ...Object.keys(r.candidate.runs || {})])].sort();
        if (runRules.length) {
          const runs = el("table", null, "diff");
          const rh = el("tr");
          for (const t of ["JsRule", "JsRunsEnteredLive", "JsRunsEnteredCandidate", "JsGoalsLive", "JsGoalsCandidate", "JsStepsSkipped"]) rh.append(el("th", tx(t), t === "JsRule" ? "" : "num"));
          runs.append(el("thead"), el("tbody"));
          runs.tHead.append(rh);
          const zero = { entered: 0, goals_reached: 0, steps_skipped: 0 };
          for (const rule of runRules) {
            const a = (r.live.runs || {})[rule] || zero, b = (r.candidate.runs || {})[rule] || zero;
            const tr = el("tr");
            cell(tr, rule); cell(tr, a.entered, "num"); cell(tr, b.entered, "num");
            cell(tr, a.goals_reached, "num"); cell(tr, b.goals_reached, "num"); cell(tr, b.steps_skipped, "num");
            runs.tBodies[0].append(tr);
          }
          report.append(el("h3", tx("JsRuns")), runs);
        }
        const held = [r.live.pressure, r.candidate.pressure];
        if (held[0] && held[1] && (held[0].deferred + held[0].skipped + held[1].deferred + held[1].skipped) > 0) {
          const pt = el("table", null, "diff");
          pt.id = "backtest-pressure";
          const ph = el("tr");
          for (const t of ["JsPressure", "JsColLive", "JsColCandidate"]) ph.append(el("th", tx(t), t === "JsPressure" ? "" : "num"));
          pt.append(el("thead"), el("tbody"));
          pt.tHead.append(ph);
          const reasons = [...new Set([...Object.keys(held[0].by_reason), ...Object.keys(held[1].by_reason)])].sort();
          for (const [label, a, b] of [[tx("JsDeferred"), held[0].deferred, held[1].deferred], [tx("JsSkipped"), held[0].skipped, held[1].skipped]]
            .concat(reasons.map((k) => ["  " + k, held[0].by_reason[k] || 0, held[1].by_reason[k] || 0]))) {
            const tr = el("tr");
            cell(tr, label); cell(tr, a, "num"); cell(tr, b, a !== b ? "num changed" : "num");
            pt.tBodies[0].append(tr);
          }
          report.append(el("h3", tx("JsPressureTitle")), pt);
        }
        if (r.examples.length) {
          const ex = el("table", null, "diff");
          const h = el("tr");
          for (const t of ["JsContactNo", "JsLiveScore", "JsCandidateScore", "JsLiveTags", "JsCandidateTags"]) h.append(el("th", tx(t), t.endsWith("Score") ? "num" : ""));
          ex.append(el("thead"), el("tbody"));
          ex.tHead.append(h);
          for (const d of r.examples) {
            const tr = el("tr");
            cell(tr, d.contact_id); cell(tr, d.live.score, "num"); cell(tr, d.candidate.score, "num");
            cell(tr, d.live.tags.join(", ")); cell(tr, d.candidate.tags.join(", "));
            ex.tBodies[0].append(tr);
          }
          report.append(el("h3", tx("JsExamples")), ex);
        }
        report.append(el("p", answer.note, "muted"));
        backtested = text;
      } catch (e) {
        report.replaceChildren(el("p", txf("JsBacktestFailed", e.message), "notice bad"));
      }
      refreshButtons();
    });

    activateButton.addEventListener("click", async () => {
      if (!window.confirm(tx("JsActivateConfirm"))) return;
      activateButton.disabled = true;
      try {
        const cancelRuns = document.getElementById("cancel-removed-runs");
        const query = cancelRuns && cancelRuns.checked ? "?cancel_removed_runs=true" : "";
        const resp = await api("PUT", "/api/rules" + query, editor.value, "application/toml");
        const answer = await resp.json();
        if (!resp.ok) throw new Error(answer.detail || resp.statusText);
        statusLine.className = "notice good";
        statusLine.textContent = txf("JsActivated", answer.version) +
          (answer.runs_cancelled !== undefined ? txf("JsRunsCancelled", answer.runs_cancelled) : "");
        setTimeout(() => window.location.reload(), 600);
      } catch (e) {
        statusLine.className = "notice bad";
        statusLine.textContent = txf("JsActivationFailed", e.message);
        refreshButtons();
      }
    });

    renderGutter();
    refreshButtons();
  }
})();
