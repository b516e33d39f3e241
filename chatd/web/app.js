// chatd's web client: one WebSocket back to the page's own host and port, IRC over it.
// Invariants:
// - Network text reaches the page only through view.js (text nodes and checked links).
// - A buffer's lines are kept in time order without duplicate msgids, so the replay on
//   join, CHATHISTORY pages and a rejoin after a reconnect merge into one conversation.
// - The input box is never cleared except by sending what it holds: a reconnect keeps it.
import { build, casefolder, ctcpAction, isChannel, parse, parseCaps, parsePrefix, saslPlain, stripFormatting } from "./irc.js";
import { bufferItem, el, lineNode, linkify, nickItem } from "./view.js";
import { runCommand } from "./commands.js";

const WANTED_CAPS = ["server-time", "message-tags", "echo-message", "batch", "draft/chathistory", "sasl",
  "away-notify", "account-notify", "extended-join", "multi-prefix"];
const RETRY_FIRST_MS = 1000;
const RETRY_MAX_MS = 30000;
const MAX_LINES = 2000;
const HISTORY_PAGE = 50;
const SERVER = "*server*";
const $ = (id) => document.getElementById(id);

const state = {
  ws: null, registered: false, quitting: false, nick: "", login: null,
  offered: new Map(), caps: new Set(), fold: casefolder("rfc1459"), chantypes: "#&",
  prefix: parsePrefix("(ov)@+"), chanmodes: ["beI", "k", "l", "imnpst"], historyMax: 100,
  buffers: new Map(), active: SERVER, batches: new Map(), retryMs: RETRY_FIRST_MS, retryTimer: 0,
};

export const client = {
  state,
  send(command, ...params) {
    if (!state.ws || state.ws.readyState !== WebSocket.OPEN) return false;
    state.ws.send(build(command, ...params));
    return true;
  },
  connected: () => state.registered && state.ws?.readyState === WebSocket.OPEN,
  buffer: (name, kind) => buffer(name, kind),
  activeBuffer: () => state.buffers.get(state.active),
  switchTo: (name) => switchTo(name),
  close: (name) => closeBuffer(name),
  info: (text, kind = "info", target = client.activeBuffer()) => addLine(target, { kind, text, time: new Date() }),
  localEcho(target, text, action) {
    if (!state.caps.has("echo-message")) {
      addLine(buffer(target), { kind: action ? "action" : "message", nick: state.nick, text, time: new Date() });
    }
  },
  quit(reason) {
    state.quitting = true;
    client.send("QUIT", reason || "Leaving");
  },
};

function socketUrl() {
  return `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/`;
}

// ---- buffers -------------------------------------------------------------------------

function buffer(name, kind) {
  const key = name === SERVER ? SERVER : state.fold(name);
  let found = state.buffers.get(key);
  if (!found) {
    kind = kind || (name === SERVER ? "server" : isChannel(name, state.chantypes) ? "channel" : "query");
    found = { key, name, kind, lines: [], msgids: new Set(), unread: 0, highlight: false, topic: "",
      members: new Map(), wanted: kind === "channel", historyPending: false, historyDone: false };
    state.buffers.set(key, found);
    renderBuffers();
  }
  return found;
}

function rekey(found, name) {
  state.buffers.delete(found.key);
  found.key = state.fold(name);
  found.name = name;
  state.buffers.set(found.key, found);
  if (state.active !== SERVER && !state.buffers.has(state.active)) state.active = found.key;
}

function switchTo(name) {
  const found = buffer(name);
  state.active = found.key;
  found.unread = 0;
  found.highlight = false;
  document.body.classList.remove("show-side");
  renderAll();
  if (found.kind === "query" && found.lines.every((line) => !line.msgid)) requestHistory(found, "LATEST");
  $("input").focus();
}

function closeBuffer(name) {
  const found = buffer(name);
  if (found.kind === "server") return;
  if (found.kind === "channel" && found.members.size) {
    found.wanted = false;
    found.closing = true;
    client.send("PART", found.name);
    return;
  }
  state.buffers.delete(found.key);
  if (state.active === found.key) state.active = SERVER;
  renderAll();
}

