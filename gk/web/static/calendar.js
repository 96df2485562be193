// The calendar pages: live refresh of the month and week views when the
// user's calendars change, the event form's all-day and repeat fields
// shown as they apply, and confirmation before a delete.
(function () {
  "use strict";

  // -- live refresh -----------------------------------------------------------
  var pending = null;
  function refresh() {
    var view = document.getElementById("calendar-view");
    if (!view || !window.htmx) return;
    window.htmx.ajax("GET", location.pathname + location.search, {
      target: "#calendar-view", select: "#calendar-view", swap: "outerHTML"
    });
  }
  if (window.gk) {
    window.gk.on(function (name) {
      if (name !== "calendar.changed") return;
      clearTimeout(pending);
      pending = setTimeout(refresh, 250);
    });
  }

  // -- the event form ---------------------------------------------------------
  function showTimes() {
    var allDay = document.getElementById("ev-all-day");
    if (!allDay) return;
    document.querySelectorAll(".timed-only").forEach(function (el) {
      el.hidden = allDay.checked;
    });
  }
  function showEnds() {
    var repeat = document.getElementById("ev-repeat");
    if (!repeat) return;
    var none = repeat.value === "none" || repeat.value === "custom";
    document.querySelectorAll(".repeat-ends").forEach(function (el) { el.hidden = none; });
  }
  // Moving the start date moves an end date that was before it.
  function keepEnd() {
    var start = document.getElementById("ev-start-date");
    var end = document.getElementById("ev-end-date");
    if (start && end && start.value && (!end.value || end.value < start.value)) end.value = start.value;
  }

  document.addEventListener("change", function (event) {
    var id = event.target && event.target.id;
    if (id === "ev-all-day") showTimes();
    else if (id === "ev-repeat") showEnds();
    else if (id === "ev-start-date") keepEnd();
  });

  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form && form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) event.preventDefault();
  });

  function init() { showTimes(); showEnds(); }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
