// The console's device list: "Select all on this page" ticks every row's box too, so what
// is selected is what is seen (the server takes the page's serials when it is ticked).
document.addEventListener("DOMContentLoaded", () => {
  const all = document.getElementById("select-page");
  if (!all) return;
  const boxes = () => document.querySelectorAll('input[type=checkbox][name=serial][form=bulk]');
  all.addEventListener("change", () => {
    for (const box of boxes()) box.checked = all.checked;
  });
  for (const box of boxes()) {
    box.addEventListener("change", () => {
      if (!box.checked) all.checked = false;
    });
  }
});
