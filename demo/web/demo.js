// The demo page: one chat pane per participant, the listener's conversation
// list and two notification feeds, each with its own WebSocket to the
// sidecar, rendering the frames of PROTOCOL.md sections 4–7, 10 and 11 as
// they come.
"use strict";

const $ = (root, sel) => root.querySelector(sel);

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function timeOf(iso) {
  const d = new Date(iso);
  return isNaN(d) ? iso : d.toLocaleTimeString();
}

// file_url is PUBLIC_BASE_URL + MEDIA_URL + path; open it on this page's
// origin, whatever host name the page was opened with.
function fileHref(u) {
  try { const p = new URL(u, location.href); return p.pathname + p.search; } catch (e) { return u; }
}

function humanSize(n) {
  if (n < 1024) return n + " B";
  if (n < 1024 * 1024) return (n / 1024).toFixed(1) + " KB";
  return (n / 1024 / 1024).toFixed(1) + " MB";
}

function fromTemplate(id) {
  return document.getElementById(id).content.firstElementChild.cloneNode(true);
}

// Socket is one WebSocket to the sidecar with its status line, Reconnect
// button and frame log, all inside card; onFrame gets each frame parsed,
// with its text. refused says why a handshake may be refused.
class Socket {
  constructor(card, path, refused, onFrame) {
    this.path = path;
    this.refused = refused;
    this.onFrame = onFrame;
    this.status = $(card, ".status");
    this.log = $(card, ".log");
    $(card, ".reconnect").addEventListener("click", () => this.connect());
  }

  get open() { return this.ws && this.ws.readyState === WebSocket.OPEN; }

  connect() {
    if (this.ws) { this.ws.onclose = null; this.ws.close(); }
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(proto + "//" + location.host + this.path);
    this.ws = ws;
    let opened = false;
    this.setStatus("connecting…", "");
    this.logLine("· connecting", "");
    ws.onopen = () => { opened = true; this.setStatus("connected", "up"); };
    ws.onmessage = (ev) => {
      let f;
      try { f = JSON.parse(ev.data); } catch (e) { this.logLine("← (not JSON) " + ev.data, "err"); return; }
      this.onFrame(f, ev.data);
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      if (opened) {
        this.setStatus(`closed (${ev.code})`, "down");
        this.logLine(`· closed ${ev.code} ${ev.reason}`, "err");
      } else {
        // The browser hides the HTTP status; the sidecar answers 403.
        this.setStatus("refused (HTTP 403)", "down");
        this.logLine(`· handshake refused (403: ${this.refused})`, "err");
      }
    };
  }

  send(data) { this.ws.send(data); }

  setStatus(text, cls) {
    this.status.textContent = text;
    this.status.className = "status " + cls;
  }

  logLine(text, cls) {
    const li = el("li", cls, text);
    this.log.append(li);
    while (this.log.children.length > 200) this.log.firstElementChild.remove();
    this.log.scrollTop = this.log.scrollHeight;
  }
}

// Pane is one participant's chat (ws/chat/<id>/).
class Pane {
  constructor(me, other) {
    this.me = me;
    this.other = other;
    this.messages = [];
    this.typingSent = false;
    this.typingTimer = null;
    this.root = fromTemplate("pane");
    this.root.id = me.role;
    $(this.root, ".name").textContent = me.name;
    $(this.root, ".who").textContent = `${me.role} · user ${me.id} · ${me.email}`;
    this.list = $(this.root, ".messages");
    this.errors = $(this.root, ".errors");
    this.typing = $(this.root, ".typing");
    this.sock = new Socket(this.root, me.ws_path, "blocked pair, bad token or not a participant",
      (f, data) => this.receive(f, data));
    const text = $(this.root, ".text");
    $(this.root, ".compose").addEventListener("submit", (ev) => {
      ev.preventDefault();
      this.setTyping(false);
      this.send({ type: "chat_message", message: text.value });
      text.value = "";
    });
    text.addEventListener("input", () => {
      this.setTyping(text.value !== "");
      clearTimeout(this.typingTimer);
      this.typingTimer = setTimeout(() => this.setTyping(false), 2000);
    });
    $(this.root, ".filebar").addEventListener("submit", (ev) => {
      ev.preventDefault();
      this.sendFile($(this.root, ".file"), $(this.root, ".caption"));
    });
    // Reading the pane marks the other side's messages read.
    this.root.addEventListener("focusin", () => this.markRead());
    this.root.addEventListener("click", () => this.markRead());
  }

