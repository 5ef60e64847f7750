// Slipway dashboard: progressive enhancement only. Every page works
// without this file; it adds live logs, live deployment lists and
// confirmations.
(function () {
  "use strict";

  // Forms with data-confirm ask before sending.
  document.addEventListener("submit", function (e) {
    var msg = e.target.getAttribute("data-confirm");
    if (msg && !window.confirm(msg)) e.preventDefault();
  });

  // The organisation switcher submits on change.
  // GitHub App creation: the manifest must reach GitHub as a browser POST.
  document.querySelectorAll("form[data-submit-on-load]").forEach(function (f) { f.submit(); });

  document.querySelectorAll("form[data-autosubmit] select").forEach(function (sel) {
    sel.addEventListener("change", function () { sel.form.submit(); });
  });

  // Service page: refresh the deployments table so new deployments
  // (a push, a deploy hook, a teammate) appear without a reload.
  var rows = document.getElementById("deployment-rows");
  if (rows && rows.dataset.poll) {
    var poll = function () {
      fetch(rows.dataset.poll, { credentials: "same-origin", headers: { Accept: "text/html" } })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) { if (html !== null && html !== rows.innerHTML) rows.innerHTML = html; })
        .catch(function () {})
        .finally(function () { setTimeout(poll, 2000); });
    };
    setTimeout(poll, 2000);
  }

  // Deployment page: stream the log and the status over Server-Sent Events.
  var log = document.getElementById("log");
  if (log && log.dataset.events && window.EventSource) {
    var order = ["queued", "cloning", "building", "deploying", "live"];
    var badge = document.getElementById("deployment-status");
    var phases = document.getElementById("phases");
    var errBox = document.getElementById("deployment-error");
    var liveLink = document.getElementById("live-link");
    var cancelForm = document.getElementById("cancel-deployment");
    // seconds formats a phase's duration the way the server renders it.
    var seconds = function (ms) {
      var s = Math.round(ms / 100) / 10;
      return s < 60 ? s + "s" : Math.floor(s / 60) + "m" + Math.round(s % 60) + "s";
    };
    var showStatus = function (d) {
      badge.textContent = d.status;
      badge.dataset.status = d.status;
      badge.className = "badge " + (d.status === "live" ? "ok" : d.status === "failed" ? "bad" : order.indexOf(d.status) >= 0 ? "busy" : "");
      var cur = order.indexOf(d.status);
      var failed = cur < 0 && d.status !== "replaced" && d.status !== "stopped";
      if (failed) {
        (d.phases || []).forEach(function (p) { cur = Math.max(cur, order.indexOf(p.phase)); });
      }
      var timing = {};
      (d.phases || []).forEach(function (p) { timing[p.phase] = p; });
      phases.querySelectorAll("li").forEach(function (li, i) {
        var t = timing[li.dataset.phase], small = li.querySelector("small");
        if (t && small && li.dataset.phase !== "live") {
          var end = t.finished_at ? Date.parse(t.finished_at) : Date.now();
          small.textContent = seconds(end - Date.parse(t.started_at));
        }
        var state = "pending";
        if (d.status === "live" || d.status === "replaced" || d.status === "stopped" || i < cur) state = "done";
        else if (i === cur) state = failed ? "failed" : "current";
        li.className = state;
      });
      if (d.error) { errBox.querySelector("strong").textContent = d.error; errBox.classList.remove("hidden"); }
      if (d.status === "live") liveLink.classList.remove("hidden");
      var running = d.status !== "live" && order.indexOf(d.status) >= 0;
      if (cancelForm && !running) cancelForm.classList.add("hidden");
    };
    var follow = true;
    log.addEventListener("scroll", function () { follow = log.scrollTop + log.clientHeight >= log.scrollHeight - 8; });
    var es = new EventSource(log.dataset.events);
    es.addEventListener("log", function (e) {
      var l = JSON.parse(e.data);
      var span = document.createElement("span");
      if (l.Stream === "stderr") span.className = "stderr";
      // Progress output rewrites its line with carriage returns, as a
      // terminal would show it only the last state is kept.
      var parts = l.Text.split("\r").filter(function (p) { return p !== ""; });
      span.textContent = (parts.length ? parts[parts.length - 1] : "") + "\n";
      log.appendChild(span);
      if (follow) log.scrollTop = log.scrollHeight;
    });
    es.addEventListener("status", function (e) { showStatus(JSON.parse(e.data)); });
    es.addEventListener("end", function (e) {
      es.close();
      log.dataset.ended = JSON.parse(e.data).status;
    });
  }
})();
