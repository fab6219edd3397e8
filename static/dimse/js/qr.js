/* Query/Retrieve page: query job waiting state, series expansion, retrieve jobs with live progress.
 * HTML only ever comes from our own server-rendered (autoescaped) fragments; remote values
 * that the script writes itself go through textContent. No inline script (CSP). */
(function () {
  "use strict";
  const PACS = window.PACS;
  const strings = JSON.parse(document.getElementById("qr-strings")?.textContent || "{}");
  const results = document.getElementById("qr-results");
  const methodSelect = document.getElementById("qr-method");
  const retrievals = document.getElementById("qr-retrievals");
  const message = document.getElementById("qr-retrieve-message");
  const format = (text, values) => String(text || "").replace(/%\((\w+)\)s/g, (_, key) => values[key] ?? "");

  async function getJSON(url) {
    const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(String(response.status));
    return response.json();
  }

  async function postForm(url, body) {
    const response = await fetch(url, {
      method: "POST", body, credentials: "same-origin",
      headers: { "X-CSRFToken": PACS.csrf(), Accept: "application/json" },
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(data.error || String(response.status));
    return data;
  }

  /* Poll a query job's JSON until it is finished; resolves with the final state. */
  function watchQuery(url, onState) {
    return new Promise((resolve) => {
      PACS.poll(async () => {
        const data = await getJSON(url);
        if (onState) onState(data);
        if (!data.finished) return true;
        resolve(data);
        return false;
      }, 700);
    });
  }

  function errorPanel(data) {
    const panel = document.createElement("div");
    if (data.state === "cancelled") {
      panel.className = "panel";
      panel.textContent = strings.cancelled;
      return panel;
    }
    panel.className = "panel qr-error";
    panel.id = "qr-error";
    panel.setAttribute("role", "alert");
    const title = document.createElement("strong");
    title.textContent = strings.queryFailed;
    const text = document.createElement("span");
    text.className = "qr-error-text";
    text.textContent = ` ${data.error || data.state_label}`;
    const hint = document.createElement("div");
    hint.className = "muted qr-error-hint";
    hint.textContent = strings.errorHint || "";
    panel.append(title, text, hint);
    return panel;
  }

  // Waiting state of the study query, then its results (or its error).
  if (results && results.dataset.finished === "0") {
    const started = Date.now();
    watchQuery(results.dataset.statusUrl, (data) => {
      const badge = results.querySelector(".qr-waiting-state");
      if (badge) {
        badge.textContent = data.state_label;
        badge.className = `badge badge-${data.state} qr-waiting-state`;
      }
      const hint = results.querySelector(".qr-waiting-hint");
      if (!hint) return;
      if (data.state === "pending" && Date.now() - started > 8000) hint.textContent = strings.noWorker;
      else if (data.state === "retrying") hint.textContent = data.error; // a job made elsewhere, with retries
      else hint.textContent = "";
    }).then((data) => {
      results.dataset.finished = "1";
      results.dataset.state = data.state;
      if (data.state === "success") {
        results.innerHTML = data.html; // server-rendered, autoescaped fragment
        selectionChanged();
      } else {
        results.replaceChildren(errorPanel(data));
      }
    });
  }

  // Selection of studies for "Retrieve selected".
  function selectionChanged() {
    const boxes = Array.from(document.querySelectorAll("#qr-study-table .qr-select"));
    const n = boxes.filter((box) => box.checked).length;
    const button = document.getElementById("qr-retrieve-selected");
    if (button) button.disabled = n === 0;
    const label = document.getElementById("qr-selection-count");
    if (label) label.textContent = n ? format(strings.selected, { n }) : "";
  }
  document.addEventListener("change", (event) => {
    const target = event.target;
    if (target.id === "qr-select-all") {
      document.querySelectorAll("#qr-study-table .qr-select").forEach((box) => { box.checked = target.checked; });
    }
    if (target.id === "qr-select-all" || target.classList.contains("qr-select")) selectionChanged();
  });
  selectionChanged();

  // Expand a study to its series: a series-level query job on the same node.
  document.addEventListener("click", async (event) => {
    const toggle = event.target.closest(".qr-expand");
    if (!toggle) return;
    const row = toggle.closest("tr");
    const cell = window.PACS.rowExpansion(toggle, "qr-series-expansion");
    if (!cell) return;
    const body = new FormData();
    body.append("query", row.closest("[data-query-job]").dataset.queryJob);
    body.append("uid", toggle.dataset.uid);
    try {
      const created = await postForm(results.dataset.seriesUrl, body);
      const data = await watchQuery(created.url);
      if (data.state === "success") cell.innerHTML = data.html; // server-rendered, autoescaped
      else cell.replaceChildren(errorPanel(data));
    } catch (err) {
      cell.textContent = `${strings.failed} (${err.message})`;
    }
  });

  // Retrieve studies/series: jobs created without leaving the page.
  document.addEventListener("submit", async (event) => {
    const form = event.target;
    if (!form.classList || !form.classList.contains("qr-retrieve-form")) return;
    event.preventDefault();
    const body = new FormData(form, event.submitter);
    body.set("method", methodSelect ? methodSelect.value : "move");
    if (message) message.textContent = "";
    try {
      const data = await postForm(form.action, body);
      addRetrievals(data);
      document.querySelectorAll(".qr-select, #qr-select-all").forEach((box) => { box.checked = false; });
      selectionChanged();
    } catch (err) {
      if (message) message.textContent = `${strings.failed}: ${err.message}`;
    }
  });

  function addRetrievals(data) {
    if (!retrievals) return;
    const tbody = retrievals.tBodies[0];
    tbody.querySelector(".qr-no-retrievals")?.remove();
    const holder = document.createElement("tbody");
    holder.innerHTML = data.html; // server-rendered, autoescaped rows
    tbody.prepend(...Array.from(holder.children));
    data.jobs.forEach(markResultRow);
  }

  /* The archive cell of the result row a retrieve job is about: progress, then the link. */
  function markResultRow(job) {
    const selector = job.series_uid
      ? `tr.qr-series-row[data-series-uid="${CSS.escape(job.series_uid)}"]`
      : `tr.qr-study-row[data-study-uid="${CSS.escape(job.study_uid)}"]`;
    document.querySelectorAll(selector).forEach((row) => {
      const cell = row.querySelector(".qr-archive");
      if (!cell) return;
      if (job.archive_url) {
        cell.replaceChildren(archiveLink(job.archive_url));
        // A whole study arrived: so did the series of its open expansion.
        const expansion = row.nextElementSibling;
        if (!job.series_uid && expansion?.classList.contains("qr-series-expansion")) {
          expansion.querySelectorAll("tr.qr-series-row").forEach((seriesRow) => {
            const url = `${job.archive_url}?series=${encodeURIComponent(seriesRow.dataset.seriesUid)}`;
            seriesRow.querySelector(".qr-archive")?.replaceChildren(archiveLink(url));
          });
        }
      } else if (job.finished) {
        const badge = document.createElement("span");
        badge.className = `badge badge-${job.state}`;
        badge.textContent = job.state_label;
        cell.replaceChildren(badge);
      } else {
        const bar = document.createElement("progress");
        bar.max = job.total || 1;
        bar.value = job.done;
        const badge = document.createElement("span");
        badge.className = `badge badge-${job.state}`;
        badge.textContent = job.total ? `${job.done}/${job.total}` : job.state_label;
        cell.replaceChildren(bar, " ", badge);
      }
    });
  }

  function archiveLink(url) {
    const link = document.createElement("a");
    link.className = "badge badge-ok qr-in-archive";
    link.href = url;
    link.textContent = strings.inArchive;
    return link;
  }

  function updateRetrieval(job) {
    const row = retrievals.querySelector(`tr.qr-retrieval[data-job-id="${Number(job.id)}"]`);
    if (!row) return;
    const badge = row.querySelector(".qr-state");
    badge.textContent = job.state_label;
    badge.className = `badge badge-${job.state} qr-state`;
    const bar = row.querySelector(".qr-progress");
    bar.max = job.total || 1;
    bar.value = job.done;
    row.querySelector(".qr-counts").textContent = `${job.done}/${job.total}` + (job.failed ? ` · ${job.failed} ✗` : "");
    row.querySelector(".qr-errors").replaceChildren(...job.errors.slice(-3).map((text) => {
      const div = document.createElement("div");
      div.className = "muted";
      div.textContent = text;
      return div;
    }));
    const linkCell = row.querySelector(".qr-link");
    if (job.archive_url && !linkCell.querySelector("a")) {
      const link = document.createElement("a");
      link.className = "btn btn-small btn-primary";
      link.href = job.archive_url;
      link.textContent = strings.open;
      linkCell.replaceChildren(link);
    }
    if (job.finished) row.dataset.finished = "1";
    markResultRow(job);
  }

  // Live progress of unfinished retrievals.
  if (retrievals) {
    PACS.poll(async () => {
      const rows = Array.from(retrievals.querySelectorAll("tr.qr-retrieval[data-finished='0']"));
      if (!rows.length) return true;
      const query = rows.map((row) => `id=${encodeURIComponent(row.dataset.jobId)}`).join("&");
      const data = await getJSON(`${retrievals.dataset.url}?${query}`);
      data.jobs.forEach(updateRetrieval);
      return true;
    }, 1000);
  }
})();
