// The import form, with JavaScript: the file is posted by XMLHttpRequest (its upload
// progress shown), a file over the page's limit is refused before it is sent, the
// credentials file the import answers with is offered for download once, and what the server
// says (problems by line, a dry run's result, a field's message) replaces the page's outcome
// while the chosen file stays chosen. Without JavaScript the form posts as usual and the
// browser downloads the credentials file itself.
(function () {
  "use strict";
  document.documentElement.classList.add("js");
  var form = document.getElementById("import-form");
  if (!form || !window.FormData || !window.XMLHttpRequest || !window.DOMParser) { return; }
  var progress = document.getElementById("import-progress");
  var bar = document.getElementById("import-progress-bar");
  var done = document.getElementById("import-done");
  var buttons = form.querySelectorAll("button[type=submit]");

  function file() { return document.getElementById("file"); }

  function setProgress(fraction) {
    var percent = Math.round(fraction * 100);
    bar.style.width = percent + "%";
    progress.setAttribute("aria-valuenow", String(percent));
  }

  function busy(on) {
    buttons.forEach(function (b) { b.disabled = on; });
    progress.hidden = !on;
    if (on) { setProgress(0); }
  }

  function fieldError(input, message) {
    // The field's message, as the server renders it (_forms.html): is-invalid, and a
    // message the field names in aria-describedby.
    var id = input.id + "-error";
    var old = document.getElementById(id);
    if (old) { old.remove(); }
    if (!message) {
      input.classList.remove("is-invalid");
      return;
    }
    var div = document.createElement("div");
    div.className = "invalid-feedback";
    div.id = id;
    div.textContent = message;
    input.after(div);
    input.classList.add("is-invalid");
    var described = (input.getAttribute("aria-describedby") || "").split(" ").filter(Boolean);
    if (described.indexOf(id) < 0) { described.unshift(id); }
    input.setAttribute("aria-describedby", described.join(" "));
    input.focus();
  }

  function showPage(html) {
    // The server's page: its fields (messages on them) and its outcome, the file kept.
    var next = new DOMParser().parseFromString(html, "text/html");
    var fields = next.getElementById("import-fields");
    var outcome = next.getElementById("import-outcome");
    if (!fields && !outcome) { // another page (an error page, the sign-in form): show it
      var main = next.querySelector("main");
      if (main) { document.querySelector("main").replaceWith(main); }
      document.title = next.title;
      return;
    }
    if (fields) {
      var kept = file();
      var fresh = fields.querySelector("#file");
      if (fresh && kept) {
        kept.className = fresh.className;
        var described = fresh.getAttribute("aria-describedby");
        if (described) { kept.setAttribute("aria-describedby", described); }
        else { kept.removeAttribute("aria-describedby"); }
        fresh.replaceWith(kept);
      }
      document.getElementById("import-fields").replaceWith(fields);
    }
    if (outcome) { document.getElementById("import-outcome").replaceWith(outcome); }
    var focus = document.querySelector("#import-outcome [role=alert], #import-outcome [role=status], .is-invalid");
    if (focus) { focus.setAttribute("tabindex", "-1"); focus.focus(); }
  }

  function download(blob, name) {
    var url = URL.createObjectURL(blob);
    var a = document.createElement("a");
    a.href = url;
    a.download = name;
    document.body.append(a);
    a.click();
    a.remove();
    window.setTimeout(function () { URL.revokeObjectURL(url); }, 60000);
  }

  function filename(disposition) {
    var m = /filename="([^"]+)"/.exec(disposition || "");
    return m ? m[1] : "credentials.csv";
  }

  function imported(xhr) {
    var n = parseInt(xhr.getResponseHeader("X-Provisiond-Imported") || "0", 10);
    var skipped = parseInt(xhr.getResponseHeader("X-Provisiond-Skipped") || "0", 10);
    var group = document.getElementById("group");
    var name = filename(xhr.getResponseHeader("Content-Disposition"));
    download(xhr.response, name);
    document.getElementById("import-done-summary").textContent =
      n.toLocaleString("en") + " device" + (n === 1 ? "" : "s") + " imported" +
      (group && group.value ? " into " + group.value : "") +
      (skipped ? " (" + skipped.toLocaleString("en") + " already registered, skipped)" : "") + ".";
    document.getElementById("import-done-file").textContent = name;
    document.getElementById("import-outcome").replaceChildren();
    done.hidden = false;
    file().value = "";
    done.setAttribute("tabindex", "-1");
    done.focus();
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var input = file();
    var chosen = input.files && input.files[0];
    var max = parseInt(input.dataset.maxBytes, 10);
    done.hidden = true;
    if (!chosen) {
      fieldError(input, "Choose a CSV or JSON lines file.");
      return;
    }
    if (max && chosen.size > max) {
      fieldError(input, chosen.name + " is " + chosen.size.toLocaleString("en") +
        " bytes; the console takes files up to " + max.toLocaleString("en") +
        " bytes. Import larger files with provisiond devices import, or POST /api/v1/devices/import.");
      return;
    }
    fieldError(input, "");
    var data = new FormData(form);
    var submitter = event.submitter || buttons[buttons.length - 1];
    data.set("action", submitter.value);
    var xhr = new XMLHttpRequest();
    xhr.open("POST", form.getAttribute("action")); // not form.action: the buttons are named so
    xhr.responseType = "blob";
    xhr.upload.addEventListener("progress", function (e) {
      if (e.lengthComputable) { setProgress(e.loaded / e.total); }
    });
    xhr.addEventListener("load", function () {
      busy(false);
      var disposition = xhr.getResponseHeader("Content-Disposition") || "";
      if (xhr.status === 200 && disposition.indexOf("attachment") === 0) {
        imported(xhr);
      } else if (xhr.status === 413) {
        xhr.response.text().then(function (text) {
          var detail = "The file is too large for the console.";
          try { detail = JSON.parse(text).detail || detail; } catch (e) { /* not JSON */ }
          fieldError(file(), detail);
        });
      } else {
        xhr.response.text().then(showPage);
      }
    });
    xhr.addEventListener("error", function () {
      busy(false);
      fieldError(file(), "The upload failed (the connection was lost). Try again.");
    });
    busy(true);
    xhr.send(data);
  });
})();
