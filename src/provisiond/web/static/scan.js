// The QR reader of the "Register device" page: the phone's back camera, decoded with jsQR
// (from the npm registry). The raw text is posted with the form, as if typed: the server
// decides what it is. Without a camera or JavaScript, the typed serial still works.
(function () {
  "use strict";
  var box = document.getElementById("scanner");
  var form = document.getElementById("provision-form");
  if (!box || !form || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia ||
      typeof window.jsQR !== "function") {
    return;
  }
  box.hidden = false;
  var video = document.getElementById("scan-video");
  var button = document.getElementById("scan-start");
  var status = document.getElementById("scan-status");
  var input = form.querySelector("[name=serial]");
  var canvas = document.createElement("canvas");
  var context = canvas.getContext("2d", { willReadFrequently: true });
  var stream = null;

  function stop() {
    if (stream) { stream.getTracks().forEach(function (t) { t.stop(); }); }
    stream = null;
    video.hidden = true;
  }

  function look() {
    if (!stream) { return; }
    if (video.readyState >= 2 && video.videoWidth > 0) {
      canvas.width = video.videoWidth;
      canvas.height = video.videoHeight;
      context.drawImage(video, 0, 0, canvas.width, canvas.height);
      var image = context.getImageData(0, 0, canvas.width, canvas.height);
      var code = window.jsQR(image.data, image.width, image.height,
                             { inversionAttempts: "attemptBoth" });
      if (code && code.data) {
        // Hold the frame for a moment so the person sees what was read, then post it.
        video.pause();
        video.classList.add("border-success", "border-3");
        input.value = code.data;
        status.textContent = "Scanned " + code.data;
        window.setTimeout(function () {
          stop();
          if (form.requestSubmit) { form.requestSubmit(); } else { form.submit(); }
        }, 600);
        return;
      }
    }
    window.setTimeout(look, 120);
  }

  button.addEventListener("click", function () {
    status.textContent = "Starting the camera…";
    navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false })
      .then(function (s) {
        stream = s;
        video.srcObject = s;
        video.hidden = false;
        return video.play();
      })
      .then(function () {
        button.hidden = true;
        status.textContent = "Point the camera at the QR label.";
        look();
      })
      .catch(function (err) {
        stop();
        status.textContent = "The camera is not available (" + err.name +
          "): type the serial below.";
      });
  });
})();
