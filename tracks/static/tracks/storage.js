// The admin's storage migration page: renders the status and polls for it.
"use strict";

(function () {
  const mb = (bytes) => (bytes / 1e6).toFixed(1) + " MB";
  const pct = (share) => (share * 100).toFixed(1) + "%";
  const eta = (s) => (s === null ? "?" : s < 60 ? s + " s" : Math.round(s / 60) + " min");

  function cell(text) {
    const td = document.createElement("td");
    td.textContent = text;
    return td;
  }

  function bar(share) {
    const outer = document.createElement("div");
    outer.className = "veza-bar";
    const inner = document.createElement("div");
    inner.style.width = pct(share);
    outer.appendChild(inner);
    const td = document.createElement("td");
    td.appendChild(outer);
    td.appendChild(document.createTextNode(" " + pct(share)));
    return td;
  }

  function fill(id, rows, render) {
    const body = document.querySelector("#" + id + " tbody");
    body.replaceChildren();
    if (!rows.length) {
      const tr = document.createElement("tr");
      const td = cell("None");
      td.colSpan = 10;
      tr.appendChild(td);
      body.appendChild(tr);
      return;
    }
    for (const row of rows) {
      const tr = document.createElement("tr");
      render(row).forEach((td) => tr.appendChild(td));
      tr.dataset.id = row.id || row.backend;
      body.appendChild(tr);
    }
  }

  function render(status) {
    const o = status.overview;
    fill("storage-overview", o.backends, (b) => [cell(b.label), cell(b.count), cell(mb(b.bytes))]);
    document.getElementById("s3-share").textContent =
      pct(o.s3_share_count) + " of tracks, " + pct(o.s3_share_bytes) + " of bytes on S3";
    const shareBar = document.getElementById("s3-share-bar");
    shareBar.firstElementChild.style.width = pct(o.s3_share_bytes);
    shareBar.setAttribute("aria-valuenow", (o.s3_share_bytes * 100).toFixed(1));
    fill("running-runs", status.running, (r) => [
      cell(r.id), cell(r.target), cell(r.host), bar(r.progress),
      cell(r.done + " / " + r.selected), cell(r.files_per_second),
      cell(mb(r.bytes_per_second)), cell(eta(r.eta_seconds)), cell(r.failed),
    ]);
    fill("failed-rows", status.failed_rows, (t) => [cell(t.title), cell(t.owner), cell(t.target), cell(t.error)]);
    fill("past-runs", status.past, (r) => [
      cell(r.id), cell(r.target), cell(r.status), cell(r.moved), cell(r.already_there),
      cell(r.failed), cell(mb(r.bytes)), cell(r.files_per_second),
      cell(new Date(r.started_at).toLocaleString()), cell(r.started_by),
    ]);
    document.getElementById("refreshed-at").textContent =
      "Last refreshed " + new Date().toLocaleTimeString() + ".";
  }

  async function poll(url) {
    try {
      const response = await fetch(url, { credentials: "same-origin", cache: "no-store" });
      if (response.ok) render(await response.json());
    } catch (error) {
      document.getElementById("refreshed-at").textContent = "Refresh failed: " + error;
    }
    setTimeout(() => poll(url), 2000);
  }

  document.addEventListener("DOMContentLoaded", () => {
    const page = document.getElementById("storage-page");
    render(JSON.parse(document.getElementById("storage-status").textContent));
    setTimeout(() => poll(page.dataset.statusUrl), 2000);
  });
})();