function mentions(text) {
  if (!state.nick) return false;
  const nick = state.nick.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return new RegExp(`(?<![\\w\\[\\]\\\\^{}|\`-])${nick}(?![\\w\\[\\]\\\\^{}|\`-])`, "i").test(text);
}

/** Add a line; unread counts and highlights for buffers not in view. */
function addLine(target, line) {
  if (line.msgid) {
    if (target.msgids.has(line.msgid)) return;
    target.msgids.add(line.msgid);
  }
  target.lines.push(line);
  if (target.lines.length > MAX_LINES) target.lines.splice(0, target.lines.length - MAX_LINES);
  const social = line.kind === "message" || line.kind === "action" || line.kind === "notice";
  if (target.key === state.active) {
    const box = $("messages");
    const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
    box.append(lineNode(line));
    if (atBottom || line.nick === state.nick) box.scrollTop = box.scrollHeight;
  } else if (social && line.nick !== state.nick) {
    target.unread += 1;
    target.highlight ||= line.highlight || target.kind === "query";
    renderBuffers();
  }
}

/** Merge history into a buffer in time order, keeping the reader's distance from the bottom. */
function mergeHistory(target, lines) {
  const fresh = lines.filter((line) => !line.msgid || !target.msgids.has(line.msgid));
  fresh.forEach((line) => line.msgid && target.msgids.add(line.msgid));
  target.lines = [...fresh, ...target.lines].sort((a, b) => a.time - b.time);
  if (target.key !== state.active) return fresh.length;
  const box = $("messages");
  const fromBottom = box.scrollHeight - box.scrollTop;
  renderMessages();
  box.scrollTop = box.scrollHeight - fromBottom;
  return fresh.length;
}

function requestHistory(target, how) {
  if (!state.caps.has("draft/chathistory") || !client.connected() || target.historyPending) return;
  const oldest = target.lines.find((line) => line.msgid || line.fromServer);
  const limit = Math.min(HISTORY_PAGE, state.historyMax);
  if (how === "BEFORE" && oldest) {
    const ref = oldest.msgid ? `msgid=${oldest.msgid}` : `timestamp=${oldest.time.toISOString()}`;
    client.send("CHATHISTORY", "BEFORE", target.name, ref, limit);
  } else {
    client.send("CHATHISTORY", "LATEST", target.name, "*", limit);
  }
  target.historyPending = true;
}

// ---- rendering -----------------------------------------------------------------------

function renderBuffers() {
  const items = [...state.buffers.values()].map((b) => bufferItem(b, b.key === state.active));
  $("buffers").replaceChildren(...items);
  const unread = [...state.buffers.values()].reduce((sum, b) => sum + b.unread, 0);
  document.title = unread ? `(${unread}) chatd` : "chatd";
}

function renderMessages() {
  const active = client.activeBuffer();
  $("messages").replaceChildren(...(active ? active.lines.map(lineNode) : []));
}

function renderNicks() {
  const active = client.activeBuffer();
  const rank = (member) => (member.prefix ? state.prefix.symbols.indexOf(member.prefix[0]) : 99);
  const members = active?.kind === "channel" ? [...active.members.values()] : [];
  members.sort((a, b) => rank(a) - rank(b) || state.fold(a.nick).localeCompare(state.fold(b.nick)));
  $("nicks").replaceChildren(...members.map((member) => nickItem(member.nick, member)));
  document.body.classList.toggle("no-members", !members.length);
}

function renderHeader() {
  const active = client.activeBuffer();
  $("buffer-name").textContent = active && active.kind !== "server" ? active.name : "server";
  $("topic").replaceChildren(linkify(active?.topic || ""));
}

function renderAll() {
  renderBuffers();
  renderMessages();
  renderNicks();
  renderHeader();
  const box = $("messages");
  box.scrollTop = box.scrollHeight;
}

function setStatus(text) {
  $("status").textContent = text;
}

// ---- the connection ------------------------------------------------------------------

