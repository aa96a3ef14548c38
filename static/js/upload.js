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

  function addErrorRow(text) {
    const row = document.createElement("tr");
    row.className = "upload-error";
    const cell = document.createElement("td");
    cell.colSpan = 4;
    cell.setAttribute("role", "alert");
    cell.textContent = text;
    row.appendChild(cell);
    results().prepend(row);
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
    return "the server answered " + response.status + " " + response.statusText;
  }

  // file: one chosen photo, or null for the photo given by URL (the form's image_url field).
  async function uploadOne(file) {
    const body = new FormData(form);
    body.delete("photo");
    if (file) {
      body.append("photo", file, file.name);
      body.delete("image_url");
    }
    await send(body, (file ? file.name : urlInput.value) + ": ");
  }

  // Several photos go in one request: the server makes them one batch and sends us to its page.
  async function uploadBatch(files) {
    const body = new FormData(form);
    body.delete("photo");
    body.delete("image_url");
    for (const file of files) {
      body.append("photo", file, file.name);
    }
    await send(body, "");
  }

  async function send(body, label) {
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
      return;
    }
    if (!response.ok) {
      addErrorRow(label + (await errorMessage(response)));
      return;
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

  async function uploadByUrl(url) {
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    announce("Sending " + url);
    try {
      await uploadOne(null);
      announce("Sent. The studio fetches the photo when processing starts; the result appears below.");
      urlInput.value = "";
    } catch (error) {
      addErrorRow(url + ": the request did not reach the server (" + error.message + ")");
    } finally {
      button.disabled = false;
      button.removeAttribute("aria-busy");
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
    if (!files.length && url) {
      await uploadByUrl(url);
      return;
    }
    if (!files.length) {
      announce("Choose at least one photo, or give its web address.");
      return;
    }
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    try {
      if (files.length > 1) {
        announce("Uploading " + files.length + " photos as one batch…");
        try {
          await uploadBatch(files);
        } catch (error) {
          addErrorRow("The upload did not reach the server (" + error.message + ")");
        }
        return;
      }
      for (const [index, file] of files.entries()) {
        announce("Uploading " + (index + 1) + " of " + files.length + ": " + file.name);
        try {
          await uploadOne(file);
        } catch (error) {
          addErrorRow(file.name + ": the upload did not reach the server (" + error.message + ")");
        }
      }
      announce("Uploaded " + files.length + (files.length === 1 ? " photo" : " photos") + ". Results appear below.");
      input.value = "";
      showSelection();
    } finally {
      button.disabled = false;
      button.removeAttribute("aria-busy");
    }
  });
})();
