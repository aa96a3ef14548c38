// Site-wide behaviour that the CSP forbids inline: confirmation prompts for destructive forms.
(function () {
  "use strict";
  document.addEventListener("submit", function (event) {
    const form = event.target;
    if (form instanceof HTMLFormElement && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
      event.preventDefault();
    }
  });
})();