function connect() {
  clearTimeout(state.retryTimer);
  state.registered = false;
  state.quitting = false;
  state.caps = new Set();
  state.offered = new Map();
  setStatus("connecting…");
  const ws = new WebSocket(socketUrl(), "text.ircv3.net");
  state.ws = ws;
  ws.onopen = () => {
    client.send("CAP", "LS", "302");
    client.send("NICK", state.login.nick);
    client.send("USER", state.login.nick, "0", "*", state.login.nick);
  };
  ws.onmessage = (event) => {
    if (ws === state.ws && typeof event.data === "string") event.data.split(/\r?\n/).filter(Boolean).forEach(onLine);
  };
  ws.onclose = () => {
    if (ws !== state.ws) return;
    state.ws = null;
    const wasRegistered = state.registered;
    state.registered = false;
    for (const b of state.buffers.values()) b.members.clear();
    renderNicks();
    if (state.quitting) {
      setStatus("disconnected");
      showLogin();
      return;
    }
    if (wasRegistered) client.info("Disconnected from the server.", "error");
    const delay = state.retryMs;
    state.retryMs = Math.min(state.retryMs * 2, RETRY_MAX_MS);
    setStatus(`reconnecting in ${Math.round(delay / 1000)} s…`);
    $("login-error").textContent = wasRegistered ? "" : `Cannot reach the server; retrying in ${Math.round(delay / 1000)} s.`;
    state.retryTimer = setTimeout(connect, delay);
  };
}

function onLine(line) {
  const msg = parse(line);
  const batchId = msg.tags.batch;
  if (batchId && state.batches.has(batchId) && msg.command !== "BATCH") {
    state.batches.get(batchId).messages.push(msg);
    return;
  }
  (HANDLERS[msg.command] || onOther)(msg);
}

function messageLine(msg) {
  const parsed = ctcpAction(msg.params[1] ?? "");
  if (!parsed) return null;
  let time = msg.tags.time ? new Date(msg.tags.time) : new Date();
  if (Number.isNaN(time.getTime())) time = new Date();
  const kind = msg.command === "NOTICE" ? "notice" : parsed.action ? "action" : "message";
  const text = stripFormatting(parsed.text);
  const own = state.fold(msg.nick) === state.fold(state.nick);
  return { kind, nick: msg.nick, text, time, msgid: msg.tags.msgid, fromServer: Boolean(msg.tags.time),
    highlight: !own && mentions(text) };
}

function conversationOf(msg) {
  const target = msg.params[0] || "";
  if (isChannel(target, state.chantypes)) return target;
  if (!msg.source.includes("!") || !msg.nick) return SERVER;
  return state.fold(msg.nick) === state.fold(state.nick) ? target : msg.nick;
}

function onPrivmsg(msg) {
  const line = messageLine(msg);
  if (!line) return;
  const name = conversationOf(msg);
  if (name === SERVER && !state.registered) return addLine(buffer(SERVER), line);
  addLine(buffer(name), line);
}

function members(msg, each) {
  const key = state.fold(msg.nick);
  for (const b of state.buffers.values()) if (b.members.has(key)) each(b, b.members.get(key));
}

function memberOf(target, nick, prefix = "") {
  target.members.set(state.fold(nick), { nick, prefix, away: false });
}

function isMe(nick) {
  return state.fold(nick) === state.fold(state.nick);
}

function finishCaps() {
  client.send("CAP", "END");
}

function loginFailed(reason) {
  $("login-error").textContent = reason;
  client.quit("Login failed");
}

