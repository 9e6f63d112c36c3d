// Warns a minute before the session ends (idle limit or absolute limit) and lets the person stay
// signed in. The server decides (radiology/session_limits.py); this only asks how long is left,
// which does not count as activity, so an unattended page still signs out on time.
(function () {
  "use strict";
  var box = document.getElementById("session-warning");
  if (!box || !window.fetch) return;
  var text = document.getElementById("session-warning-text");
  var stay = document.getElementById("session-stay");
  var warnSeconds = Number(box.dataset.warnSeconds);
  var timer = null;

  function csrfToken() {
    var input = document.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  function schedule(seconds) {
    clearTimeout(timer);
    timer = setTimeout(check, Math.max(1, seconds) * 1000);
  }

  function hide() {
    box.hidden = true;
    text.textContent = "";
  }

  function warn(status) {
    var idleEnds = status.idle_seconds_left <= status.session_seconds_left;
    var left = Math.min(status.idle_seconds_left, status.session_seconds_left);
    var when = new Date(Date.now() + left * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    stay.hidden = !idleEnds;
    box.hidden = false;
    text.textContent = idleEnds
      ? "You will be signed out at " + when + " for inactivity. Press any key or choose Stay signed in to continue."
      : "Your session reaches its time limit at " + when + ": save your work, you will then sign in again.";
  }

  function answer(response) {
    return response.ok || response.status === 401 ? response.json() : null;
  }

  function handle(status) {
    if (!status) { schedule(30); return; }  // a network hiccup: ask again soon
    if (!status.signed_in) { window.location.reload(); return; }  // the server signed us out
    var left = Math.min(status.idle_seconds_left, status.session_seconds_left);
    if (left > warnSeconds) {
      hide();
      schedule(left - warnSeconds);
    } else {
      warn(status);
      schedule(left + 1);
    }
  }

  function check() {
    fetch(box.dataset.statusUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(answer).then(handle, function () { handle(null); });
  }

  function keepAlive() {
    fetch(box.dataset.keepAliveUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { Accept: "application/json", "X-CSRFToken": csrfToken() }
    }).then(answer).then(handle, function () { handle(null); });
  }

  stay.addEventListener("click", keepAlive);
  // While the warning shows, a person typing or clicking is active: stay signed in for them.
  ["keydown", "pointerdown"].forEach(function (type) {
    document.addEventListener(type, function (event) {
      if (!box.hidden && !stay.hidden && event.target !== stay) keepAlive();
    });
  });
  check();
})();
