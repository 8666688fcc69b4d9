// The overview's period form: typing a date means a range, so the preset switches to it.
"use strict";
(function () {
  const days = document.getElementById("days");
  for (const id of ["from", "to"]) {
    const input = document.getElementById(id);
    if (days && input) {
      input.addEventListener("change", () => { days.value = "custom"; });
    }
  }
})();
