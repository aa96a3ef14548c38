// Copy buttons (a new API token): the clipboard API where the page may use it (HTTPS or localhost), else the
// field's text selected and copied the old way, else selected for the user to copy.
(function () {
  "use strict";

  function copyBySelection(field) {
    field.focus();
    field.select();
    try {
      return document.execCommand("copy");
    } catch (ignored) {
      return false;
    }
  }

  async function copy(field) {
    if (navigator.clipboard && window.isSecureContext) {
      try {
        await navigator.clipboard.writeText(field.value);
        return true;
      } catch (ignored) {
        // Refused (no permission, the page not focused): fall back to the selection.
      }
    }
    return copyBySelection(field);
  }

  document.addEventListener("click", async function (event) {
    const button = event.target.closest("button[data-copy]");
    if (!button) {
      return;
    }
    const field = document.getElementById(button.dataset.copy);
    const status = document.getElementById(button.dataset.copied);
    const copied = await copy(field);
    if (status) {
      status.textContent = copied ? "Copied to the clipboard." : "Selected: press Ctrl+C (or Cmd+C) to copy it.";
    }
    if (copied) {
      button.textContent = "Copied";
    } else {
      field.select();
    }
  });
})();