  connect() { this.sock.connect(); }

  logLine(text, cls) { this.sock.logLine(text, cls); }

  send(frame) {
    if (!this.sock.open) {
      this.showError("not connected");
      return;
    }
    const data = JSON.stringify(frame);
    this.sock.send(data);
    let summary = frame.type;
    if (frame.type === "chat_message") summary += " " + JSON.stringify(frame.message);
    if (frame.type === "file_message") summary += ` ${frame.filename} (${frame.file.length} base64 chars)`;
    if (frame.type === "typing") summary += " " + frame.is_typing;
    this.logLine("→ " + summary, "out");
  }

  setTyping(on) {
    if (on === this.typingSent) return;
    this.typingSent = on;
    this.send({ type: "typing", is_typing: on });
  }

  sendFile(input, caption) {
    const f = input.files[0];
    if (!f) { this.showError("choose a file first"); return; }
    const r = new FileReader();
    r.onload = () => {
      const b64 = String(r.result).replace(/^data:[^,]*,/, "");
      this.send({ type: "file_message", file: b64, filename: f.name, message: caption.value });
      input.value = "";
      caption.value = "";
    };
    r.readAsDataURL(f);
  }

  markRead() {
    const unread = this.messages.some((m) => m.sender && m.sender.id !== this.me.id && !m.is_read);
    if (!unread || !this.sock.open) return;
    this.send({ type: "mark_read" });
    for (const m of this.messages) if (m.sender && m.sender.id !== this.me.id) m.is_read = true;
    this.render();
  }

  receive(f, data) {
    switch (f.type) {
      case "connection_established":
        this.logLine(`← connection_established "${f.message}"`, "");
        break;
      case "api_info":
        this.logLine(`← api_info ${f.method} ${f.endpoint}`, "");
        break;
      case "conversation_history":
        this.logLine(`← conversation_history (${f.count})`, "");
        this.messages = f.messages;
        this.latestID = null;
        this.render();
        this.markRead();
        break;
      case "new_message":
        this.logLine(`← new_message (${f.count}) latest #${f.latest_message && f.latest_message.id}`, "");
        this.messages = f.messages;
        this.latestID = f.latest_message && f.latest_message.id;
        this.render();
        this.markRead();
        break;
      case "typing": {
        this.logLine(`← typing ${f.user_email} ${f.is_typing}`, "");
        this.typing.hidden = !f.is_typing;
        this.typing.textContent = f.is_typing ? `${f.user_email} is typing…` : "";
        break;
      }
      case "read_receipt":
        this.logLine(`← read_receipt user ${f.user_id}`, "");
        for (const m of this.messages) if (m.sender && m.sender.id !== f.user_id) m.is_read = true;
        this.render();
        break;
      case "error":
        this.logLine(`← error "${f.message}"`, "err");
        this.showError(f.message);
        break;
      default:
        this.logLine("← " + data, "");
    }
  }

  showError(text) {
    const li = el("li", "", text);
    li.appendChild(el("small", "", new Date().toLocaleTimeString()));
    this.errors.prepend(li);
    while (this.errors.children.length > 3) this.errors.lastElementChild.remove();
  }

  render() {
    this.list.replaceChildren(...this.messages.map((m) => this.item(m)));
    this.list.scrollTop = 0;
  }

  item(m) {
    const mine = m.sender && m.sender.id === this.me.id;
    const li = el("li", "msg" + (mine ? " mine" : "") + (m.id === this.latestID ? " latest" : ""));
    li.dataset.id = m.id;
    const meta = el("div", "meta");
    meta.append(el("span", "from", m.sender ? m.sender.full_name : "?"), el("span", "", timeOf(m.created_at)),
      el("span", "read", m.is_read ? "✓✓ read" : "✓ unread"));
    li.append(meta);
    if (m.content) li.append(el("div", "content", m.content));
    const a = m.file_attachment;
    if (a) {
      const p = el("div", "file");
      const link = el("a", "", "📎 " + a.filename);
      link.href = fileHref(a.file_url);
      link.target = "_blank";
      p.append(link, document.createTextNode(` ${humanSize(a.file_size)} ${a.file_type || ""}`));
      li.append(p);
    }
    return li;
  }
}

