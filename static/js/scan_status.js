// Keeps the scan statuses on the page current without reloading: polls the status endpoint
// for the scans that are still queued or processing, and stops when all are settled (the
// server says which: data-final on each row, `final` in each answer).
(function () {
  "use strict";
  var table = document.getElementById("scan-status");
  if (!table || !window.fetch) return;
  var url = table.dataset.statusUrl;
  var pollEveryMs = 2000;

  function rows() { return Array.prototype.slice.call(table.querySelectorAll("tr[data-scan-id]")); }

  function pending() {
    return rows().filter(function (row) { return row.dataset.final !== "true"; });
  }

  function show(row, scan) {
    var badge = row.querySelector("[data-status]");
    badge.className = "status status-" + scan.status;
    badge.dataset.status = scan.status;
    badge.textContent = scan.status_label;
    row.querySelector("[data-failure]").textContent = scan.failure_reason || "";
    row.dataset.final = scan.final ? "true" : "false";
  }

  function poll() {
    var waiting = pending();
    if (!waiting.length) return;
    var ids = waiting.map(function (row) { return row.dataset.scanId; }).join(",");
    fetch(url + "?ids=" + encodeURIComponent(ids), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { if (!response.ok) throw new Error(response.status); return response.json(); })
      .then(function (body) {
        body.scans.forEach(function (scan) {
          var row = table.querySelector('tr[data-scan-id="' + scan.id + '"]');
          if (row) show(row, scan);
        });
      })
      .catch(function () { /* a missed poll is retried on the next tick */ })
      .then(function () { window.setTimeout(poll, pollEveryMs); });
  }

  window.setTimeout(poll, pollEveryMs);
})();
