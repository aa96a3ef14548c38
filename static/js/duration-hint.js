// Upload page: say before the upload when a photo will take more than a minute on this server. The page gives
// each operation's measured seconds per megapixel of work and its work per photo pixel (#duration-hint's
// data-costs); the browser reads each chosen photo's size and multiplies.
(function () {
  "use strict";

  const hint = document.getElementById("duration-hint");
  const form = document.getElementById("upload-form");
  if (!hint || !form) {
    return;
  }
  const costs = JSON.parse(hint.dataset.costs || "{}");
  const input = form.querySelector('input[type="file"]');
  const dropzone = document.getElementById("dropzone");
  const SLOW_SECONDS = 60;
  let round = 0;

  // Resolve to the photo's width times height, or 0 when the browser cannot read it (the server will say why).
  function pixels(file) {
    return new Promise(function (resolve) {
      const url = URL.createObjectURL(file);
      const image = new Image();
      image.onload = function () {
        resolve(image.naturalWidth * image.naturalHeight);
        URL.revokeObjectURL(url);
      };
      image.onerror = function () {
        resolve(0);
        URL.revokeObjectURL(url);
      };
      image.src = url;
    });
  }

  function duration(seconds) {
    const minutes = Math.round(seconds / 60);
    if (minutes < 60) {
      return "about " + minutes + (minutes === 1 ? " minute" : " minutes");
    }
    const hours = Math.floor(minutes / 60);
    return "about " + hours + (hours === 1 ? " hour" : " hours") + (minutes % 60 ? " " + (minutes % 60) + " min" : "");
  }

  async function update() {
    const current = ++round;
    const operation = form.elements.namedItem("operation");
    const cost = costs[operation ? operation.value : ""];
    const files = Array.from(input.files || []);
    if (!cost || !files.length) {
      hint.hidden = true;
      return;
    }
    const sizes = await Promise.all(files.map(pixels));
    if (current !== round) {
      return;  // the choice changed meanwhile: a newer round says it
    }
    const slow = [];
    files.forEach(function (file, index) {
      const seconds = cost.seconds_per_megapixel * cost.work_per_pixel * sizes[index] / 1e6;
      if (seconds > SLOW_SECONDS) {
        slow.push(file.name + ": " + duration(seconds));
      }
    });
    hint.textContent = slow.length === 0 ? "" : (slow.length === 1 && files.length === 1
      ? "This photo will take " + duration(cost.seconds_per_megapixel * cost.work_per_pixel * sizes[0] / 1e6) +
        " on this server."
      : "Some photos will take more than a minute on this server: " + slow.join("; ") + ".");
    hint.hidden = slow.length === 0;
  }

  input.addEventListener("change", update);
  form.addEventListener("change", function (event) {
    if (event.target && event.target.name === "operation") {
      update();
    }
  });
  // A drop sets the input's files without a change event (upload.js): read them once it has.
  if (dropzone) {
    dropzone.addEventListener("drop", function () {
      window.setTimeout(update, 0);
    });
  }
  // The form clears its files once they are uploaded: the hint goes with them.
  form.addEventListener("submit", function () {
    round += 1;
    hint.hidden = true;
  });
})();
