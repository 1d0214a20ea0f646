/* Andromède: send an image's file to the API with a progress bar (portal/views/images.py).

   1. Without `data-upload-url` on the form, the form first creates the image record: it is
      posted to the portal (asking for JSON), which answers with the URLs below.
   2. The file is sent as the body of PUT /api/v1/images/{id}/file with this session: the CSRF
      token in X-CSRFToken, the tenant in X-Tenant. XMLHttpRequest's upload events move the
      <progress id="upload-progress"> and the percentage beside it (aria-live).
   3. When the API answers, the portal's status fragment (the image's status and the SHA-256
      the server computed, or why it failed, in the user's language) fills #upload-result.

   Loaded with <script src> (the CSP forbids inline scripts); no eval, no inline handler. */
(function () {
  "use strict";

  function byId(id) { return document.getElementById(id); }

  function formatPercent(fraction) {
    var lang = document.documentElement.lang || undefined;
    try {
      return new Intl.NumberFormat(lang, { style: "percent", maximumFractionDigits: 0 }).format(fraction);
    } catch (e) {
      return Math.round(fraction * 100) + " %";
    }
  }

  function csrfToken(form) {
    var input = form.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  function showError(text) {
    var box = byId("upload-errors");
    var p = document.createElement("p");
    p.className = "message message-error";
    p.textContent = text;
    box.replaceChildren(p);
    byId("upload-panel").hidden = false;
  }

  function showOutcome(statusUrl, errorCode) {
    var url = statusUrl + (errorCode ? "?error=" + encodeURIComponent(errorCode) : "");
    return fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) { return response.text(); })
      .then(function (html) {
        // The portal's own fragment, escaped by its templates; it carries no script.
        byId("upload-result").innerHTML = html;
      });
  }

  function createRecord(form) {
    var body = new URLSearchParams();
    new FormData(form).forEach(function (value, key) {
      if (typeof value === "string") { body.append(key, value); }
    });
    return fetch(form.action, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Accept": "application/json", "X-CSRFToken": csrfToken(form) },
      body: body
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        if (!response.ok || !data.upload_url) {
          var errors = (data && data.errors) || [];
          throw new Error(errors.length ? errors.join(" ") : form.dataset.msgFailed);
        }
        return data;
      });
    });
  }

  function sendFile(form, file, urls, done) {
    var progress = byId("upload-progress");
    var percent = byId("upload-percent");
    var shown = -1;
    var xhr = new XMLHttpRequest();
    xhr.open("PUT", urls.upload_url);
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    xhr.setRequestHeader("Accept", "application/json");
    xhr.setRequestHeader("X-CSRFToken", csrfToken(form));
    xhr.setRequestHeader("X-Tenant", form.dataset.tenant);
    xhr.upload.addEventListener("progress", function (event) {
      if (!event.lengthComputable || !event.total) { return; }
      var fraction = event.loaded / event.total;
      progress.value = Math.round(fraction * 1000) / 10;
      var whole = Math.floor(fraction * 100);
      if (whole !== shown) {  // the live region speaks once per whole percent at most
        shown = whole;
        percent.textContent = formatPercent(whole / 100);
      }
    });
    xhr.addEventListener("load", function () {
      var code = "";
      if (xhr.status < 200 || xhr.status >= 300) {
        try { code = JSON.parse(xhr.responseText).error.code || "error"; } catch (e) { code = "error"; }
      } else {
        progress.value = 100;
        percent.textContent = formatPercent(1);
      }
      showOutcome(urls.status_url, code).finally(done);
    });
    xhr.addEventListener("error", function () {
      showError(form.dataset.msgNetwork);
      showOutcome(urls.status_url, "").finally(done);
    });
    xhr.send(file);
  }

  function init(form) {
    var field = byId("upload-file-field");
    var input = byId("upload-file");
    var submitRow = byId("upload-submit");
    var button = form.querySelector("button[type=submit]");
    field.hidden = false;
    input.required = true;
    if (submitRow) { submitRow.hidden = false; }
    if (button && button.dataset.jsLabel) { button.textContent = button.dataset.jsLabel; }

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var file = input.files && input.files[0];
      if (!file) { showError(form.dataset.msgNofile); input.focus(); return; }
      button.disabled = true;
      byId("upload-errors").replaceChildren();
      byId("upload-result").replaceChildren();
      byId("upload-progress").value = 0;
      byId("upload-percent").textContent = formatPercent(0);
      byId("upload-panel").hidden = false;
      var ready = form.dataset.uploadUrl
        ? Promise.resolve({ upload_url: form.dataset.uploadUrl, status_url: form.dataset.statusUrl })
        : createRecord(form);
      ready.then(function (urls) {
        // The record exists now: a second click must not make another one.
        form.dataset.uploadUrl = urls.upload_url;
        form.dataset.statusUrl = urls.status_url;
        sendFile(form, file, urls, function () { button.disabled = false; });
      }).catch(function (error) {
        showError(error.message || form.dataset.msgFailed);
        button.disabled = false;
      });
    });
  }

  function start() {
    var form = byId("upload-form");
    if (form) { init(form); }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
