// Upload page: drag and drop several photos, post each one on its own so one bad file does not sink the rest,
// and insert the returned task rows; the table then polls for them (one request for all its rows, via htmx).
(function () {
  "use strict";

  const form = document.getElementById("upload-form");
  if (!form) {
    return;
  }
  const input = form.querySelector('input[type="file"]');
  const dropzone = document.getElementById("dropzone");
  const selection = document.getElementById("selected-files");
  const statusLine = document.getElementById("upload-status");
  const button = document.getElementById("upload-button");
  const errorBox = document.getElementById("upload-errors");

  // The table body swaps itself out each time it polls: look it up afresh, never keep the old element.
  function results() {
    return document.getElementById(form.dataset.results);
  }

  function announce(text) {
    statusLine.textContent = text;
  }

  function showSelection() {
    selection.replaceChildren();
    for (const file of input.files) {
      const item = document.createElement("li");
      item.textContent = file.name;
      selection.appendChild(item);
    }
  }

  // Refusals go next to the button, one sentence each: the file's name, then what the server said (which names
  // the option by its label and never repeats the file).
  function addError(fileName, text) {
    const item = document.createElement("li");
    const name = document.createElement("strong");
    name.textContent = fileName;
    item.append(name, ": " + text);
    errorBox.querySelector("ul").appendChild(item);
    errorBox.hidden = false;
  }

  function clearErrors() {
    errorBox.querySelector("ul").replaceChildren();
    errorBox.hidden = true;
  }

  async function errorMessage(response) {
    try {
      const body = await response.json();
      if (body && body.error && body.error.message) {
        return body.error.message;
      }
    } catch (ignored) {
      // Not JSON (a proxy's error page, say): fall back to the status line below.
    }
    return "The server answered " + response.status + " " + response.statusText + ".";
  }

  async function uploadOne(file) {
    const body = new FormData(form);
    body.delete("photo");
    body.append("photo", file, file.name);
    const response = await fetch(form.action, {
      method: "POST",
      body: body,
      credentials: "same-origin",
      // HX-Request asks for the rows alone; errors come back as JSON with a readable message.
      headers: {"HX-Request": "true", "Accept": "application/json"},
    });
    const redirect = response.headers.get("HX-Redirect");
    if (redirect) {
      window.location.assign(redirect);
      return false;
    }
    if (!response.ok) {
      addError(file.name, await errorMessage(response));
      return false;
    }
    const template = document.createElement("template");
    template.innerHTML = "<table><tbody>" + (await response.text()) + "</tbody></table>";
    const rows = Array.from(template.content.querySelectorAll("tbody > tr")).reverse();
    const table = results();
    for (const row of rows) {
      table.prepend(row);
    }
    // Wake the table's poller up: it now has rows to follow.
    window.htmx.trigger(table, "tasks-added");
    return true;
  }

  function summary(uploaded, total) {
    if (uploaded === 0) {
      return total === 1 ? "The photo was not uploaded." : "No photo was uploaded.";
    }
    const photos = uploaded === 1 ? " photo" : " photos";
    const count = uploaded === total ? uploaded + photos : uploaded + " of " + total + photos;
    return "Uploaded " + count + ". Results appear below.";
  }

  ["dragenter", "dragover"].forEach(function (name) {
    dropzone.addEventListener(name, function (event) {
      event.preventDefault();
      dropzone.classList.add("dragging");
    });
  });
  ["dragleave", "drop"].forEach(function (name) {
    dropzone.addEventListener(name, function (event) {
      event.preventDefault();
      dropzone.classList.remove("dragging");
    });
  });
  dropzone.addEventListener("drop", function (event) {
    if (event.dataTransfer && event.dataTransfer.files.length) {
      input.files = event.dataTransfer.files;
      showSelection();
    }
  });
  input.addEventListener("change", showSelection);

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    const files = Array.from(input.files);
    if (!files.length) {
      announce("Choose at least one photo.");
      return;
    }
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    clearErrors();
    let uploaded = 0;
    try {
      for (const [index, file] of files.entries()) {
        announce("Uploading " + (index + 1) + " of " + files.length + ": " + file.name);
        try {
          if (await uploadOne(file)) {
            uploaded += 1;
          }
        } catch (error) {
          addError(file.name, "The upload did not reach the server (" + error.message + ").");
        }
      }
      announce(summary(uploaded, files.length));
      // When nothing went through the photos stay chosen, to send again once the options are right.
      if (uploaded > 0) {
        input.value = "";
        showSelection();
      }
    } finally {
      button.disabled = false;
      button.removeAttribute("aria-busy");
    }
  });
})();
