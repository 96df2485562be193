// The web admin: "Copy" buttons (data-copy = the id of the element whose
// text to copy).  Everything else works without JavaScript; htmx loads
// the live DNS check.
(function () {
  "use strict";

  function copied(button, ok) {
    var label = button.textContent;
    button.textContent = ok ? "Copied" : "Selected: press Ctrl+C";
    setTimeout(function () { button.textContent = label; }, 2000);
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("button[data-copy]") : null;
    if (!button) return;
    var source = document.getElementById(button.getAttribute("data-copy"));
    if (!source) return;
    var text = source.textContent;
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(function () { copied(button, true); },
        function () { copied(button, false); });
      return;
    }
    var range = document.createRange();
    range.selectNodeContents(source);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    var ok = false;
    try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
    copied(button, ok);
  });
})();
