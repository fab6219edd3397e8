/* Status page: refreshes every few seconds from /status/data/. */
(function () {
  "use strict";
  const url = document.getElementById("status-script").dataset.url;
  const initial = JSON.parse(document.getElementById("status-initial").textContent);
  const esc = window.PACS.escape;

  function get(obj, path) {
    return path.split(".").reduce((o, k) => (o == null ? undefined : o[k]), obj);
  }

  function bytes(n) {
    if (!n) return "0 B";
    const units = ["B", "KB", "MB", "GB", "TB"];
    const i = Math.min(units.length - 1, Math.floor(Math.log(n) / Math.log(1024)));
    return `${(n / 1024 ** i).toFixed(1)} ${units[i]}`;
  }

  function chart(values) {
    const svg = document.getElementById("ingest-chart");
    const max = Math.max(1, ...values);
    const w = 600 / values.length;
    const parts = [`<line class="axis" x1="0" y1="119" x2="600" y2="119"></line>`];
    values.forEach((v, i) => {
      const h = Math.round((v / max) * 110);
      parts.push(`<rect class="bar" x="${(i * w + 1).toFixed(1)}" y="${119 - h}" width="${(w - 2).toFixed(1)}" height="${h}"><title>${v}</title></rect>`);
    });
    svg.innerHTML = parts.join("");
    const total = values.reduce((a, b) => a + b, 0);
    document.getElementById("ingest-total").textContent = `${total} / 60 min · max ${max}/min`;
  }

  function render(data) {
    document.querySelectorAll("[data-k]").forEach((el) => {
      const value = get(data, el.dataset.k);
      if (value !== undefined) el.textContent = value;
    });
    document.getElementById("memory-used").textContent = bytes(data.system.memory_available);
    for (const l of data.listeners) {
      const row = document.querySelector(`#listener-table tr[data-service='${l.service}']`);
      if (!row) continue;
      const badge = row.querySelector(".listener-state");
      badge.className = `badge listener-state ${l.running ? "badge-up" : "badge-down"}`;
      badge.textContent = l.running ? (window.PACS.strings.up || "up") : (window.PACS.strings.down || "down");
      row.querySelector(".listener-assocs").textContent = l.active_associations;
      row.querySelector(".listener-error").textContent = l.error;
    }
    const body = document.querySelector("#association-table tbody");
    body.innerHTML = data.associations.map((a) => `<tr><td class="nowrap">${esc(new Date(a.started_at).toLocaleString())}</td><td>${esc(a.service)}</td><td class="mono">${esc(a.calling_aet)}</td><td class="mono">${esc(a.called_aet)}</td><td>${esc(a.peer)}</td><td><span class="badge badge-${esc(a.status)}">${esc(a.status)}</span></td><td class="num">${esc(a.instances)}</td><td>${esc(a.reason)}</td></tr>`).join("");
    chart(data.ingest_per_minute);
    document.getElementById("status-updated").textContent = `· ${new Date().toLocaleTimeString()}`;
  }

  render(initial);
  window.PACS.poll(async () => {
    const response = await fetch(url, { credentials: "same-origin" });
    if (response.ok) render(await response.json());
    return true;
  }, 3000);
})();
