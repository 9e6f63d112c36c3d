"use strict";
// Swagger UI draws its dialogs' close button as an icon with no text: name it for screen readers
// (WCAG 4.1.2) whenever Swagger UI (re)draws one.
(() => {
  const root = document.getElementById("swagger-ui");
  const nameCloseButtons = () => {
    for (const button of root.querySelectorAll("button.close-modal:not([aria-label])")) {
      button.setAttribute("aria-label", "Close");
    }
  };
  new MutationObserver(nameCloseButtons).observe(root, { childList: true, subtree: true });
  nameCloseButtons();
})();
