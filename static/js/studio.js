// Site-wide behaviour that the CSP forbids inline: confirmation prompts for destructive forms, and options that
// only apply when another one is set (a crop margin needs the crop, a mix needs a second style): shown only then.
(function () {
  "use strict";
  document.addEventListener("submit", function (event) {
    const form = event.target;
    if (form instanceof HTMLFormElement && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
      event.preventDefault();
    }
  });

  function currentValue(form, name) {
    const inputs = Array.from(form.querySelectorAll('[name="' + name + '"]'));
    for (const input of inputs) {
      if (input.type === "checkbox") {
        return input.checked;
      }
      if (input.type === "radio") {
        if (input.checked) {
          return input.value;
        }
      } else {
        return input.value;
      }
    }
    return null;
  }

  function applyRequirements(root) {
    for (const field of root.querySelectorAll("[data-requires]")) {
      const form = field.closest("form");
      if (!form) {
        continue;
      }
      const needs = JSON.parse(field.dataset.requires);
      const met = Object.keys(needs).every(function (name) {
        const need = needs[name];
        // {"not": value}: shown while the other field holds anything but that value.
        if (need !== null && typeof need === "object") {
          return currentValue(form, name) !== need.not;
        }
        return currentValue(form, name) === need;
      });
      field.hidden = !met;
      for (const input of field.querySelectorAll("input, select")) {
        input.disabled = !met;
      }
    }
  }

  document.addEventListener("change", function () {
    applyRequirements(document);
  });
  document.addEventListener("htmx:afterSwap", function () {
    applyRequirements(document);
  });
  document.addEventListener("DOMContentLoaded", function () {
    applyRequirements(document);
  });
})();
