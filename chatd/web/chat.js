// Chat state and its view: buffers (the server, channels, conversations), their lines and
// members, and how they are drawn.
// Invariants:
// - Network text reaches the page only through view.js (text nodes and checked links).
// - A buffer's lines are kept in time order without duplicate msgids, so the replay on
//   join, CHATHISTORY pages and a rejoin after a reconnect merge into one conversation.
import { build, casefolder, isChannel, parsePrefix } from "./irc.js";
import { bufferItem, lineNode, linkify, nickItem } from "./view.js";

export const RETRY_FIRST_MS = 1000;
const MAX_LINES = 2000;
const HISTORY_PAGE = 50;
export const SERVER = "*server*";
export const $ = (id) => document.getElementById(id);

export const state = {
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

// ---- buffers -------------------------------------------------------------------------

export function buffer(name, kind) {
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

export function rekey(found, name) {
  state.buffers.delete(found.key);
  found.key = state.fold(name);
  found.name = name;
  state.buffers.set(found.key, found);
  if (state.active !== SERVER && !state.buffers.has(state.active)) state.active = found.key;
}

export function switchTo(name) {
  const found = buffer(name);
  state.active = found.key;
  found.unread = 0;
  found.highlight = false;
  document.body.classList.remove("show-side");
  renderAll();
  if (found.kind === "query" && found.lines.every((line) => !line.msgid)) requestHistory(found, "LATEST");
  $("input").focus();
}

export function closeBuffer(name) {
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

export function mentions(text) {
  if (!state.nick) return false;
  const nick = state.nick.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return new RegExp(`(?<![\\w\\[\\]\\\\^{}|\`-])${nick}(?![\\w\\[\\]\\\\^{}|\`-])`, "i").test(text);
}

/** Add a line; unread counts and highlights for buffers not in view. */
export function addLine(target, line) {
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
export function mergeHistory(target, lines) {
  const fresh = lines.filter((line) => !line.msgid || !target.msgids.has(line.msgid));
  fresh.forEach((line) => line.msgid && target.msgids.add(line.msgid));
  target.lines = [...fresh, ...target.lines].sort((a, b) => a.time - b.time);
  if (target.key === state.active) rerender();
  return fresh.length;
}

/** Draw the buffer in view again (its lines changed), keeping the reader's distance from the bottom. */
export function rerender() {
  const box = $("messages");
  const fromBottom = box.scrollHeight - box.scrollTop;
  renderMessages();
  box.scrollTop = box.scrollHeight - fromBottom;
}

export function requestHistory(target, how) {
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

export function renderBuffers() {
  const items = [...state.buffers.values()].map((b) => bufferItem(b, b.key === state.active));
  $("buffers").replaceChildren(...items);
  const unread = [...state.buffers.values()].reduce((sum, b) => sum + b.unread, 0);
  document.title = unread ? `(${unread}) chatd` : "chatd";
}

function renderMessages() {
  const active = client.activeBuffer();
  $("messages").replaceChildren(...(active ? active.lines.map(lineNode) : []));
}

export function renderNicks() {
  const active = client.activeBuffer();
  const rank = (member) => (member.prefix ? state.prefix.symbols.indexOf(member.prefix[0]) : 99);
  const members = active?.kind === "channel" ? [...active.members.values()] : [];
  members.sort((a, b) => rank(a) - rank(b) || state.fold(a.nick).localeCompare(state.fold(b.nick)));
  $("nicks").replaceChildren(...members.map((member) => nickItem(member.nick, member)));
  document.body.classList.toggle("no-members", !members.length);
}

export function renderHeader() {
  const active = client.activeBuffer();
  $("buffer-name").textContent = active && active.kind !== "server" ? active.name : "server";
  $("topic").replaceChildren(linkify(active?.topic || ""));
}

export function renderAll() {
  renderBuffers();
  renderMessages();
  renderNicks();
  renderHeader();
  const box = $("messages");
  box.scrollTop = box.scrollHeight;
}

export function setStatus(text) {
  $("status").textContent = text;
}

export function isMe(nick) {
  return state.fold(nick) === state.fold(state.nick);
}

export function showLogin() {
  $("login").hidden = false;
  $("chat").hidden = true;
  $("connect").disabled = false;
}

export function showChat() {
  $("login").hidden = true;
  $("chat").hidden = false;
  renderAll();
}

/** Ask the server what it offers before the form is filled: the account fields appear with SASL. */
