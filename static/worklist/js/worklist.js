/* Worklist item form: "Add a step" clones the formset's empty form (no inline script: CSP). */
(function () {
  "use strict";
  const button = document.getElementById("add-step");
  const template = document.getElementById("step-template");
  const container = document.getElementById("step-forms");
  if (!button || !template || !container) return;
  const prefix = button.dataset.prefix;
  const total = document.getElementById(`id_${prefix}-TOTAL_FORMS`);
  const maximum = document.getElementById(`id_${prefix}-MAX_NUM_FORMS`);

  button.addEventListener("click", () => {
    const index = parseInt(total.value, 10);
    if (maximum && index >= parseInt(maximum.value, 10)) return;
    const html = template.innerHTML.replace(/__prefix__/g, String(index));
    const holder = document.createElement("div");
    holder.innerHTML = html; // our own server-rendered, autoescaped empty form
    const fieldset = holder.firstElementChild;
    container.appendChild(fieldset);
    total.value = String(index + 1);
    fieldset.querySelector("input[type=date], input, select")?.focus();
  });

  // A step marked for removal is greyed out (it is removed when the form is saved).
  container.addEventListener("change", (event) => {
    const box = event.target;
    if (box.name && box.name.endsWith("-DELETE")) {
      box.closest("[data-step-form]")?.classList.toggle("wl-removed", box.checked);
    }
  });
})();
