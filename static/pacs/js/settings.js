/* Settings page: more rows in the allow lists; the listener restart outcome once runscp answers. */
(function () {
  "use strict";

  // "Add another caller": a copy of the formset's empty row with the next index.
  for (const button of document.querySelectorAll(".caller-add")) {
    button.addEventListener("click", () => {
      const prefix = button.dataset.prefix;
      const section = button.closest(".caller-list");
      const total = document.getElementById(`id_${prefix}-TOTAL_FORMS`);
      const max = Number(document.getElementById(`id_${prefix}-MAX_NUM_FORMS`).value || 50);
      const index = Number(total.value);
      if (index >= max) return;
      const template = section.querySelector("template.caller-template");
      const row = template.content.firstElementChild.cloneNode(true);
      for (const input of row.querySelectorAll("input")) {
        input.name = input.name.replace("__prefix__", String(index));
        input.id = input.id.replace("__prefix__", String(index));
        input.value = "";
      }
      section.querySelector("table.callers tbody").appendChild(row);
      total.value = String(index + 1);
      row.querySelector("input")?.focus();
    });
  }

  // A restart runscp has not answered yet: fetch this page again until the outcome is there
  // (the panel is replaced; whatever the user is typing in the form stays).
  const panel = document.getElementById("restart-result");
  if (panel && panel.dataset.pending) {
    const started = Date.now();
    window.PACS.poll(async () => {
      const response = await fetch(window.location.href, { credentials: "same-origin" });
      if (!response.ok) return Date.now() - started < 60000;
      const page = new DOMParser().parseFromString(await response.text(), "text/html");
      const fresh = page.getElementById("restart-result");
      if (fresh && !fresh.dataset.pending) {
        document.getElementById("restart-result").replaceWith(document.adoptNode(fresh));
        return false;
      }
      return Date.now() - started < 60000;
    }, 1500);
  }
})();
