// The claim page, live: the countdown (from the server's seconds left) and this claim's
// server-sent events. Without JavaScript the page still works by reloading.
(function () {
  "use strict";
  document.documentElement.classList.add("js");
  var root = document.getElementById("claim");
  if (!root) { return; }
  var timer = document.getElementById("timer");
  var finish = document.getElementById("finish");
  var deadline = Date.now() + parseInt(root.dataset.secondsLeft, 10) * 1000;
  var terminal = ["completed", "failed", "cancelled", "expired"];
  var source = null;

  function show(state) {
    root.dataset.state = state;
    document.querySelectorAll("[data-show-when]").forEach(function (el) {
      el.hidden = el.dataset.showWhen.split(" ").indexOf(state) < 0;
    });
    if (finish) { finish.disabled = state !== "proven"; }
    if (terminal.indexOf(state) >= 0) {
      timer.hidden = true;
      if (source) { source.close(); }
    }
  }

  function tick() {
    var left = Math.max(0, Math.round((deadline - Date.now()) / 1000));
    timer.textContent = Math.floor(left / 60) + ":" + ("0" + (left % 60)).slice(-2);
    if (left === 0 && terminal.indexOf(root.dataset.state) < 0) { show("expired"); }
  }

  if (terminal.indexOf(root.dataset.state) >= 0) { return; }
  tick();
  window.setInterval(tick, 250);
  source = new EventSource(root.dataset.events);
  source.addEventListener("state", function (e) {
    var d = JSON.parse(e.data);
    deadline = Date.now() + d.seconds_left * 1000;
    show(d.status);
  });
  source.addEventListener("proven", function () { show("proven"); });
  source.addEventListener("expired", function () { show("expired"); });
  source.addEventListener("failed", function () { show("failed"); });
  source.addEventListener("cancelled", function () { show("cancelled"); });
  source.addEventListener("completed", function (e) {
    var d = JSON.parse(e.data);
    show("completed");
    window.location.assign("/devices/" + encodeURIComponent(d.serial));
  });
})();