// Inbox is a user's conversation list (ws/conversations/): each
// conversation_list or conversation_list_updated frame replaces it.
class Inbox {
  constructor(me) {
    this.me = me;
    this.root = fromTemplate("inbox");
    this.root.id = "inbox";
    $(this.root, ".name").textContent = `${me.name}'s inbox`;
    $(this.root, ".who").textContent = "ws/conversations/ · the whole list again after every conversation_update";
    this.list = $(this.root, ".convs");
    this.sock = new Socket(this.root, me.inbox_path, "bad token or inactive user", (f, data) => this.receive(f, data));
  }

  receive(f, data) {
    switch (f.type) {
      case "conversation_list":
        this.sock.logLine(`← conversation_list (${f.count}) "${f.message}"`, "");
        this.render(f.conversations, null);
        break;
      case "conversation_list_updated":
        this.sock.logLine(`← conversation_list_updated (${f.count}) latest #${f.latest_conversation_id}`, "");
        this.render(f.conversations, f.latest_conversation_id);
        break;
      case "connection_established":
        this.sock.logLine(`← connection_established "${f.message}"`, "");
        break;
      default:
        this.sock.logLine("← " + data, "");
    }
  }

  render(conversations, latest) {
    this.list.replaceChildren(...conversations.map((c) => this.item(c, latest)));
  }

  item(c, latest) {
    const li = el("li", "conv" + (c.id === latest ? " latest" : ""));
    li.dataset.id = c.id;
    li.dataset.status = c.status;
    const top = el("div", "top");
    top.append(el("span", "other", c.other_user_name), el("span", "badge st-" + c.status, c.status),
      el("span", "time", timeOf(c.last_message_at)));
    let preview;
    if (c.last_message_preview) {
      const who = c.last_message_sender_id === this.me.id ? "You: " : "";
      preview = el("div", "preview", who + c.last_message_preview);
    } else if (c.total_messages > 0) {
      preview = el("div", "preview none", "(the last message has no text: a file without caption)");
    } else if (c.initial_message) {
      preview = el("div", "preview initial", `Request: “${c.initial_message}”`);
    } else {
      preview = el("div", "preview none", "No messages yet");
    }
    const n = c.total_messages;
    li.append(top, preview, el("div", "meta", `#${c.id} · ${n} message${n === 1 ? "" : "s"}`));
    return li;
  }
}

// Notifications is a user's notification feed (ws/notifications/), each
// frame shown as it comes. For the listener, each request gets Accept and
// Reject; for the talker who has no conversation yet, a form opens one.
class Notifications {
  constructor(me, id, title, opts) {
    this.me = me;
    this.root = fromTemplate("notifications");
    this.root.id = id;
    $(this.root, ".name").textContent = title;
    $(this.root, ".who").textContent = `${me.role} · user ${me.id} · ${me.email} · ws/notifications/` + (opts.who ?? "");
    this.notes = $(this.root, ".notes");
    this.result = $(this.root, ".result");
    this.answers = opts.answers;
    this.sock = new Socket(this.root, me.notifications_path, "bad token or inactive user", (f, data) => this.receive(f, data));
    if (opts.requests) {
      const form = $(this.root, ".request");
      form.hidden = false;
      form.addEventListener("submit", (ev) => { ev.preventDefault(); this.request($(this.root, ".initial").value); });
    }
  }

  receive(f, data) {
    this.sock.logLine("← " + data, "");
    if (f.type === "pending_conversations_list") {
      this.note(f.type, f.message);
      for (const c of f.conversations) this.note("pending", `Request from ${c.talker_name}`, c.id, c.initial_message);
    } else if (f.type === "conversation_request") {
      this.note(f.type, f.message, f.conversation_id, f.initial_message);
    } else {
      this.note(f.type, f.message ?? "");
    }
  }

