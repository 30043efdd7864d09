// The demo page: one pane per participant, each with its own WebSocket to
// the sidecar, rendering the frames of PROTOCOL.md sections 4–7 as they come.
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

class Pane {
  constructor(me, other) {
    this.me = me;
    this.other = other;
    this.messages = [];
    this.typingSent = false;
    this.typingTimer = null;
    this.root = document.getElementById("pane").content.firstElementChild.cloneNode(true);
    this.root.id = me.role;
    $(this.root, ".name").textContent = me.name;
    $(this.root, ".who").textContent = `${me.role} · user ${me.id} · ${me.email}`;
    this.status = $(this.root, ".status");
    this.list = $(this.root, ".messages");
    this.errors = $(this.root, ".errors");
    this.typing = $(this.root, ".typing");
    this.log = $(this.root, ".log");
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
    $(this.root, ".reconnect").addEventListener("click", () => this.connect());
    // Reading the pane marks the other side's messages read.
    this.root.addEventListener("focusin", () => this.markRead());
    this.root.addEventListener("click", () => this.markRead());
  }

  connect() {
    if (this.ws) { this.ws.onclose = null; this.ws.close(); }
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(proto + "//" + location.host + this.me.ws_path);
    this.ws = ws;
    let opened = false;
    this.setStatus("connecting…", "");
    this.logLine("· connecting", "");
    ws.onopen = () => { opened = true; this.setStatus("connected", "up"); };
    ws.onmessage = (ev) => this.receive(ev.data);
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      if (opened) {
        this.setStatus(`closed (${ev.code})`, "down");
        this.logLine(`· closed ${ev.code} ${ev.reason}`, "err");
      } else {
        // The browser hides the HTTP status; the sidecar answers 403 to a bad
        // token, a missing conversation, a non-participant or a blocked pair.
        this.setStatus("refused (HTTP 403)", "down");
        this.logLine("· handshake refused (403: blocked pair, bad token or not a participant)", "err");
      }
    };
  }

  setStatus(text, cls) {
    this.status.textContent = text;
    this.status.className = "status " + cls;
  }

  send(frame) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) {
      this.showError("not connected");
      return;
    }
    const data = JSON.stringify(frame);
    this.ws.send(data);
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
    if (!unread || !this.ws || this.ws.readyState !== WebSocket.OPEN) return;
    this.send({ type: "mark_read" });
    for (const m of this.messages) if (m.sender && m.sender.id !== this.me.id) m.is_read = true;
    this.render();
  }

  receive(data) {
    let f;
    try { f = JSON.parse(data); } catch (e) { this.logLine("← (not JSON) " + data, "err"); return; }
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

  logLine(text, cls) {
    const li = el("li", cls, text);
    this.log.append(li);
    while (this.log.children.length > 200) this.log.firstElementChild.remove();
    this.log.scrollTop = this.log.scrollHeight;
  }
}

function showBlocked(blocked) {
  const b = document.getElementById("blockstate");
  b.textContent = blocked ? "talker blocked" : "not blocked";
  b.className = "badge" + (blocked ? " blocked" : "");
  document.getElementById("block").disabled = blocked;
  document.getElementById("unblock").disabled = !blocked;
}

async function post(path) {
  const r = await fetch(path, { method: "POST" });
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status} ${await r.text()}`);
  return r.json();
}

async function main() {
  const cfg = await (await fetch("/demo/config", { cache: "no-store" })).json();
  document.getElementById("conv").textContent = `· conversation #${cfg.conversation_id}`;
  showBlocked(cfg.blocked);
  const panes = [new Pane(cfg.listener, cfg.talker), new Pane(cfg.talker, cfg.listener)];
  const host = document.getElementById("panes");
  for (const p of panes) { host.append(p.root); p.connect(); }
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
