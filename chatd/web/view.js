// Building the page's nodes from chat state.
// Invariant: text from the network only ever reaches the page through textContent or
// createTextNode, never innerHTML; a link is an <a> made by createElement whose href is
// set, as a property, only after URL() has parsed it as http: or https:.

const URL_PATTERN = /\bhttps?:\/\/[^\s<>"']+/gi;
const TRAILING_PUNCTUATION = /[.,;:!?)\]}]+$/;
export const NICK_COLOURS = 16;

/** A stable colour class for a nick (FNV-1a of its lower-cased form), the same in every browser. */
export function nickClass(nick) {
  let hash = 0x811c9dc5;
  for (const ch of nick.toLowerCase()) {
    hash ^= ch.codePointAt(0);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return `nc${hash % NICK_COLOURS}`;
}

/** An element with a class and, optionally, text (as a text node). */
export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** An <a> for an http(s) URL, or null for anything else (javascript:, data:, ...). */
export function safeLink(candidate) {
  let url;
  try {
    url = new URL(candidate);
  } catch {
    return null;
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return null;
  const link = document.createElement("a");
  link.href = url.href;
  link.rel = "noopener noreferrer";
  link.target = "_blank";
  link.textContent = candidate;
  return link;
}

/** The text as a fragment of text nodes and safe links. */
export function linkify(text) {
  const fragment = document.createDocumentFragment();
  let at = 0;
  for (const match of text.matchAll(URL_PATTERN)) {
    const url = match[0].replace(TRAILING_PUNCTUATION, "");
    const link = safeLink(url);
    if (!link) continue;
    if (match.index > at) fragment.append(document.createTextNode(text.slice(at, match.index)));
    fragment.append(link);
    at = match.index + url.length;
  }
  if (at < text.length) fragment.append(document.createTextNode(text.slice(at)));
  return fragment;
}

function clock(date) {
  return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hour12: false });
}

/**
 * One message line: {time: Date, kind: "message"|"action"|"notice"|"info"|"error", nick, text,
 * highlight}. A nick is a button (clicking it opens a private conversation).
 */
export function lineNode(line) {
  const row = el("div", `line ${line.kind}${line.highlight ? " highlight" : ""}`);
  const time = el("time", "time", clock(line.time));
  time.dateTime = line.time.toISOString();
  time.title = line.time.toLocaleString();
  row.append(time);
  if (line.kind === "message" || line.kind === "notice") {
    const nick = el("button", `nick ${nickClass(line.nick)}`, line.kind === "notice" ? `-${line.nick}-` : line.nick);
    nick.type = "button";
    nick.dataset.nick = line.nick;
    row.append(nick);
  } else if (line.kind === "action") {
    row.append(el("span", "star", "*"));
    const nick = el("button", `nick ${nickClass(line.nick)}`, line.nick);
    nick.type = "button";
    nick.dataset.nick = line.nick;
    row.append(nick);
  }
  const text = el("span", "text");
  text.append(linkify(line.text));
  row.append(text);
  return row;
}

/** An entry of the buffer list: name, unread count, highlight and a close button. */
export function bufferItem(buffer, active) {
  const item = el("li", "buffer");
  item.dataset.name = buffer.name;
  if (active) item.classList.add("active");
  if (buffer.highlight) item.classList.add("highlighted");
  if (buffer.kind === "server") item.classList.add("server");
  const open = el("button", "open", buffer.kind === "server" ? "server" : buffer.name);
  open.type = "button";
  item.append(open);
  if (buffer.unread > 0) item.append(el("span", "unread", String(buffer.unread)));
  if (buffer.kind !== "server") {
    const close = el("button", "close", "×");
    close.type = "button";
    close.title = buffer.kind === "channel" ? `Leave ${buffer.name}` : "Close";
    item.append(close);
  }
  return item;
}

/** An entry of the nick list: its highest prefix symbol and the nick, greyed when away. */
export function nickItem(nick, member) {
  const item = el("li", "member");
  item.dataset.nick = nick;
  if (member.away) item.classList.add("away");
  const button = el("button", `nick ${nickClass(nick)}`);
  button.type = "button";
  button.dataset.nick = nick;
  button.append(el("span", "prefix", member.prefix.slice(0, 1)), document.createTextNode(nick));
  item.append(button);
  return item;
}
