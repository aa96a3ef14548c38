// Upload page: drag and drop photos. One photo (or one web address) is posted on its own and its task row inserted
// (the table then polls for it, via htmx); several go in one request as a batch, whose page the server sends us to
// (HX-Redirect): a file that is not a photo is listed there, it does not sink the rest.
(function () {
  "use strict";

  const form = document.getElementById("upload-form");
  if (!form) {
    return;
  }
  const input = form.querySelector('input[type="file"]');
  // A photo may be given by its web address instead: one upload, the worker fetches it.
  const urlInput = form.querySelector('input[name="image_url"]');
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

  // Refusals go next to the button, one sentence each: the file's name (when there is one to name), then what the
  // server said (which names the option by its label and never repeats the file).
  function addError(fileName, text) {
    const item = document.createElement("li");
    if (fileName) {
      const name = document.createElement("strong");
      name.textContent = fileName;
      item.append(name, ": " + text);
    } else {
      item.textContent = text;
    }
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

  // file: one chosen photo, or null for the photo given by URL (the form's image_url field).
  async function uploadOne(file) {
    const body = new FormData(form);
    body.delete("photo");
    if (file) {
      body.append("photo", file, file.name);
      body.delete("image_url");
    }
    return send(body, file ? file.name : urlInput.value);
  }

  // Several photos go in one request: the server makes them one batch and sends us to its page.
  async function uploadBatch(files) {
    const body = new FormData(form);
    body.delete("photo");
    body.delete("image_url");
    for (const file of files) {
      body.append("photo", file, file.name);
    }
    return send(body, null);
  }

  // Return true when task rows came back (and were inserted), false when refused or sent elsewhere.
  async function send(body, name) {
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
      addError(name, await errorMessage(response));
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

  async function busy(work) {
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    clearErrors();
    try {
      await work();
    } finally {
      button.disabled = false;
      button.removeAttribute("aria-busy");
    }
  }

  async function uploadByUrl(url) {
    announce("Sending " + url);
    try {
      if (await uploadOne(null)) {
        announce("Sent. The studio fetches the photo when processing starts; the result appears below.");
        urlInput.value = "";
      } else {
        announce("The photo was not sent.");
      }
    } catch (error) {
      addError(url, "The request did not reach the server (" + error.message + ").");
    }
  }

  async function uploadBatchOf(files) {
    announce("Uploading " + files.length + " photos as one batch…");
    try {
      await uploadBatch(files);
    } catch (error) {
      addError(null, "The upload did not reach the server (" + error.message + ").");
    }
  }

  async function uploadEach(files) {
    let uploaded = 0;
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
  }

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    const files = Array.from(input.files);
    const url = urlInput ? urlInput.value.trim() : "";
    if (files.length && url) {
      announce("Choose photos or give a web address, not both.");
      return;
    }
    if (!files.length && !url) {
      announce("Choose at least one photo, or give its web address.");
      return;
    }
    if (url) {
      await busy(function () { return uploadByUrl(url); });
    } else if (files.length > 1) {
      await busy(function () { return uploadBatchOf(files); });
    } else {
      await busy(function () { return uploadEach(files); });
    }
  });
})();
