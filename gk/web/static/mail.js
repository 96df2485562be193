// The mail pages: "select all" in a list, confirmation before deleting for
// good, the cursor at the top of a reply, and the list and folder counts
// brought up to date when mail arrives (gk.js's "gk:mail" event).
(function () {
  "use strict";

  var list = document.getElementById("mail-list");

  // -- select all ---------------------------------------------------------
  var all = document.getElementById("mail-select-all");
  if (all && list) {
    all.closest("label").hidden = false;
    all.addEventListener("change", function () {
      list.querySelectorAll('input[name="id"]').forEach(function (box) { box.checked = all.checked; });
    });
  }

  // -- deleting for good asks first ------------------------------------------
  document.addEventListener("submit", function (event) {
    var button = event.submitter;
    var question = button && button.getAttribute("data-confirm");
    if (question && !window.confirm(question)) event.preventDefault();
  });

  // -- a reply starts above the quote ------------------------------------------
  var body = document.querySelector('textarea[data-focus="start"]');
  if (body) {
    body.focus();
    body.setSelectionRange(0, 0);
    body.scrollTop = 0;
  }

  // -- new mail ------------------------------------------------------------------
  var refreshing = false;
  function refresh(folder) {
    if (refreshing) return;
    refreshing = true;
    fetch(location.href, { credentials: "same-origin" })
      .then(function (answer) { return answer.ok ? answer.text() : ""; })
      .then(function (text) {
        if (!text) return;
        var page = new DOMParser().parseFromString(text, "text/html");
        swap(page, "mail-folders");
        var selected = list && list.querySelector('input[name="id"]:checked');
        if (list && list.dataset.live && list.dataset.folder === folder && !selected) {
          swap(page, "mail-rows");
        }
      })
      .catch(function () {})
      .then(function () { refreshing = false; });
  }

  function swap(page, id) {
    var fresh = page.getElementById(id);
    var old = document.getElementById(id);
    if (fresh && old) old.replaceWith(document.importNode(fresh, true));
  }

  document.addEventListener("gk:mail", function (event) {
    var detail = event.detail || {};
    refresh(detail.folder || "");
  });
})();
