// The page that shows a profile's secret once: its address becomes the profile's own, so
// that reloading it (or coming back to it) shows the profile, never the secret again and
// never a second submission of the form that made it.
(function () {
  "use strict";
  var root = document.getElementById("secret-page");
  if (root && window.history && window.history.replaceState) {
    window.history.replaceState(null, "", root.dataset.profilePath);
  }
})();
