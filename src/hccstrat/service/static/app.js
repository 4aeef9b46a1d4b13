// hccstrat pages: upload files as the raw request body (streamed by the server) and
// follow the ingest job until it ends. No third-party code.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const csrf = document.querySelector("main").dataset.csrf;
  for (const form of document.querySelectorAll("form.upload")) {
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const out = form.querySelector("output");
      const file = form.querySelector("input[type=file]").files[0];
      if (!file) { out.textContent = "Choose a file first."; return; }
      out.textContent = "Uploading…";
      const resp = await fetch(form.dataset.url, {
        method: "POST", body: file, credentials: "same-origin",
        headers: { "Content-Type": form.dataset.type, "X-CSRF-Token": csrf },
      });
      const body = await resp.json();
      if (!resp.ok) { out.textContent = "Upload failed: " + body.message; return; }
      for (let i = 0; i < 600; i++) {
        const job = await (await fetch("/api/jobs/" + body.id, { credentials: "same-origin" })).json();
        out.textContent = `Processing: ${job.status} (${Math.round(100 * job.progress)} %)`;
        if (job.status === "done") { window.location.reload(); return; }
        if (job.status === "failed") { out.textContent = "Processing failed: " + job.message; return; }
        await new Promise((r) => setTimeout(r, 500));
      }
    });
  }
});
