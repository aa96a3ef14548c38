// The history's bulk actions: tick every photo of the page at once, say how many are ticked, and ask before the
// delete button (the form's other buttons need no confirmation, so studio.js's form-wide prompt does not fit).
(function () {
  "use strict";

  function boxes() {
    return Array.from(document.querySelectorAll('input[name="selected"][form="bulk-form"]'));
  }

  function showCount() {
    const count = document.getElementById("selected-count");
    if (!count) {
      return;
    }
    const all = boxes();
    const ticked = all.filter(function (box) { return box.checked; }).length;
    const selectAll = document.querySelector("[data-select-all]");
    if (selectAll) {
      selectAll.checked = all.length > 0 && ticked === all.length;
    }
    count.textContent = ticked ? ticked + " photo" + (ticked === 1 ? "" : "s") + " ticked."
      : "Tick photos to download, process again or delete them together.";
  }

  document.addEventListener("change", function (event) {
    const target = event.target;
    if (target instanceof HTMLInputElement && target.dataset.selectAll !== undefined) {
      for (const box of boxes()) {
        box.checked = target.checked;
      }
    }
    if (target instanceof HTMLInputElement && target.type === "checkbox") {
      showCount();
    }
  });

  document.addEventListener("submit", function (event) {
    const button = event.submitter;
    if (event.target.id !== "bulk-form" || !button) {
      return;
    }
    if (!boxes().some(function (box) { return box.checked; })) {
      event.preventDefault();
      document.getElementById("selected-count").textContent = "Tick at least one photo first.";
      return;
    }
    if (button.dataset.confirm && !window.confirm(button.dataset.confirm)) {
      event.preventDefault();
    }
  });

  document.addEventListener("htmx:afterSwap", showCount);
})();
