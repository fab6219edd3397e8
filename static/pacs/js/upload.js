/* Send page: drag and drop files, folders or zips; each file is POSTed on its own. */
(function () {
  "use strict";
  const zone = document.getElementById("dropzone");
  if (!zone) return;
  const list = document.getElementById("upload-list");
  const summary = document.getElementById("upload-summary");
  const url = zone.dataset.uploadUrl;
  const S = window.PACS.strings;
  const totals = { files: 0, stored: 0, failed: 0 };
  const queue = [];
  let active = 0;
  const PARALLEL = 3;

  function report() {
    summary.textContent = `${totals.stored} ${S.uploaded || "uploaded"}, ${totals.failed} ${S.rejected || "rejected"} / ${totals.files}`;
  }

  function addLine(name) {
    const li = document.createElement("li");
    li.textContent = `${name} …`;
    list.prepend(li);
    return li;
  }

  async function send(file, name) {
    const li = addLine(name);
    const body = new FormData();
    body.append("file", file, name.split("/").pop() || "upload.dcm");
    try {
      const response = await fetch(url, {
        method: "POST", body, credentials: "same-origin",
        headers: { "X-CSRFToken": window.PACS.csrf() },
      });
      const data = await response.json();
      if (data.error) throw new Error(data.error);
      totals.stored += data.stored;
      totals.failed += data.failed;
      const errors = data.results.filter((r) => !r.ok).map((r) => `${r.status} ${r.error}`);
      li.textContent = `${name}: ${data.stored} ✓` + (data.failed ? `, ${data.failed} ✗ ${errors.slice(0, 2).join("; ")}` : "");
      li.className = data.failed ? "upload-failed" : "upload-ok";
    } catch (err) {
      totals.failed += 1;
      li.textContent = `${name}: ✗ ${err.message}`;
      li.className = "upload-failed";
    }
    report();
  }

  function pump() {
    while (active < PARALLEL && queue.length) {
      const [file, name] = queue.shift();
      active += 1;
      send(file, name).finally(() => { active -= 1; pump(); });
    }
  }

  function enqueue(file, name) {
    totals.files += 1;
    queue.push([file, name || file.webkitRelativePath || file.name]);
    report();
    pump();
  }

  // Folders dropped: walk the FileSystemEntry tree.
  async function walk(entry, path) {
    if (entry.isFile) {
      await new Promise((resolve) => entry.file((file) => { enqueue(file, path + file.name); resolve(); }, resolve));
    } else if (entry.isDirectory) {
      const reader = entry.createReader();
      let batch;
      do {
        batch = await new Promise((resolve) => reader.readEntries(resolve, () => resolve([])));
        for (const child of batch) await walk(child, `${path}${entry.name}/`);
      } while (batch.length);
    }
  }

  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("dragover"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("dragover"));
  zone.addEventListener("drop", async (e) => {
    e.preventDefault();
    zone.classList.remove("dragover");
    const items = Array.from(e.dataTransfer.items || []);
    const entries = items.map((i) => i.webkitGetAsEntry && i.webkitGetAsEntry()).filter(Boolean);
    if (entries.length) {
      for (const entry of entries) await walk(entry, "");
    } else {
      Array.from(e.dataTransfer.files).forEach((f) => enqueue(f));
    }
  });
  for (const id of ["file-input", "folder-input"]) {
    document.getElementById(id).addEventListener("change", (e) => {
      Array.from(e.target.files).forEach((f) => enqueue(f));
      e.target.value = "";
    });
  }
  zone.addEventListener("keydown", (e) => { if (e.key === "Enter") document.getElementById("file-input").click(); });
})();
