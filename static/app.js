/* eventdash live page. Every value from the server goes in as text (textContent), never HTML. */
(function () {
  "use strict";
  const TYPES = ["productview", "addtobasket", "removefrombasket", "purchase"];
  const LABELS = { productview: "Views", addtobasket: "Adds", removefrombasket: "Removes", purchase: "Purchases" };
  const WINDOW_SECONDS = { "1m": 60, "5m": 300, "15m": 900, "1h": 3600, "6h": 21600, "24h": 86400 };
  // Per-minute windows (eventdash/history.py): fetched whole from /api/stats?window=, refreshed every
  // MINUTE_REFRESH_MS; the funnel and top products cover at most the last 15 minutes.
  const MINUTE_WINDOWS = new Set(["1h", "6h", "24h"]);
  const WINDOW_LABELS = { "1m": "1 min", "5m": "5 min", "15m": "15 min", "1h": "1 h", "6h": "6 h", "24h": "24 h" };
  const MINUTE_REFRESH_MS = 10000;
  const HISTORY_SECONDS = 900;
  const STALE_MS = 6000; // no message for this long while connected: data is stale

  const currency = document.body.dataset.currency || "EUR";
  const intFmt = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
  const rateFmt = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });
  const pctFmt = new Intl.NumberFormat(undefined, { style: "percent", maximumFractionDigits: 1 });
  const moneyFmt = new Intl.NumberFormat(undefined, { style: "currency", currency });

  const $ = (id) => document.getElementById(id);
  const setText = (id, text) => { const el = $(id); if (el && el.textContent !== text) el.textContent = text; };

  let windowKey = "5m";
  let latest = null;
  let lastMessageAt = 0;
  let connected = false;
  const history = new Map(); // epoch second -> [4 counts]
  let minuteDoc = null; // the selected per-minute window's document, as fetched
  // A filter ({category} or {product}) shows one slice of the 1, 5 or 15 minute window, fetched from
  // /api/stats?window=&category=|product= every SLICE_REFRESH_MS (minute precision, eventdash/stats/slice.py).
  let filter = null;
  let sliceDoc = null;
  const SLICE_REFRESH_MS = 2000;
  const categoryName = (c) => (c === "" ? "uncategorized" : c);
  const detailKey = () => (MINUTE_WINDOWS.has(windowKey) ? "15m" : windowKey);

  // ---- connection indicator -------------------------------------------------------------
  function setConnection(state, text) {
    const el = $("connection");
    el.dataset.state = state;
    setText("connection-text", text);
  }
  function refreshConnection() {
    if (!connected) return;
    const silent = Date.now() - lastMessageAt > STALE_MS;
    if (silent || (latest && latest.health && latest.health.stale)) {
      const stuck = latest && latest.health && latest.health.pipeline === "stuck";
      setConnection("stale", silent ? "stale data (no updates)" : stuck ? "aggregation stuck" : "stale data");
    } else {
      setConnection("live", "live");
    }
  }

  // ---- chart ----------------------------------------------------------------------------
  function cssVar(name) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim(); }
  let chart = null;
  // Times only (no date line), at least 90 px apart: labels never overlap, at any width.
  const timeFmt = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  const minuteFmt = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
  const X_LABEL_SPACE = 90;
  // Alerts on the chart: a solid line where one started, a dashed one where it ended (eventdash/alerts).
  let alertMarks = []; // [{t: epoch second, label, end}]
  function drawAlertMarks(u) {
    const ctx = u.ctx, top = u.bbox.top, height = u.bbox.height;
    ctx.save();
    ctx.strokeStyle = ctx.fillStyle = cssVar("--bad");
    ctx.lineWidth = Math.max(1, devicePixelRatio);
    ctx.font = Math.round(11 * devicePixelRatio) + "px sans-serif";
    for (const mark of alertMarks) {
      const x = u.valToPos(mark.t, "x", true);
      if (!(x >= u.bbox.left && x <= u.bbox.left + u.bbox.width)) continue;
      ctx.setLineDash(mark.end ? [4 * devicePixelRatio, 4 * devicePixelRatio] : []);
      ctx.beginPath();
      ctx.moveTo(x, top);
      ctx.lineTo(x, top + height);
      ctx.stroke();
      if (!mark.end) ctx.fillText(mark.label, x + 3 * devicePixelRatio, top + 12 * devicePixelRatio);
    }
    ctx.restore();
  }
  function makeChart() {
    const el = $("chart");
    const grid = { stroke: cssVar("--grid"), width: 1 };
    const opts = {
      width: Math.max(300, el.clientWidth), height: 260,
      scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(1, max * 1.1)] } },
      axes: [
        { stroke: cssVar("--muted"), grid, ticks: grid, space: X_LABEL_SPACE,
          values: (u, splits) => splits.map((s) => (filter || MINUTE_WINDOWS.has(windowKey) ? minuteFmt : timeFmt).format(new Date(s * 1000))) },
        { stroke: cssVar("--muted"), grid, ticks: grid, label: "events/s" },
      ],
      series: [{}].concat(TYPES.map((t) => ({ label: LABELS[t], stroke: cssVar("--c-" + t), width: 2, points: { show: false } }))),
      hooks: { draw: [drawAlertMarks] },
    };
    chart = new uPlot(opts, chartData(), el);
  }
  // The newest second still filling must not be drawn as a drop to zero: draw up to the last second
  // every active partition's event time has passed (partitions without events for a minute are idle
  // and hold nothing back).
  function completeThrough() {
    const last = Math.floor(Date.now() / 1000) - 1;
    if (!latest || !latest.partitions) return last;
    const active = latest.partitions.map((p) => p.watermark_ms).filter((w) => w > Date.now() - 60000);
    if (!active.length) return last;
    return Math.min(last, Math.floor(Math.min(...active) / 1000) - 1);
  }
  function chartData() {
    if (filter) return sliceChartData();
    if (MINUTE_WINDOWS.has(windowKey)) return minuteChartData();
    const span = WINDOW_SECONDS[windowKey];
    const end = completeThrough();
    const xs = [], ys = TYPES.map(() => []);
    for (let s = end - span + 1; s <= end; s++) {
      xs.push(s);
      const row = history.get(s);
      TYPES.forEach((_, i) => ys[i].push(row ? row[i] : 0));
    }
    return [xs].concat(ys);
  }
  // A per-minute window is drawn as each minute's mean events/s, on the same axis as the seconds.
  function minuteChartData() {
    const xs = [], ys = TYPES.map(() => []);
    const series = minuteDoc && minuteDoc.window.label === windowKey ? minuteDoc.series : null;
    if (series) {
      series.by_type[TYPES[0]].forEach((_, i) => {
        xs.push(series.start_s + i * series.step_s);
        TYPES.forEach((t, k) => ys[k].push(series.by_type[t][i] / series.step_s));
      });
    }
    return [xs].concat(ys);
  }
  // A slice is drawn per complete minute (its mean events/s); a product slice has views and units purchased.
  function sliceChartData() {
    const xs = [], ys = TYPES.map(() => []);
    const series = sliceDoc ? sliceDoc.window.series : null;
    if (series) {
      series.by_type[TYPES[0]].forEach((_, i) => {
        const start = series.start_s + i * series.step_s;
        if (start + series.step_s - 1 > series.complete_through_s) return;
        xs.push(start);
        TYPES.forEach((t, k) => ys[k].push(series.by_type[t][i] / series.step_s));
      });
    }
    return [xs].concat(ys);
  }
  let sliceRequest = 0;
  function fetchSlice(shown) {
    if (!filter) return;
    const query = filter.product !== undefined ? "product=" + encodeURIComponent(filter.product)
      : "category=" + encodeURIComponent(filter.category);
    const ticket = ++sliceRequest, key = windowKey;
    fetch("/api/stats?window=" + key + "&" + query, { cache: "no-store" })
      .then((r) => {
        if (r.status === 400 && ticket === sliceRequest) setFilter(null); // a link with a filter this page cannot show
        return r.ok ? r.json() : null;
      })
      .then((doc) => {
        if (!doc || ticket !== sliceRequest || key !== windowKey || !filter) return;
        if (paused && !shown && sliceDoc) return;
        sliceDoc = doc;
        renderNow();
      }).catch(() => {});
  }
  function setFilter(next) {
    filter = next;
    sliceDoc = null;
    const chip = $("filter-chip");
    chip.hidden = !filter;
    if (filter) {
      if (MINUTE_WINDOWS.has(windowKey)) selectWindow("15m"); // a slice covers at most 15 minutes
      setText("filter-text", filter.product !== undefined ? "Product: " + (filter.name || filter.product)
        : "Category: " + categoryName(filter.category));
    }
    document.querySelectorAll(".window-picker button").forEach((b) => {
      b.disabled = Boolean(filter) && MINUTE_WINDOWS.has(b.dataset.window);
      b.title = b.disabled ? "A filter covers at most 15 minutes" : "";
    });
    saveView();
    fetchSlice(true);
    renderNow();
  }
  function pickButton(text, key, onPick) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "pick";
    button.textContent = text;
    button.dataset.key = key;
    button.addEventListener("click", onPick);
    return button;
  }
  // Tables of pick buttons are rebuilt only when what they show changes, and the focused button keeps
  // its focus across a rebuild: a keyboard user can move through them while updates arrive.
  function replaceRows(tbody, rows, signature) {
    if (tbody.dataset.signature === signature) return;
    const focused = tbody.contains(document.activeElement) ? document.activeElement.dataset.key : null;
    tbody.dataset.signature = signature;
    tbody.replaceChildren(rows);
    if (focused != null) {
      const again = [...tbody.querySelectorAll("button.pick")].find((b) => b.dataset.key === focused);
      if (again) again.focus();
    }
  }
  let minuteRequest = 0;
  // shown: render it even while paused (the window was just picked); else a paused page only keeps it
  function fetchMinutes(shown) {
    if (!MINUTE_WINDOWS.has(windowKey)) return;
    const key = windowKey, ticket = ++minuteRequest;
    fetch("/api/stats?window=" + key, { cache: "no-store" }).then((r) => (r.ok ? r.json() : null)).then((doc) => {
      if (!doc || ticket !== minuteRequest || key !== windowKey) return;
      if (paused && !shown && minuteDoc) return;
      minuteDoc = doc;
      renderNow();
    }).catch(() => {});
  }
  function mergeSeries(series) {
    if (!series || !series.by_type) return;
    const n = series.by_type[TYPES[0]].length;
    for (let i = 0; i < n; i++) {
      history.set(series.start_s + i, TYPES.map((t) => series.by_type[t][i]));
    }
    pruneHistory();
  }
  function pruneHistory() { // at most HISTORY_SECONDS + 5 entries
    const oldest = Math.floor(Date.now() / 1000) - HISTORY_SECONDS - 5;
    for (const s of history.keys()) if (s < oldest) history.delete(s);
  }

  // ---- rendering ------------------------------------------------------------------------
  function renderTop(tbodyId, rows) {
    const tbody = $(tbodyId);
    const fresh = document.createDocumentFragment();
    for (const row of rows) {
      const tr = document.createElement("tr");
      const name = document.createElement("td");
      name.className = "product";
      name.append(pickButton(row.name, row.product_id, () => setFilter({ product: row.product_id, name: row.name })));
      name.title = row.product_id;
      if (filter && filter.product === row.product_id) tr.setAttribute("aria-current", "true");
      const count = document.createElement("td");
      count.className = "num";
      count.textContent = intFmt.format(row.count);
      tr.append(name, count);
      fresh.append(tr);
    }
    replaceRows(tbody, fresh, JSON.stringify([rows, filter]));
  }

  function renderCategories(rows) {
    const fresh = document.createDocumentFragment();
    for (const row of rows || []) {
      const tr = document.createElement("tr");
      const name = document.createElement("td");
      if (row.sliceable === false) name.textContent = "other categories"; // not one category: no slice
      else name.append(pickButton(categoryName(row.category), row.category, () => setFilter({ category: row.category })));
      const count = document.createElement("td");
      count.className = "num";
      count.textContent = intFmt.format(row.events);
      if (filter && filter.category === row.category) tr.setAttribute("aria-current", "true");
      tr.append(name, count);
      fresh.append(tr);
    }
    replaceRows($("top-categories"), fresh, JSON.stringify([rows || [], filter]));
  }

  const RULE_LABELS = {
    purchase_collapse: "Purchases collapsed", conversion_drop: "Conversion dropped", traffic_spike: "Traffic spike",
    single_session_dominance: "A few sessions dominate", price_drop: "Price drop", dead_letter_spike: "Rejected records",
    pipeline_stuck: "Pipeline stuck",
  };
  const announced = new Set(); // alert ids said aloud once (the banner itself is not a live region)
  function renderAlerts(alerts) {
    const active = (alerts && alerts.active) || [];
    const fresh = active.filter((a) => !announced.has(a.id));
    if (fresh.length) {
      fresh.forEach((a) => announced.add(a.id));
      $("alert-announce").textContent = "Alert: " + fresh.map((a) => RULE_LABELS[a.rule] || a.rule).join(", ");
    }
    const open = new Set(active.map((a) => a.id));
    for (const id of announced) if (!open.has(id)) announced.delete(id); // as many as are open
    const signature = JSON.stringify(active.map((a) => [a.id, a.summary, a.subject]));
    const list = $("alert-list");
    if (list.dataset.signature !== signature) {
      list.dataset.signature = signature;
      list.replaceChildren(...active.map((a) => {
        const li = document.createElement("li");
        const strong = document.createElement("strong");
        strong.textContent = (RULE_LABELS[a.rule] || a.rule) + (a.subject ? " · " + a.subject : "");
        li.append(strong, document.createTextNode(a.summary));
        li.dataset.rule = a.rule;
        return li;
      }));
      $("alert-banner").hidden = active.length === 0;
    }
    if (paused && shownOnce) return; // the held chart keeps the marks it was drawn with
    alertMarks = [];
    for (const a of (alerts && alerts.recent) || []) {
      alertMarks.push({ t: a.started_ms / 1000, label: RULE_LABELS[a.rule] || a.rule, end: false, rule: a.rule });
      if (a.resolved_ms != null) alertMarks.push({ t: a.ended_ms / 1000, label: "", end: true, rule: a.rule });
    }
  }

  function renderPrograms(programs) {
    const holder = $("health-programs");
    if (!programs || programs.length === 0) { holder.textContent = "unknown (not under supervisord)"; return; }
    const frag = document.createDocumentFragment();
    for (const p of programs) {
      const span = document.createElement("span");
      span.className = "program";
      span.dataset.state = p.state;
      span.dataset.program = p.name;
      const strong = document.createElement("strong");
      strong.textContent = p.state;
      span.append(document.createTextNode(p.name + " "), strong);
      frag.append(span);
    }
    holder.replaceChildren(frag);
  }

  let shownOnce = false; // a page opened paused still shows its first state
  function renderNow() { // what the operator just asked for is shown even while paused, which then holds it
    const wasPaused = paused;
    paused = false;
    render();
    if (chart && !latest) chart.setData(chartData()); // render() draws it once statistics are in
    paused = wasPaused;
  }
  function render() {
    if (!latest || (paused && shownOnce)) return;
    shownOnce = true;
    const s = latest;
    const slice = filter && sliceDoc ? sliceDoc.window : null;
    const w = slice || s.windows[detailKey()];
    setText("kpi-rate", !filter ? rateFmt.format(s.events_per_second) :
      slice ? rateFmt.format(slice.events_per_second) : "–");
    for (const t of TYPES) {
      const n = !filter ? s.totals[t] : slice ? slice.counts[t === "purchase" && slice.counts.purchase_units !== undefined ? "purchase_units" : t] : undefined;
      setText("kpi-total-" + t, n === undefined ? "–" : intFmt.format(n));
    }
    setText("filter-text", !filter ? "" : (filter.product !== undefined ? "Product: " +
      (filter.name || (slice && slice.filter.name) || filter.product)
      : "Category: " + categoryName(filter.category)) + " · the last " + WINDOW_LABELS[windowKey] + " (tiles, chart, funnel, tables)");
    const minutes = MINUTE_WINDOWS.has(windowKey) && minuteDoc && minuteDoc.window.label === windowKey ? minuteDoc : null;
    setText("series-note", filter ? "per-minute means of the complete minutes of this slice" :
      !MINUTE_WINDOWS.has(windowKey) ? "" : !minutes ? "loading…" :
      "per-minute means · " + intFmt.format(minutes.window.events) + " events" +
      (minutes.window.complete ? "" : " · history still loading"));
    setText("kpi-revenue", filter ? "–" : moneyFmt.format(s.revenue)); // revenue is not kept per slice
    const conversion = filter && !slice ? null : w.funnel.conversion_rate;
    setText("kpi-conversion", conversion == null ? "–" : pctFmt.format(conversion));
    setText("kpi-invalid", intFmt.format(s.invalid_total));

    const waiting = Boolean(filter) && !slice; // a slice was asked for and has not come yet: nothing of the whole shop
    const f = waiting ? { viewed: undefined, added: undefined, purchased: undefined } : w.funnel;
    const top = Math.max(1, f.viewed || 0);
    for (const stage of ["viewed", "added", "purchased"]) {
      const n = stage === "purchased" && f.purchased_units !== undefined ? f.purchased_units : f[stage];
      setText("funnel-" + stage, n === undefined ? "–" : intFmt.format(n));
      $("funnel-" + stage + "-bar").style.width = (n === undefined ? 0 : 100 * n / top).toFixed(1) + "%";
    }
    const basis = f.basis === "events" ? "Events, not sessions (sessions are not kept per category). " :
      f.basis === "product" ? "Views and units purchased of this product. " : "";
    setText("funnel-note", basis + (f.basket_abandonment_rate == null ? "" :
      "Removed vs added: " + pctFmt.format(f.basket_abandonment_rate) +
      (f.view_to_basket_rate == null ? "" : " · viewed → added: " + pctFmt.format(f.view_to_basket_rate))));
    renderTop("top-views", waiting ? [] : w.top_products.views);
    renderTop("top-purchases", waiting ? [] : w.top_products.purchases);
    renderCategories((s.windows[detailKey()] || {}).categories);

    const h = s.health || {};
    const kafka = $("health-kafka");
    kafka.textContent = h.kafka_up ? "up" : "down";
    kafka.className = h.kafka_up ? "good" : "bad";
    const pipeline = $("health-pipeline");
    const PIPELINE = {
      live: ["live", "good"], idle: ["idle (no events)", "good"], waiting: ["waiting for statistics", ""],
      kafka_down: ["unknown (Kafka down)", "bad"],
      stuck: ["stuck: partitions " + (h.stuck_partitions || []).join(", "), "bad"],
    }[h.pipeline] || ["unknown", ""];
    pipeline.textContent = PIPELINE[0];
    pipeline.className = PIPELINE[1];
    setText("health-age", h.last_update_age_s == null ? "never" : rateFmt.format(h.last_update_age_s) + " s ago");
    setText("health-lag", h.consumer_lag == null ? "unknown" : intFmt.format(h.consumer_lag));
    setText("health-late", intFmt.format(s.late_total));
    renderPrograms(h.programs);
    renderAlerts(s.alerts);
    const reasons = Object.entries(s.invalid_by_reason).map(([r, n]) => r.replace(/_/g, " ") + ": " + intFmt.format(n));
    setText("invalid-reasons", reasons.length ? "Invalid by reason — " + reasons.join(" · ") : "");
    if (chart) chart.setData(chartData());
    summarize(s, w, h);
  }

  // Screen readers hear a short summary, at most every 30 s (the tiles change 4 times a second).
  const SUMMARY_EVERY_MS = 30000;
  let summarizedAt = -Infinity;
  function summarize(s, w, h) {
    const now = Date.now();
    if (now - summarizedAt < SUMMARY_EVERY_MS) return;
    summarizedAt = now;
    const conversion = w.funnel.conversion_rate == null ? "no conversion yet" :
      "conversion " + pctFmt.format(w.funnel.conversion_rate);
    $("summary").textContent = rateFmt.format(s.events_per_second) + " events per second, " +
      intFmt.format(s.totals.purchase) + " purchases, " + conversion + ", pipeline " + (h.pipeline || "unknown") + ".";
  }

  function selectWindow(key) {
    windowKey = key;
    document.querySelectorAll(".window-picker button").forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.window === key)));
    setText("series-window", WINDOW_LABELS[key]);
    document.querySelectorAll(".detail-window").forEach((el) => { el.textContent = WINDOW_LABELS[detailKey()]; });
    $("download-series").href = "/api/series.csv?window=" + key;
    $("download-top").href = "/api/top.csv?window=" + detailKey();
    minuteDoc = null;
    fetchMinutes(true);
    sliceDoc = null;
    fetchSlice(true);
    saveView();
    renderNow(); // a new window is shown at once, even while paused
  }

  // ---- the view lives in the URL (window, theme, paused): a reload or a shared link opens the same view
  const THEMES = ["auto", "light", "dark"];
  let theme = "auto";
  let paused = false;
  let held = 0;
  function saveView() {
    const params = new URLSearchParams(location.search);
    params.set("window", windowKey);
    if (theme === "auto") params.delete("theme"); else params.set("theme", theme);
    if (paused) params.set("paused", "1"); else params.delete("paused");
    if (tailOpen) params.set("tail", tailType || "all"); else params.delete("tail");
    params.delete("category");
    params.delete("product");
    if (filter && filter.product !== undefined) params.set("product", filter.product);
    else if (filter) params.set("category", filter.category);
    window.history.replaceState(null, "", location.pathname + "?" + params.toString());
  }
  function setTheme(next) {
    theme = THEMES.includes(next) ? next : "auto";
    if (theme === "auto") delete document.documentElement.dataset.theme;
    else document.documentElement.dataset.theme = theme;
    $("theme").textContent = "Theme: " + theme;
    if (chart) { chart.destroy(); makeChart(); } // the chart's colours come from the theme's variables
    saveView();
  }
  function setPaused(next) {
    paused = next;
    $("pause").setAttribute("aria-pressed", String(paused));
    $("pause").textContent = paused ? "Resume" : "Pause";
    if (!paused) { held = 0; fetchMinutes(true); fetchSlice(true); render(); if (chart) chart.setData(chartData()); }
    setText("held", paused && held ? "+" + intFmt.format(held) + " updates" : "");
    saveView();
  }
  function holdOne() { // an update arrived while paused: counted, shown on resume
    if (!paused || !shownOnce) return;
    held += 1;
    setText("held", "+" + intFmt.format(held) + " updates");
  }

  // ---- dead letters (polled: the panel needs no push) -----------------------------------
  const clockFmt = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  function cell(text, className) {
    const td = document.createElement("td");
    if (className) td.className = className;
    td.textContent = text;
    return td;
  }
  function renderDeadLetters(d) {
    const minutes = $("dlq-minutes");
    const items = d.per_minute.slice(-10).reverse().map((m) => {
      const li = document.createElement("li");
      const parts = Object.entries(m.by_reason).map(([r, n]) => r.replace(/_/g, " ") + " " + intFmt.format(n));
      li.textContent = clockFmt.format(new Date(m.minute_s * 1000)).slice(0, 5) + " — " + parts.join(" · ");
      return li;
    });
    if (!items.length) { const li = document.createElement("li"); li.className = "note"; li.textContent = "none"; items.push(li); }
    minutes.replaceChildren(...items);
    const rows = d.recent.map((r) => {
      const tr = document.createElement("tr");
      tr.append(cell(clockFmt.format(new Date(r.time_ms))), cell(r.reason.replace(/_/g, " ")),
        cell((r.source_partition ?? "?") + " / " + (r.source_offset ?? "?"), "num"), cell(r.preview, "preview"));
      tr.title = r.detail || "";
      return tr;
    });
    $("dlq-recent").replaceChildren(...rows);
  }
  function pollDeadLetters() {
    if (paused) return;
    fetch("/api/deadletters", { cache: "no-store" }).then((r) => (r.ok ? r.json() : null))
      .then((d) => { if (d) renderDeadLetters(d); }).catch(() => {});
  }

  // ---- live event tail (pushed to the `tail` room only while the panel is open) ------------
  const TAIL_ROWS = 50;
  const TYPE_LABELS = { productview: "view", addtobasket: "added", removefrombasket: "removed", purchase: "purchase" };
  let tailOpen = false;
  let tailPaused = false;
  let tailHeld = 0;
  let tailType = "";
  let tailHeldShownAt = 0;
  function showTailHeld(force) { // a polite live region: rewritten at most once a second
    if (!force && Date.now() - tailHeldShownAt < 1000) return;
    tailHeldShownAt = Date.now();
    setText("tail-held", tailHeld ? "+" + intFmt.format(tailHeld) + " events" : "");
  }
  function timeText(ts) {
    const date = new Date(ts);
    return Number.isNaN(date.getTime()) ? "" : clockFmt.format(date);
  }
  function tailRow(e) {
    const tr = document.createElement("tr");
    tr.dataset.type = e.type;
    const price = typeof e.price === "number" ? moneyFmt.format(e.price) : "";
    tr.append(cell(timeText(e.ts)), cell(TYPE_LABELS[e.type] || e.type),
      cell(e.product_name || e.product_id || ""), cell(price, "num"),
      cell(e.quantity === null ? "" : String(e.quantity), "num"), cell(e.session || "", "id"), cell(e.user || "", "id"));
    return tr;
  }
  function onTail(payload) {
    const events = (payload.events || []).filter((e) => !tailType || e.type === tailType);
    if (!events.length) return;
    if (tailPaused) { tailHeld += events.length; showTailHeld(false); return; }
    const body = $("tail-rows");
    body.prepend(...events.map(tailRow));
    while (body.rows.length > TAIL_ROWS) body.deleteRow(-1);
  }
  function setTailOpen(next) {
    tailOpen = next;
    $("tail-toggle").setAttribute("aria-expanded", String(tailOpen));
    $("tail-toggle").textContent = tailOpen ? "Hide" : "Show";
    $("tail-body").hidden = !tailOpen;
    $("tail-pause").disabled = $("tail-type").disabled = !tailOpen;
    if (!tailOpen) { $("tail-rows").replaceChildren(); setTailPaused(false); }
    if (socket.connected) socket.emit("tail", { open: tailOpen });
    saveView();
  }
  function setTailPaused(next) {
    tailPaused = next;
    $("tail-pause").setAttribute("aria-pressed", String(tailPaused));
    $("tail-pause").textContent = tailPaused ? "Resume" : "Pause";
    if (!tailPaused) { tailHeld = 0; showTailHeld(true); }
  }
  function setTailType(next) {
    tailType = Object.hasOwn(TYPE_LABELS, next) ? next : "";
    $("tail-type").value = tailType;
    $("tail-rows").replaceChildren();
    tailHeld = 0;
    showTailHeld(true);
    saveView();
  }

  // ---- wiring ---------------------------------------------------------------------------
  const initial = new URLSearchParams(location.search);
  document.querySelectorAll(".window-picker button").forEach((b) => b.addEventListener("click", () => selectWindow(b.dataset.window)));
  $("pause").addEventListener("click", () => setPaused(!paused));
  $("theme").addEventListener("click", () => setTheme(THEMES[(THEMES.indexOf(theme) + 1) % THEMES.length]));
  $("download-png").addEventListener("click", (e) => {
    const canvas = $("chart").querySelector("canvas");
    if (!canvas) { e.preventDefault(); return; }
    e.currentTarget.href = canvas.toDataURL("image/png");
  });
  makeChart();
  setTheme(initial.get("theme"));
  if (WINDOW_SECONDS[initial.get("window")]) selectWindow(initial.get("window")); else saveView();
  if (initial.get("paused") === "1") setPaused(true);
  window.addEventListener("resize", () => chart && chart.setSize({ width: Math.max(300, $("chart").clientWidth), height: 260 }));

  // Delta updates (eventdash/dashboard/delta.py): a whole document with `seq` as the base, then only
  // changes; a delta whose base is not ours means one was missed: ask for a whole document again.
  let seq = null;
  let resyncAsked = false;
  function applyPatch(node, patch) {
    for (const [key, entry] of Object.entries(patch)) {
      if (Array.isArray(entry)) { if (entry.length) node[key] = entry[0]; else delete node[key]; }
      else if (entry !== null && typeof entry === "object") applyPatch(node[key], entry);
      else node[key] = entry;
    }
  }
  function applyDelta(doc, delta) {
    applyPatch(doc, delta.patch);
    for (const row of delta.series) history.set(row[0], row.slice(1));
    pruneHistory();
  }
  function received() {
    lastMessageAt = Date.now();
    if (latest) renderAlerts(latest.alerts); // alerts show even on a paused page
    holdOne();
    render();
    refreshConnection();
  }

  const socket = io({ transports: ["websocket", "polling"], reconnectionDelayMax: 5000, auth: { delta: true } });
  socket.on("connect", () => { connected = true; lastMessageAt = Date.now(); setConnection("live", "live"); });
  socket.on("disconnect", () => { connected = false; setConnection("reconnecting", "reconnecting…"); });
  socket.io.on("reconnect_attempt", () => setConnection("reconnecting", "reconnecting…"));
  socket.on("connect_error", () => { connected = false; setConnection("reconnecting", "reconnecting…"); });
  socket.on("stats", (payload) => {
    latest = payload;
    if (payload.seq !== undefined) { seq = payload.seq; resyncAsked = false; }
    mergeSeries(payload.series);
    received();
  });
  socket.on("stats_delta", (delta) => {
    if (!latest || seq !== delta.base) {
      if (!resyncAsked) { resyncAsked = true; socket.emit("resync"); }
      return;
    }
    applyDelta(latest, delta);
    seq = latest.seq = delta.seq;
    received();
  });
  socket.on("connect", () => {
    seq = null; resyncAsked = false;
    if (tailOpen) socket.emit("tail", { open: true });
    fetchMinutes(false); // a reconnected page gets the whole per-minute range again at once (held if paused)
    fetchSlice(false);
  });
  socket.on("tail", onTail);
  $("tail-toggle").addEventListener("click", () => setTailOpen(!tailOpen));
  $("tail-pause").addEventListener("click", () => setTailPaused(!tailPaused));
  $("tail-type").addEventListener("change", (e) => setTailType(e.target.value));
  if (initial.get("tail")) { setTailType(initial.get("tail")); setTailOpen(true); } else setTailOpen(false);
  setInterval(() => { refreshConnection(); if (chart && !paused) chart.setData(chartData()); }, 1000);
  pollDeadLetters();
  setInterval(pollDeadLetters, 5000);
  setInterval(() => { if (!paused) fetchMinutes(false); }, MINUTE_REFRESH_MS);
  setInterval(() => { if (!paused) fetchSlice(false); }, SLICE_REFRESH_MS);
  $("filter-clear").addEventListener("click", () => setFilter(null));
  if (initial.has("product") && initial.get("product")) setFilter({ product: initial.get("product") });
  else if (initial.has("category")) setFilter({ category: initial.get("category") });
  window.eventdash = { get latest() { return latest; }, get chart() { return chart; }, get minuteDoc() { return minuteDoc; },
    get sliceDoc() { return sliceDoc; }, get alertMarks() { return alertMarks; },
    completeThrough, socket };
})();