const HANDLERS = {
  PING: (msg) => client.send("PONG", ...msg.params),
  CAP(msg) {
    const sub = msg.params[1];
    if (sub === "LS") {
      const more = msg.params[2] === "*";
      for (const [name, value] of parseCaps(msg.params[more ? 3 : 2] || "")) state.offered.set(name, value);
      if (more) return;
      const wanted = WANTED_CAPS.filter((cap) => state.offered.has(cap) && (cap !== "sasl" || state.login.account));
      if (state.login.account && !state.offered.has("sasl")) return loginFailed("This server does not offer SASL.");
      if (wanted.length) client.send("CAP", "REQ", wanted.join(" "));
      else finishCaps();
    } else if (sub === "ACK") {
      for (const cap of (msg.params[2] || "").split(" ").filter(Boolean)) state.caps.add(cap.replace(/^-/, ""));
      if (state.caps.has("sasl") && state.login.account) client.send("AUTHENTICATE", "PLAIN");
      else finishCaps();
    } else if (sub === "NAK") {
      if (state.login.account) return loginFailed("The server refused to start SASL.");
      finishCaps();
    }
  },
  AUTHENTICATE(msg) {
    if (msg.params[0] === "+") saslPlain(state.login.account, state.login.password).forEach((chunk) => client.send("AUTHENTICATE", chunk));
  },
  903: finishCaps,
  904: (msg) => loginFailed(msg.params.at(-1) || "SASL authentication failed"),
  905: (msg) => loginFailed(msg.params.at(-1) || "SASL message too long"),
  906: (msg) => loginFailed(msg.params.at(-1) || "SASL aborted"),
  902: (msg) => loginFailed(msg.params.at(-1) || "You must use a nick assigned to you"),
  "001"(msg) {
    state.registered = true;
    state.nick = msg.params[0];
    state.retryMs = RETRY_FIRST_MS;
    setStatus(`${state.nick}${state.login.account ? ` (${state.login.account})` : ""}`);
    showChat();
    const channels = [...state.buffers.values()].filter((b) => b.kind === "channel" && b.wanted).map((b) => b.name);
    if (channels.length) client.send("JOIN", channels.join(","));
    addLine(buffer(SERVER), { kind: "info", text: msg.params.at(-1), time: new Date() });
  },
  "005"(msg) {
    for (const token of msg.params.slice(1, -1)) {
      const [name, value = ""] = token.split("=");
      if (name === "CASEMAPPING") state.fold = casefolder(value);
      else if (name === "CHANTYPES") state.chantypes = value;
      else if (name === "PREFIX") state.prefix = parsePrefix(value);
      else if (name === "CHANMODES") state.chanmodes = value.split(",");
      else if (name === "CHATHISTORY") state.historyMax = Number(value) || 100;
    }
  },
  433(msg) {
    if (state.registered) return onOther(msg);
    state.login.nick = `${msg.params[1] || state.login.nick}_`;
    client.send("NICK", state.login.nick);
  },
  BATCH(msg) {
    const ref = msg.params[0] || "";
    if (ref.startsWith("+")) {
      state.batches.set(ref.slice(1), { type: msg.params[1], target: msg.params[2], messages: [] });
      return;
    }
    const batch = state.batches.get(ref.slice(1));
    state.batches.delete(ref.slice(1));
    if (!batch) return;
    if (batch.type !== "chathistory") return batch.messages.forEach(onLine);
    const target = buffer(batch.target);
    const lines = batch.messages.filter((m) => m.command === "PRIVMSG" || m.command === "NOTICE").map(messageLine).filter(Boolean);
    const added = mergeHistory(target, lines);
    if (target.historyPending && added === 0) target.historyDone = true;
    target.historyPending = false;
  },
  PRIVMSG: onPrivmsg,
  NOTICE: onPrivmsg,
  JOIN(msg) {
    const target = buffer(msg.params[0], "channel");
    if (isMe(msg.nick)) {
      target.name = msg.params[0];
      target.wanted = true;
      target.members.clear();
      if (state.pendingSwitch === target.key) {
        state.pendingSwitch = null;
        switchTo(target.name);
      } else if (state.active === SERVER) switchTo(target.name);
    } else {
      addLine(target, { kind: "info", text: `${msg.nick} joined`, time: new Date() });
    }
    memberOf(target, msg.nick);
    if (target.key === state.active) renderNicks();
  },
  PART(msg) {
    const target = buffer(msg.params[0], "channel");
    if (isMe(msg.nick)) {
      target.members.clear();
      if (target.closing) {
        state.buffers.delete(target.key);
        if (state.active === target.key) state.active = SERVER;
        return renderAll();
      }
      target.wanted = false;
      addLine(target, { kind: "info", text: "You left the channel.", time: new Date() });
    } else {
      target.members.delete(state.fold(msg.nick));
      addLine(target, { kind: "info", text: `${msg.nick} left${msg.params[1] ? ` (${msg.params[1]})` : ""}`, time: new Date() });
    }
    renderNicks();
  },
  KICK(msg) {
    const target = buffer(msg.params[0], "channel");
    const who = msg.params[1];
    target.members.delete(state.fold(who));
    if (isMe(who)) {
      target.members.clear();
      target.wanted = false;
    }
    addLine(target, { kind: "info", text: `${who} was kicked by ${msg.nick} (${msg.params[2] || ""})`, time: new Date() });
    renderNicks();
  },
  QUIT(msg) {
    members(msg, (b) => {
      b.members.delete(state.fold(msg.nick));
      addLine(b, { kind: "info", text: `${msg.nick} quit (${msg.params[0] || ""})`, time: new Date() });
    });
    renderNicks();
  },
  NICK(msg) {
    const next = msg.params[0];
    members(msg, (b, member) => {
      b.members.delete(state.fold(msg.nick));
      b.members.set(state.fold(next), { ...member, nick: next });
      addLine(b, { kind: "info", text: `${msg.nick} is now known as ${next}`, time: new Date() });
    });
    const query = state.buffers.get(state.fold(msg.nick));
    if (query?.kind === "query") rekey(query, next);
    if (isMe(msg.nick)) {
      state.nick = next;
      setStatus(next);
    }
    renderAll();
  },
  MODE(msg) {
    const target = state.buffers.get(state.fold(msg.params[0] || ""));
    if (!target || target.kind !== "channel") return;
    const args = msg.params.slice(2);
    let adding = true;
    for (const mode of msg.params[1] || "") {
      if (mode === "+" || mode === "-") {
        adding = mode === "+";
        continue;
      }
      const rank = state.prefix.modes.indexOf(mode);
      const [listModes, alwaysArg, setArg] = state.chanmodes;
      if (rank >= 0) {
        const member = target.members.get(state.fold(args.shift() || ""));
        if (!member) continue;
        const symbol = state.prefix.symbols[rank];
        const symbols = new Set(member.prefix.replace(symbol, "") + (adding ? symbol : ""));
        member.prefix = [...state.prefix.symbols].filter((s) => symbols.has(s)).join("");
      } else if (listModes.includes(mode) || alwaysArg.includes(mode) || (adding && setArg.includes(mode))) {
        args.shift();
      }
    }
    addLine(target, { kind: "info", text: `${msg.nick} sets mode ${msg.params.slice(1).join(" ")}`, time: new Date() });
    renderNicks();
  },
  TOPIC(msg) {
    const target = buffer(msg.params[0], "channel");
    target.topic = msg.params[1] || "";
    addLine(target, { kind: "info", text: `${msg.nick} set the topic: ${target.topic}`, time: new Date() });
    renderHeader();
  },
  332(msg) {
    buffer(msg.params[1], "channel").topic = msg.params[2] || "";
    renderHeader();
  },
  333() {},
  331(msg) {
    buffer(msg.params[1], "channel").topic = "";
    renderHeader();
  },
  353(msg) {
    const target = buffer(msg.params[2], "channel");
    for (const entry of (msg.params[3] || "").split(" ").filter(Boolean)) {
      let at = 0;
      while (at < entry.length && state.prefix.symbols.includes(entry[at])) at += 1;
      memberOf(target, entry.slice(at).split("!")[0], entry.slice(0, at));
    }
  },
  366: renderNicks,
  AWAY(msg) {
    members(msg, (_, member) => {
      member.away = msg.params.length > 0;
    });
    renderNicks();
  },
  ACCOUNT() {},
  ERROR: (msg) => client.info(`Closing: ${msg.params[0] || ""}`, "error", buffer(SERVER)),
  FAIL(msg) {
    if (msg.params[0] === "CHATHISTORY") {
      for (const b of state.buffers.values()) if (b.historyPending) Object.assign(b, { historyPending: false, historyDone: true });
      return;
    }
    client.info(msg.params.at(-1), "error");
  },
};

