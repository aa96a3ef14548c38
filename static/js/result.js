// The task page's result viewer (templates/tasks/_result_viewer.html): zoom to 100% with scrolling inside the
// frame, and the background behind transparent pixels. Listeners sit on the document, so the viewer that the
// polling fragment swaps in when a task finishes works the same without any set-up.
(function () {
  "use strict";

  function setZoom(viewer, zoomed) {
    viewer.classList.toggle("zoomed", zoomed);
    // Zoomed, the frame scrolls: keyboard users reach it with Tab and scroll it with the arrow keys.
    const frame = viewer.querySelector(".viewer-frame");
    if (zoomed) {
      frame.setAttribute("tabindex", "0");
    } else {
      frame.removeAttribute("tabindex");
    }
    const button = viewer.querySelector("[data-zoom]");
    if (button) {
      button.setAttribute("aria-pressed", String(zoomed));
      button.textContent = zoomed ? "Fit to the page" : "Zoom to 100%";
    }
  }

  function chooseBackground(button) {
    const viewer = button.closest("[data-viewer]");
    viewer.dataset.background = button.dataset.backgroundChoice;
    for (const other of viewer.querySelectorAll("[data-background-choice]")) {
      other.setAttribute("aria-pressed", String(other === button));
    }
  }

  document.addEventListener("click", function (event) {
    const target = event.target;
    if (!(target instanceof Element)) {
      return;
    }
    const zoomButton = target.closest("[data-zoom]");
    const backgroundButton = target.closest("[data-background-choice]");
    // A click on a lone image zooms too; on the slider a click moves the divider instead.
    const image = target.closest("[data-zoom-target] img");
    if (zoomButton) {
      const viewer = zoomButton.closest("[data-viewer]");
      setZoom(viewer, !viewer.classList.contains("zoomed"));
    } else if (backgroundButton) {
      chooseBackground(backgroundButton);
    } else if (image) {
      const viewer = image.closest("[data-viewer]");
      setZoom(viewer, !viewer.classList.contains("zoomed"));
    }
  });
})();
