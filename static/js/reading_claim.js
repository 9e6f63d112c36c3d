// The review page keeps the doctor's reading claim on its scan while it is open (so that "next"
// sends other doctors elsewhere) and gives it up when the page is left. The URLs and the period
// come from #reading-claim's data attributes; the CSRF token from the review form.
(function () {
  "use strict";
  var claim = document.getElementById("reading-claim");
  var tokenInput = document.querySelector("#review-form input[name=csrfmiddlewaretoken]");
  if (!claim || !tokenInput || !window.fetch) return;
  var everyMs = Math.max(15, Number(claim.dataset.heartbeatSeconds) || 100) * 1000;

  function form() {
    var body = new FormData();
    body.append("csrfmiddlewaretoken", tokenInput.value);
    return body;
  }
  function renew() {
    fetch(claim.dataset.heartbeatUrl, { method: "POST", body: form(), credentials: "same-origin" })
      .catch(function () { /* offline for a moment: the next beat tries again */ });
  }
  renew();  // at once too: the previous page's release may arrive after this page's claim
  var timer = window.setInterval(renew, everyMs);
  window.addEventListener("pagehide", function () {
    window.clearInterval(timer);
    if (navigator.sendBeacon) navigator.sendBeacon(claim.dataset.releaseUrl, form());
  });
})();