  // note adds one line; a request (id given) quotes its initial message
  // and, on the listener's feed, has Accept and Reject.
  note(type, text, id, initial) {
    const li = el("li", "note");
    li.dataset.type = type;
    li.append(el("span", "kind", type), el("span", "text", text), el("small", "", new Date().toLocaleTimeString()));
    if (id !== undefined) {
      li.dataset.id = id;
      if (initial) li.append(el("blockquote", "", initial));
      if (this.answers) {
        const bar = el("div", "answer");
        const outcome = el("span", "outcome");
        for (const verb of ["accept", "reject"]) {
          const b = el("button", verb, verb === "accept" ? "Accept" : "Reject");
          b.type = "button";
          b.title = `POST /demo/conversations/${id}/${verb}: what POST /api/chat/conversations/${id}/${verb}/ writes and sends`;
          b.addEventListener("click", () => this.answer(id, verb, bar, outcome));
          bar.append(b);
        }
        bar.append(outcome);
        li.append(bar);
      }
    }
    this.notes.append(li);
    while (this.notes.children.length > 50) this.notes.firstElementChild.remove();
    this.notes.scrollTop = this.notes.scrollHeight;
  }

  async answer(id, verb, bar, outcome) {
    try {
      const r = await post(`/demo/conversations/${id}/${verb}`);
      for (const b of bar.querySelectorAll("button")) b.disabled = true;
      outcome.textContent = `${r.status}: conversation_${verb}ed sent to the talker`;
      outcome.className = "outcome ok";
    } catch (e) {
      outcome.textContent = e.message;
      outcome.className = "outcome err";
    }
  }

  async request(initial) {
    this.result.hidden = false;
    try {
      const r = await post("/demo/conversations", { initial_message: initial });
      this.result.className = "result";
      if (r.created) {
        this.result.textContent = `Conversation #${r.conversation_id} created (pending): conversation_request sent to the listener.`;
      } else {
        this.result.textContent = `Conversation #${r.conversation_id} already exists (${r.status}): the endpoint answers 200 and sends no request` +
          (r.status === "pending" ? "; its initial message is now this one." : ".");
      }
    } catch (e) {
      this.result.className = "result err";
      this.result.textContent = e.message;
    }
  }
}

function showBlocked(blocked) {
  const b = document.getElementById("blockstate");
  b.textContent = blocked ? "talker blocked" : "not blocked";
  b.className = "badge" + (blocked ? " blocked" : "");
  document.getElementById("block").disabled = blocked;
  document.getElementById("unblock").disabled = !blocked;
}

// post sends body, if any, as JSON and returns the JSON answer; an error
// answer's "error" (the REST endpoints' text) becomes the exception's.
async function post(path, body) {
  const init = { method: "POST" };
  if (body !== undefined) {
    init.headers = { "Content-Type": "application/json" };
    init.body = JSON.stringify(body);
  }
  const r = await fetch(path, init);
  if (!r.ok) {
    const text = await r.text();
    let msg = text;
    try { msg = JSON.parse(text).error ?? text; } catch (e) { /* not JSON */ }
    throw new Error(`HTTP ${r.status}: ${msg.trim()}`);
  }
  return r.json();
}

async function main() {
  const cfg = await (await fetch("/demo/config", { cache: "no-store" })).json();
  document.getElementById("conv").textContent = `· conversation #${cfg.conversation_id}`;
  showBlocked(cfg.blocked);
  const panes = [new Pane(cfg.listener, cfg.talker), new Pane(cfg.talker, cfg.listener)];
  const inbox = new Inbox(cfg.listener);
  const listenerNotes = new Notifications(cfg.listener, "listener-notifications", `${cfg.listener.name}'s notifications`,
    { answers: true });
  const requester = new Notifications(cfg.requester, "requester", `${cfg.requester.name}'s notifications`,
    { requests: true, who: ` · a second talker, no conversation with ${cfg.listener.name} yet` });
  document.getElementById("listener-side").append(panes[0].root, inbox.root, listenerNotes.root);
  document.getElementById("talker-side").append(panes[1].root, requester.root);
  for (const s of [panes[0], panes[1], inbox, listenerNotes, requester]) s.sock.connect();
  window.panes = panes; // for the browser test, and the curious in the console
  for (const [id, path] of [["block", "/demo/block"], ["unblock", "/demo/unblock"]]) {
    document.getElementById(id).addEventListener("click", async () => {
      try { showBlocked((await post(path)).blocked); } catch (e) { panes[0].showError(String(e)); }
    });
  }
}

main().catch((e) => {
  document.getElementById("panes").textContent = "Could not load /demo/config: " + e;
});
