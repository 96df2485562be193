// The contacts page: the list follows changes made elsewhere (another
// tab, a phone over CardDAV, the assistant), and deleting asks first.
(function () {
  "use strict";

  var pending = null;
  function refresh() {
    var list = document.getElementById("contact-list");
    if (!list || !window.htmx) return;
    window.htmx.ajax("GET", location.pathname + location.search, {
      target: "#contact-list", select: "#contact-list", swap: "outerHTML"
    });
  }
  if (window.gk) {
    window.gk.on(function (name) {
      if (name !== "contacts.changed") return;
      clearTimeout(pending);
      pending = setTimeout(refresh, 250);
    });
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form && form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) event.preventDefault();
  });
})();
