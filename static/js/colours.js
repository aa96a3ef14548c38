// Colour fields: the text box is what is sent (a name like "white" or a hex code, checked by the server); the
// native colour picker and the preset swatches fill it in, and the picker follows what is typed.
(function () {
  "use strict";

  // The browser's own parser turns any CSS colour (a name included) into #rrggbb; null when it is not a colour.
  const probe = document.createElement("canvas").getContext("2d");

  function toHex(text) {
    if (!probe || !text) {
      return null;
    }
    const value = text.trim();
    const hex = /^#?([0-9a-f]{3}|[0-9a-f]{4}|[0-9a-f]{6}|[0-9a-f]{8})$/i.exec(value);
    let css = hex ? "#" + hex[1] : value.replace(/\s+/g, "");
    probe.fillStyle = "#010203";
    probe.fillStyle = css;
    const parsed = probe.fillStyle;
    if (parsed === "#010203" && css.toLowerCase() !== "#010203") {
      return null;
    }
    return /^#[0-9a-f]{6}$/i.test(parsed) ? parsed : null;
  }

  function paintSwatches(root) {
    for (const swatch of root.querySelectorAll(".swatch[data-colour]")) {
      const hex = toHex(swatch.dataset.colour);
      if (hex) {
        // CSSOM, not a style attribute: allowed by the CSP.
        swatch.style.backgroundColor = hex;
      }
    }
    for (const box of root.querySelectorAll("[data-colour-field]")) {
      syncPicker(document.getElementById(box.dataset.colourField));
    }
  }

  function syncPicker(text) {
    if (!text) {
      return;
    }
    const picker = text.parentElement.querySelector(".colour-picker");
    const hex = toHex(text.value);
    if (picker && hex) {
      picker.value = hex;
    }
    markPressed(text);
  }

  function markPressed(text) {
    const value = text.value.trim().toLowerCase();
    for (const swatch of document.querySelectorAll('.swatch[data-for="' + text.id + '"]')) {
      swatch.setAttribute("aria-pressed", String(swatch.dataset.colour.toLowerCase() === value));
    }
  }

  function setValue(text, value) {
    text.value = value;
    syncPicker(text);
    text.dispatchEvent(new Event("change", {bubbles: true}));
  }

  document.addEventListener("click", function (event) {
    const swatch = event.target.closest(".swatch[data-for]");
    if (swatch) {
      setValue(document.getElementById(swatch.dataset.for), swatch.dataset.colour);
    }
  });
  document.addEventListener("input", function (event) {
    const target = event.target;
    if (target.classList && target.classList.contains("colour-picker")) {
      const text = target.closest("[data-colour-field]").querySelector('input[type="text"]');
      text.value = target.value;
      markPressed(text);
    } else if (target.closest && target.closest("[data-colour-field]")) {
      syncPicker(target);
    }
  });
  document.addEventListener("htmx:afterSwap", function (event) {
    paintSwatches(event.target);
  });
  document.addEventListener("DOMContentLoaded", function () {
    paintSwatches(document);
  });
})();
