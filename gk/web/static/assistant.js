// The assistant page: a turn streams over /ws; when it ends the transcript
// is re-read from the server (Markdown rendered and sanitised there).
(function () {
  "use strict";
  var section = document.querySelector("section.assistant");
  if (!section || !window.gk) return;
  var transcript = document.getElementById("transcript");
  var form = document.getElementById("ask");
  var input = document.getElementById("ask-text");
  var stop = document.getElementById("ask-stop");
  var sendButton = document.getElementById("ask-send");
  var conversation = section.dataset.conversation || "";
  var streaming = null;
  var afterTurn = null;

  function busy(on) {
    sendButton.disabled = on;
    stop.hidden = !on;
    section.dataset.busy = on ? "true" : "false";
  }

  function add(kind, text) {
    var empty = transcript.querySelector(".empty");
    if (empty) empty.remove();
    var node = document.createElement("div");
    node.className = "msg " + kind;
    var p = document.createElement("p");
    p.textContent = text;
    node.appendChild(p);
    transcript.appendChild(node);
    node.scrollIntoView({ block: "end" });
    return p;
  }

  function trace(text, failed) {
    var node = document.createElement("p");
    node.className = "trace live" + (failed ? " failed" : "");
    node.textContent = text;
    transcript.appendChild(node);
  }

  function reload() {
    if (!conversation) return Promise.resolve();
    return fetch("/assistant/" + conversation + "/transcript", { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) {
        transcript.innerHTML = html;
        var last = transcript.lastElementChild;
        if (last) last.scrollIntoView({ block: "end" });
      }, function () {});
  }

  window.gk.on(function (name, data) {
    if (name !== "assistant" || data.conversation_id !== conversation) return;
    switch (data.type) {
      case "user": break; // shown when sent
      case "delta":
        if (!streaming) streaming = add("answer streaming", "");
        streaming.textContent += data.text;
        break;
      case "text":
        if (!streaming) streaming = add("answer streaming", "");
        streaming.textContent = data.text;
        streaming = null;
        break;
      case "tool_call": trace("Using " + data.name + "…"); break;
      case "tool_result": trace((data.is_error ? "Failed: " : "Done: ") + data.name, data.is_error); break;
      case "error": trace(data.message, true); break;
      case "state":
        streaming = null;
        busy(false);
        reload().then(function () {
          if (afterTurn && data.state === "done") { var next = afterTurn; afterTurn = null; next(); }
        });
        break;
    }
  });

  function ask(text) {
    busy(true);
    add("user", text);
    var ready = conversation
      ? Promise.resolve(conversation)
      : window.gk.send("assistant.create").then(function (r) {
          conversation = r.id;
          section.dataset.conversation = r.id;
          form.action = "/assistant/" + r.id + "/send";
          history.replaceState(null, "", "/assistant/" + r.id);
          return r.id;
        });
    ready.then(function (id) {
      return window.gk.send("assistant.send", { conversation_id: id, text: text });
    }).catch(function (error) {
      busy(false);
      trace(error.message || "The assistant could not be reached.", true);
    });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = input.value.trim();
    if (!text || sendButton.disabled) return;
    input.value = "";
    ask(text);
  });
  input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  stop.addEventListener("click", function () {
    if (conversation) window.gk.send("assistant.cancel", { conversation_id: conversation });
  });

  // Confirmation cards: approve / cancel over the socket; edit = refuse and
  // ask for the change once the turn is over.
  transcript.addEventListener("submit", function (event) {
    var target = event.target;
    var card = target.closest(".confirm");
    if (!card) return;
    event.preventDefault();
    var id = card.dataset.confirmation;
    if (target.hasAttribute("data-edit-form")) {
      var change = target.querySelector("textarea").value.trim();
      if (!change) return;
      afterTurn = function () { ask(change); };
      answer(card, id, false);
      return;
    }
    var approve = event.submitter ? event.submitter.value === "yes" : false;
    answer(card, id, approve);
  });
  transcript.addEventListener("click", function (event) {
    if (!event.target.hasAttribute("data-edit")) return;
    var card = event.target.closest(".confirm");
    var edit = card.querySelector("[data-edit-form]");
    edit.hidden = false;
    edit.querySelector("textarea").focus();
  });

  function answer(card, id, approve) {
    card.classList.remove("open");
    card.querySelectorAll("button").forEach(function (b) { b.disabled = true; });
    busy(true);
    window.gk.send("assistant.confirm", { confirmation_id: id, approve: approve }).catch(function (error) {
      busy(false);
      trace(error.message || "That confirmation could not be answered.", true);
    });
  }
})();
