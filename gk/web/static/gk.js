// gk's own script for every page: the CSRF header on htmx requests, the
// live socket (/ws, JSON protocol of docs/websocket.md) and notifications.
// No inline scripts anywhere: the Content-Security-Policy forbids them.
(function () {
  "use strict";

  var csrfMeta = document.querySelector('meta[name="csrf-token"]');
  var csrf = csrfMeta ? csrfMeta.getAttribute("content") : "";

  document.addEventListener("htmx:configRequest", function (event) {
    if (csrf) event.detail.headers["X-CSRF-Token"] = csrf;
  });

  // -- the live socket ------------------------------------------------------
  var socket = null;
  var nextId = 1;
  var waiting = {};
  var queue = [];
  var retry = 1000;
  var listeners = [];
  var opened = false;

  function connect() {
    if (!document.body.dataset.user) return;
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + location.host + "/ws");
    socket.onopen = function () {
      retry = 1000;
      opened = true;
      var pending = queue;
      queue = [];
      pending.forEach(function (frame) { socket.send(frame); });
      document.dispatchEvent(new CustomEvent("gk:connected"));
    };
    socket.onmessage = function (message) {
      var data;
      try { data = JSON.parse(message.data); } catch (e) { return; }
      if (data.type === "event") {
        listeners.forEach(function (fn) { fn(data.event, data.data || {}); });
        return;
      }
      var handlers = waiting[data.id];
      if (!handlers) return;
      delete waiting[data.id];
      if (data.type === "reply") handlers.resolve(data.result);
      else handlers.reject(data.error || { code: "error", message: "failed" });
    };
    socket.onclose = function () {
      socket = null;
      Object.keys(waiting).forEach(function (id) {
        waiting[id].reject({ code: "closed", message: "connection lost" });
        delete waiting[id];
      });
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 30000);
    };
  }

  function send(type, args) {
    return new Promise(function (resolve, reject) {
      var id = "m" + nextId++;
      var frame = JSON.stringify(Object.assign({ type: type, id: id }, args || {}));
      waiting[id] = { resolve: resolve, reject: reject };
      if (socket && socket.readyState === 1) socket.send(frame);
      else queue.push(frame);
    });
  }

  function on(fn) { listeners.push(fn); }

  // -- notifications ----------------------------------------------------------
  function toast(text, href) {
    var box = document.getElementById("toasts");
    if (!box) return;
    var item = document.createElement(href ? "a" : "div");
    item.className = "toast";
    if (href) item.href = href;
    item.textContent = text;
    box.appendChild(item);
    setTimeout(function () { item.remove(); }, 8000);
  }

  function setChatBadge(count) {
    var badge = document.getElementById("chat-unread");
    if (!badge) return;
    badge.textContent = count > 0 ? String(count) : "";
    badge.hidden = !(count > 0);
  }

  var me = document.body.dataset.user || "";
  on(function (name, data) {
    if (name === "mail.delivered") {
      toast("New mail" + (data.from ? " from " + data.from : "") + (data.subject ? ": " + data.subject : ""), "/mail");
      document.dispatchEvent(new CustomEvent("gk:mail", { detail: data }));
    } else if (name === "chat.message.posted") {
      var message = data.message || {};
      var viewing = window.gkChatRoom && window.gkChatRoom() === data.room_id;
      if (message.sender !== me && !viewing) {
        toast(message.sender + ": " + (message.text || "").slice(0, 120), "/chat/" + data.room_id);
        refreshUnread();
      }
    } else if (name === "chat.read.marked") {
      refreshUnread();
    }
  });

  function refreshUnread() {
    if (!me) return;
    send("chat.rooms").then(function (result) {
      var total = 0;
      (result.rooms || []).forEach(function (room) { total += room.unread || 0; });
      setChatBadge(total);
    }, function () {});
  }

  window.gk = { send: send, on: on, toast: toast, csrf: csrf, refreshUnread: refreshUnread };

  if (me) {
    connect();
    document.addEventListener("gk:connected", refreshUnread);
  }
  // The socket is open when a test or a script waits for it.
  window.gk.ready = function () { return opened; };
})();
