/* Logs page: live tail (polls for lines appended since the last offset). */
(function () {
  "use strict";
  const config = JSON.parse(document.getElementById("tail-config").textContent);
  const view = document.getElementById("logview");
  const live = document.getElementById("live-tail");
  let offset = config.offset;
  view.scrollTop = view.scrollHeight;
  window.PACS.poll(async () => {
    if (!live.checked) return true;
    const params = new URLSearchParams({ offset, level: config.level, q: config.q });
    const response = await fetch(`${config.url}?${params}`, { credentials: "same-origin" });
    if (!response.ok) return true;
    const data = await response.json();
    const atBottom = view.scrollTop + view.clientHeight >= view.scrollHeight - 20;
    if (data.offset < offset) view.replaceChildren(); // rotated: the file started again
    offset = data.offset;
    if (data.lines.length) view.querySelector(".lv-empty")?.remove();
    for (const line of data.lines) {
      const div = document.createElement("div");
      div.className = `lv-${line.level}`;
      div.textContent = line.text;
      view.appendChild(div);
    }
    while (view.childElementCount > 20000) view.firstElementChild.remove();
    if (atBottom) view.scrollTop = view.scrollHeight;
    return true;
  }, 2000);
})();