function onOther(msg) {
  if (!/^\d{3}$/.test(msg.command)) return;
  const text = msg.params.slice(1).join(" ");
  const failure = msg.command >= "400" && msg.command < "600";
  if (failure && state.registered) return client.info(text, "error");
  addLine(buffer(SERVER), { kind: failure ? "error" : "info", text, time: new Date() });
}

// ---- the page ------------------------------------------------------------------------

function showLogin() {
  $("login").hidden = false;
  $("chat").hidden = true;
  $("connect").disabled = false;
}

function showChat() {
  $("login").hidden = true;
  $("chat").hidden = false;
  renderAll();
}

/** Ask the server what it offers before the form is filled: the account fields appear with SASL. */
function probe() {
  const ws = new WebSocket(socketUrl(), "text.ircv3.net");
  const offered = new Map();
  ws.onopen = () => ws.send("CAP LS 302");
  ws.onmessage = (event) => {
    const msg = parse(String(event.data).trim());
    if (msg.command !== "CAP" || msg.params[1] !== "LS") return;
    const more = msg.params[2] === "*";
    for (const [name, value] of parseCaps(msg.params[more ? 3 : 2] || "")) offered.set(name, value);
    if (more) return;
    const sasl = offered.get("sasl");
    $("sasl").hidden = sasl === undefined || (sasl !== "" && !sasl.split(",").includes("PLAIN"));
    ws.send("QUIT");
    ws.close();
  };
}

