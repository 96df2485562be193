// The chat pages: messages are posted and received over /ws (docs/websocket.md),
// the room on screen is marked read, others' typing is shown and the room
// list's unread badges follow along. Without a live socket the forms post
// as plain HTML forms. Message text is user input: only textContent here.
(function () {
  "use strict";
  if (!window.gk) return;
  var gk = window.gk;
  var me = document.body.dataset.user || "";
  var section = document.getElementById("chat-room");
  var log = document.getElementById("chat-log");
  var room = section ? Number(section.dataset.room) : null;
  var live = !!section && section.dataset.live === "true";
  var readUpTo = 0;

  // gk.js asks which room is on screen (no toast for it).
  window.gkChatRoom = function () { return live ? room : null; };

  // -- times in the reader's own time zone ------------------------------------
  function formatTime(iso) {
    var when = new Date(iso);
    if (isNaN(when.getTime())) return "";
    var now = new Date();
    if (when.toDateString() === now.toDateString()) {
      return when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    }
    var options = { day: "numeric", month: "short" };
    if (when.getFullYear() !== now.getFullYear()) options.year = "numeric";
    return when.toLocaleDateString([], options);
  }

  function localizeTimes() {
    if (!log) return;
    log.querySelectorAll("time[datetime]").forEach(function (node) {
      var text = formatTime(node.getAttribute("datetime"));
      if (text) node.textContent = text;
    });
  }

  // -- the room list ---------------------------------------------------------------
  function roomLink(summary) {
    var item = document.createElement("li");
    var link = document.createElement("a");
    link.href = "/chat/" + summary.id;
    link.dataset.room = String(summary.id);
    if (summary.id === room) link.setAttribute("aria-current", "page");
    var name = document.createElement("span");
    name.className = summary.kind === "direct" ? "person" : "room-name";
    name.textContent = summary.name;
    link.appendChild(name);
    if (summary.kind === "private") {
      var note = document.createElement("small");
      note.textContent = "private";
      link.append(" ", note);
    }
    var badge = document.createElement("span");
    badge.className = "badge";
    badge.dataset.badge = String(summary.id);
    badge.hidden = !(summary.unread > 0);
    badge.textContent = String(summary.unread || 0);
    var hint = document.createElement("span");
    hint.className = "sr-only";
    hint.textContent = " unread";
    badge.appendChild(hint);
    link.append(" ", badge);
    item.appendChild(link);
    return item;
  }

  function fillList(list, rooms, emptyText) {
    if (!list) return;
    list.replaceChildren();
    rooms.forEach(function (summary) { list.appendChild(roomLink(summary)); });
    if (!rooms.length) {
      var empty = document.createElement("li");
      empty.className = "muted";
      empty.textContent = emptyText;
      list.appendChild(empty);
    }
  }

  var refreshing = false;
  var refreshAgain = false;
  function refreshRooms() {
    if (refreshing) { refreshAgain = true; return; }
    refreshing = true;
    gk.send("chat.rooms").then(function (result) {
      var all = result.rooms || [];
      fillList(document.getElementById("chat-rooms"),
        all.filter(function (r) { return r.kind !== "direct"; }), "You are in no room yet.");
      fillList(document.getElementById("chat-directs"),
        all.filter(function (r) { return r.kind === "direct"; }), "No direct messages yet.");
    }, function () {}).then(function () {
      refreshing = false;
      if (refreshAgain) { refreshAgain = false; refreshRooms(); }
    });
  }

  // -- the room's messages ----------------------------------------------------------
  function line(message) {
    var node = document.createElement("div");
    node.className = "chat-line" + (message.sender === me ? " mine" : "") +
      (message.deleted ? " deleted" : "");
    node.id = "m" + message.id;
    node.dataset.id = String(message.id);
    var who = document.createElement("b");
    who.className = "who";
    who.title = message.sender || "";
    who.textContent = message.sender ? message.sender.split("@")[0] : "(former member)";
    var text = document.createElement("span");
    text.className = "text";
    text.textContent = message.deleted ? "message deleted" : message.text;
    var time = document.createElement("time");
    time.setAttribute("datetime", message.created);
    time.textContent = formatTime(message.created);
    node.append(who, " ", text, " ", time);
    if (message.edited && !message.deleted) {
      var edited = document.createElement("small");
      edited.className = "edited";
      edited.textContent = "(edited)";
      node.append(" ", edited);
    }
    var reactions = message.reactions || {};
    var emojis = Object.keys(reactions);
    if (emojis.length && !message.deleted) {
      var box = document.createElement("span");
      box.className = "reactions";
      emojis.forEach(function (emoji) {
        var people = reactions[emoji] || [];
        var button = document.createElement("button");
        button.type = "button";
        button.className = "reaction" + (people.indexOf(me) >= 0 ? " on" : "");
        button.dataset.emoji = emoji;
        button.title = people.join(", ");
        button.setAttribute("aria-pressed", people.indexOf(me) >= 0 ? "true" : "false");
        button.textContent = emoji + " " + people.length;
        box.appendChild(button);
      });
      node.append(" ", box);
    }
    decorate(node);
    return node;
  }

  // The actions on a message: react to any, edit or delete one's own.
  function actionButton(label, action, title) {
    var button = document.createElement("button");
    button.type = "button";
    button.className = "msg-action link";
    button.dataset.action = action;
    button.textContent = label;
    button.title = title;
    return button;
  }

  function decorate(node) {
    if (node.classList.contains("deleted") || node.querySelector(".msg-actions")) return;
    var actions = document.createElement("span");
    actions.className = "msg-actions";
    actions.appendChild(actionButton("👍", "react", "React with 👍"));
    if (node.classList.contains("mine")) {
      actions.appendChild(actionButton("Edit", "edit", "Edit your message"));
      actions.appendChild(actionButton("Delete", "delete", "Delete your message"));
    }
    node.append(" ", actions);
  }

  function nearBottom() {
    return log.scrollHeight - log.scrollTop - log.clientHeight < 120;
  }

  function toBottom() { log.scrollTop = log.scrollHeight; }

  function newestId() {
    var lines = log.querySelectorAll(".chat-line");
    return lines.length ? Number(lines[lines.length - 1].dataset.id) : 0;
  }

  // Puts a message in its place (by id), or replaces the one shown.
  function show(message) {
    var node = line(message);
    var shown = document.getElementById(node.id);
    if (shown) { shown.replaceWith(node); return; }
    var stick = nearBottom() || message.sender === me;
    var empty = log.querySelector(".chat-empty");
    if (empty) empty.remove();
    var later = Array.prototype.find.call(log.querySelectorAll(".chat-line"), function (other) {
      return Number(other.dataset.id) > message.id;
    });
    log.insertBefore(node, later || null);
    if (stick) toBottom();
  }

  function markRead(messageId) {
    if (!live || !messageId || messageId <= readUpTo) return;
    if (document.visibilityState !== "visible") return;
    readUpTo = messageId;
    gk.send("chat.read", { room_id: room, message_id: messageId }).then(function () {
      var form = document.getElementById("mark-read");
      if (form) form.remove();
    }, function () { readUpTo = 0; });
  }

  // -- others typing ------------------------------------------------------------------
  var typists = {};
  function showTyping() {
    var box = document.getElementById("chat-typing");
    if (!box) return;
    var names = Object.keys(typists).map(function (email) { return email.split("@")[0]; });
    box.textContent = names.length === 0 ? "" :
      names.join(" and ") + (names.length === 1 ? " is typing…" : " are typing…");
  }
  function typing(user, on) {
    if (typists[user]) clearTimeout(typists[user]);
    delete typists[user];
    if (on) typists[user] = setTimeout(function () { typing(user, false); }, 5000);
    showTyping();
  }

  // -- live events ----------------------------------------------------------------------
  gk.on(function (name, data) {
    var here = live && data.room_id === room;
    if (name === "chat.message.posted" || name === "chat.message.edited" ||
        name === "chat.message.deleted" || name === "chat.reaction.changed") {
      var message = data.message || {};
      if (here && message.id) {
        show(message);
        if (name === "chat.message.posted" && message.sender !== me) {
          typing(message.sender, false);
          markRead(message.id);
        }
      } else if (name === "chat.message.posted" && message.sender !== me) {
        refreshRooms();
      }
    } else if (name === "chat.typing") {
      if (here && data.user !== me) typing(data.user, true);
    } else if (name === "chat.room.created" || name === "chat.member.joined" ||
               name === "chat.member.left" || name === "chat.read.marked") {
      refreshRooms();
    }
  });
  document.addEventListener("gk:connected", refreshRooms);

  if (!section || !log) return;

  log.querySelectorAll(".chat-line").forEach(decorate);
  log.addEventListener("click", function (event) {
    var button = event.target.closest("button");
    var node = button && button.closest(".chat-line");
    if (!node || !gk.ready()) return;
    var id = Number(node.dataset.id);
    var done = function (message) { show(message); problem(""); };
    var failed = function (err) { problem((err && err.message) || "That did not work."); };
    if (button.classList.contains("reaction")) {
      var on = !button.classList.contains("on");
      gk.send("chat.react", { message_id: id, emoji: button.dataset.emoji, on: on }).then(done, failed);
    } else if (button.dataset.action === "react") {
      var mine = node.querySelector('.reaction.on[data-emoji="👍"]');
      gk.send("chat.react", { message_id: id, emoji: "👍", on: !mine }).then(done, failed);
    } else if (button.dataset.action === "edit") {
      var current = node.querySelector(".text").textContent;
      var text = window.prompt("Edit your message", current);
      if (text === null || !text.trim() || text === current) return;
      gk.send("chat.edit", { message_id: id, text: text }).then(done, failed);
    } else if (button.dataset.action === "delete") {
      if (!window.confirm("Delete this message for everyone?")) return;
      gk.send("chat.delete", { message_id: id }).then(done, failed);
    }
  });

  // -- writing --------------------------------------------------------------------------
  var form = document.getElementById("chat-form");
  var input = document.getElementById("chat-text");
  var sendButton = document.getElementById("chat-send");
  var error = document.getElementById("chat-error");
  var lastTyping = 0;

  function problem(text) {
    error.textContent = text || "";
    error.hidden = !text;
  }

  form.addEventListener("submit", function (event) {
    // Without an open socket (or on an older page) the form posts as HTML.
    if (!live || !gk.ready()) return;
    event.preventDefault();
    var text = input.value;
    if (!text.trim()) { problem("Write a message first."); input.focus(); return; }
    sendButton.disabled = true;
    gk.send("chat.post", { room_id: room, text: text }).then(function (message) {
      input.value = "";
      problem("");
      show(message);
      toBottom();
    }, function (err) {
      problem((err && err.message) || "The message could not be sent.");
    }).then(function () {
      sendButton.disabled = false;
      input.focus();
    });
  });

  input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });

  input.addEventListener("input", function () {
    var now = Date.now();
    if (!live || !input.value.trim() || now - lastTyping < 3000 || !gk.ready()) return;
    lastTyping = now;
    gk.send("chat.typing", { room_id: room }).catch(function () {});
  });

  document.addEventListener("visibilitychange", function () { markRead(newestId()); });
  document.addEventListener("gk:connected", function () { markRead(newestId()); });
  document.body.addEventListener("htmx:afterSwap", localizeTimes);

  localizeTimes();
  if (live) {
    toBottom();
    markRead(Number(section.dataset.lastId) || newestId());
  }
})();
