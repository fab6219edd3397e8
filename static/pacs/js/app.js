/* Shared page behaviour (no inline script anywhere: the CSP forbids it). */
(function () {
  "use strict";
  const strings = JSON.parse(document.getElementById("i18n-strings")?.textContent || "{}");
  window.PACS = { strings, csrf: csrfToken, escape, poll, rowExpansion };

  function csrfToken() {
    const input = document.querySelector("input[name=csrfmiddlewaretoken]");
    if (input) return input.value;
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  /* A ▸/▾ toggle in a table row: closing removes the expansion row below it and returns null;
     opening inserts one (class "expansion" plus extraClass) and returns its cell, showing "loading". */
  function rowExpansion(toggle, extraClass = "") {
    const row = toggle.closest("tr");
    if (toggle.getAttribute("aria-expanded") === "true") {
      const next = row.nextElementSibling;
      if (next?.classList.contains(extraClass || "expansion")) next.remove();
      toggle.setAttribute("aria-expanded", "false");
      toggle.textContent = "▸";
      return null;
    }
    toggle.setAttribute("aria-expanded", "true");
    toggle.textContent = "▾";
    const expansion = document.createElement("tr");
    expansion.className = extraClass ? `expansion ${extraClass}` : "expansion";
    const cell = document.createElement("td");
    cell.colSpan = row.children.length;
    cell.textContent = strings.loading || "…";
    expansion.appendChild(cell);
    row.after(expansion);
    return cell;
  }

  function escape(text) {
    const div = document.createElement("div");
    div.textContent = text == null ? "" : String(text);
    return div.innerHTML;
  }

  /* Call fn every ms while the page is visible; fn returns false to stop. */
  function poll(fn, ms) {
    let timer = null;
    async function tick() {
      if (document.visibilityState === "visible") {
        let keep = true;
        try { keep = (await fn()) !== false; } catch (err) { console.warn(err); }
        if (!keep) return;
      }
      timer = setTimeout(tick, ms);
    }
    timer = setTimeout(tick, ms);
    return () => clearTimeout(timer);
  }

  // Selects that submit their form on change (language switch).
  document.querySelectorAll("select[data-autosubmit]").forEach((select) => {
    select.addEventListener("change", () => select.form.submit());
  });

  // Selects that set one query-string parameter (per page).
  document.querySelectorAll("select[data-querystring-param]").forEach((select) => {
    select.addEventListener("change", () => {
      const url = new URL(window.location.href);
      url.searchParams.set(select.dataset.querystringParam, select.value);
      url.searchParams.delete("page");
      window.location.assign(url.toString());
    });
  });

  // Forms that ask before submitting (deletes).
  document.addEventListener("submit", (event) => {
    const form = event.target;
    const question = form.dataset.confirm;
    if (question && !window.confirm(question)) event.preventDefault();
  });

  // Study list: select all, selection count, series expansion.
  const selectAll = document.getElementById("select-all");
  const boxes = () => Array.from(document.querySelectorAll(".study-select"));
  function selectionChanged() {
    const n = boxes().filter((b) => b.checked).length;
    const label = document.getElementById("selection-count");
    if (label) label.textContent = n ? `${n} ✓` : "";
    document.querySelectorAll("[data-requires-selection]").forEach((b) => { b.disabled = n === 0; });
  }
  if (selectAll) {
    selectAll.addEventListener("change", () => { boxes().forEach((b) => { b.checked = selectAll.checked; }); selectionChanged(); });
    document.addEventListener("change", (e) => { if (e.target.classList?.contains("study-select")) selectionChanged(); });
    selectionChanged();
  }
  document.addEventListener("click", async (event) => {
    const toggle = event.target.closest(".expand-toggle");
    if (!toggle) return;
    const cell = rowExpansion(toggle);
    if (!cell) return;
    try {
      const response = await fetch(toggle.dataset.seriesUrl, { credentials: "same-origin" });
      if (!response.ok) throw new Error(response.status);
      cell.innerHTML = await response.text(); // server-rendered, autoescaped fragment
    } catch (err) {
      cell.textContent = `${strings.failed || "Failed"} (${err.message})`;
    }
  });

  // Live job progress: any table with data-job-data-url polls unfinished rows.
  document.querySelectorAll("table[data-job-data-url]").forEach((table) => {
    const url = table.dataset.jobDataUrl;
    poll(async () => {
      const rows = Array.from(table.querySelectorAll("tr.job-row[data-finished='0']"));
      if (!rows.length) return true;
      const query = rows.map((r) => `id=${encodeURIComponent(r.dataset.jobId)}`).join("&");
      const response = await fetch(`${url}?${query}`, { credentials: "same-origin" });
      if (!response.ok) return true;
      const data = await response.json();
      for (const job of data.jobs) {
        const row = table.querySelector(`tr.job-row[data-job-id='${job.id}']`);
        if (!row) continue;
        const badge = row.querySelector(".job-state");
        badge.textContent = job.state_label;
        badge.className = `badge badge-${job.state} job-state`;
        const bar = row.querySelector(".job-progress");
        bar.max = job.total || 1;
        bar.value = job.done;
        row.querySelector(".job-counts").textContent = `${job.done}/${job.total}` + (job.failed ? ` · ${job.failed} ✗` : "");
        row.querySelector(".job-errors").replaceChildren(...job.errors.slice(-3).map((e) => {
          const d = document.createElement("div"); d.className = "muted"; d.textContent = e; return d;
        }));
        if (job.finished) {
          row.dataset.finished = "1";
          row.querySelector("form[action*='/cancel/']")?.remove();
        }
      }
      return true;
    }, 1000);
  });
})();