function start(event) {
  event.preventDefault();
  const nick = $("nick").value.trim();
  if (!nick) return;
  const account = $("account").value.trim();
  state.login = { nick, account, password: $("password").value };
  localStorage.setItem("chatd.nick", nick);
  localStorage.setItem("chatd.channels", $("channels").value);
  if (!state.buffers.size) buffer(SERVER);
  for (const name of $("channels").value.split(/[\s,]+/).filter(Boolean)) buffer(name, "channel").wanted = true;
  $("login-error").textContent = "";
  $("connect").disabled = true;
  state.retryMs = RETRY_FIRST_MS;
  connect();
}

function onClickNick(event) {
  const button = event.target.closest("button.nick");
  if (button && !isMe(button.dataset.nick)) switchTo(button.dataset.nick);
}

function wire() {
  $("nick").value = localStorage.getItem("chatd.nick") || "";
  $("channels").value = localStorage.getItem("chatd.channels") || "#lobby";
  $("login").addEventListener("submit", start);
  $("send-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = $("input");
    if (input.value && runCommand(client, input.value)) input.value = "";
  });
  $("join-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const name = $("join").value.trim();
    if (name && runCommand(client, `/join ${name}`)) $("join").value = "";
  });
  $("buffers").addEventListener("click", (event) => {
    const item = event.target.closest("li.buffer");
    if (!item) return;
    if (event.target.closest("button.close")) closeBuffer(item.dataset.name);
    else switchTo(item.dataset.name);
  });
  $("messages").addEventListener("click", onClickNick);
  $("nicks").addEventListener("click", (event) => {
    onClickNick(event);
    document.body.classList.remove("show-members");
  });
  const scrolledUp = () => {
    const active = client.activeBuffer();
    if ($("messages").scrollTop < 30 && active && active.kind !== "server" && !active.historyDone) requestHistory(active, "BEFORE");
  };
  $("messages").addEventListener("scroll", scrolledUp);
  $("messages").addEventListener("wheel", (event) => event.deltaY < 0 && scrolledUp());
  $("toggle-buffers").addEventListener("click", () => document.body.classList.toggle("show-side"));
  $("toggle-nicks").addEventListener("click", () => document.body.classList.toggle("show-members"));
  probe();
}

wire();
