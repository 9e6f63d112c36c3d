// The review page: heatmap toggle and opacity, zoom, and keyboard shortcuts
// (C confirm, O override, N next, H heatmap, + and - zoom).
(function () {
  "use strict";
  var heatmap = document.getElementById("heatmap");
  var toggle = document.getElementById("heatmap-toggle");
  var opacity = document.getElementById("heatmap-opacity");
  var opacityValue = document.getElementById("opacity-value");
  var zoom = document.getElementById("zoom");
  var zoomValue = document.getElementById("zoom-value");
  var stack = document.getElementById("viewer-stack");
  var xray = document.getElementById("xray");
  var frame = document.getElementById("viewer-frame");
  var form = document.getElementById("review-form");
  var note = document.getElementById("id_note");
  var nextLink = document.getElementById("next-link");

  function showHeatmap(on) {
    if (!heatmap) return;
    heatmap.hidden = !on;
    toggle.checked = on;
  }
  function setOpacity(percent) {
    if (heatmap) heatmap.style.opacity = String(percent / 100);
    opacityValue.textContent = percent + "%";
  }
  // 100% fits the whole X-ray in the frame (enlarging a small image too); more zooms in from
  // there and the frame scrolls. The heatmap covers the stack, so it follows the X-ray's size.
  function setZoom(percent) {
    percent = Math.max(Number(zoom.min), Math.min(Number(zoom.max), percent));
    zoom.value = percent;
    zoomValue.textContent = percent + "%";
    if (!xray.naturalWidth) return;
    var frameHeight = parseFloat(window.getComputedStyle(frame).maxHeight) || window.innerHeight * 0.75;
    var fitted = Math.min(frame.clientWidth, frameHeight * xray.naturalWidth / xray.naturalHeight);
    stack.style.maxWidth = "none";
    stack.style.width = Math.floor(fitted * percent / 100) + "px";
  }
  function submit(decision) {
    var button = document.getElementById(decision + "-button");
    if (!button) return;  // outside intended use: the final label is chosen, not a decision
    if (form.requestSubmit) form.requestSubmit(button); else button.click();
  }

  if (heatmap) {
    toggle.addEventListener("change", function () { showHeatmap(toggle.checked); });
    opacity.addEventListener("input", function () { setOpacity(Number(opacity.value)); });
  } else {
    toggle.disabled = true;
    opacity.disabled = true;
  }
  function refit() { setZoom(Number(zoom.value)); }
  zoom.addEventListener("input", refit);
  xray.addEventListener("load", refit);
  window.addEventListener("resize", refit);
  if (xray.complete) refit();

  if (note) {
    note.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) { event.preventDefault(); submit("override"); }
    });
  }

  document.addEventListener("keydown", function (event) {
    var target = event.target;
    var typing = target && (target.tagName === "TEXTAREA" || target.tagName === "SELECT" ||
      (target.tagName === "INPUT" && target.type !== "checkbox" && target.type !== "range"));
    if (typing || event.ctrlKey || event.metaKey || event.altKey) return;
    switch (event.key.toLowerCase()) {
      case "c": event.preventDefault(); submit("confirm"); break;
      case "o":
        event.preventDefault();
        if (note && !note.value.trim()) note.focus(); else submit("override");
        break;
      case "n": if (nextLink) { event.preventDefault(); window.location.href = nextLink.href; } break;
      case "h": if (heatmap) { event.preventDefault(); showHeatmap(heatmap.hidden); } break;
      case "+": case "=": event.preventDefault(); setZoom(Number(zoom.value) + 25); break;
      case "-": event.preventDefault(); setZoom(Number(zoom.value) - 25); break;
    }
  });
})();
