// The IRC wire format, with no DOM and no socket: parse a line, build one, case-map names.
// Invariant: nothing here touches the page, so every function is safe on hostile input
// (it only returns strings and plain objects; the view decides how to show them).

const TAG_ESCAPES = { ":": ";", s: " ", "\\": "\\", r: "\r", n: "\n" };

/** The value of a message tag with its IRCv3 escapes undone. */
function unescapeTag(value) {
  return value.replace(/\\(.?)/g, (_, ch) => (ch in TAG_ESCAPES ? TAG_ESCAPES[ch] : ch));
}

/**
 * One IRC line (without CR/LF) as {tags, source, nick, command, params}.
 * A malformed line gives an object with an empty command rather than throwing.
 */
export function parse(line) {
  const msg = { tags: {}, source: "", nick: "", command: "", params: [] };
  let rest = line;
  if (rest.startsWith("@")) {
    const end = rest.indexOf(" ");
    const raw = end < 0 ? rest.slice(1) : rest.slice(1, end);
    for (const item of raw.split(";")) {
      if (!item) continue;
      const eq = item.indexOf("=");
      if (eq < 0) msg.tags[item] = "";
      else msg.tags[item.slice(0, eq)] = unescapeTag(item.slice(eq + 1));
    }
    rest = end < 0 ? "" : rest.slice(end + 1).replace(/^ +/, "");
  }
  if (rest.startsWith(":")) {
    const end = rest.indexOf(" ");
    msg.source = end < 0 ? rest.slice(1) : rest.slice(1, end);
    msg.nick = msg.source.split("!")[0].split("@")[0];
    rest = end < 0 ? "" : rest.slice(end + 1).replace(/^ +/, "");
  }
  while (rest) {
    if (rest.startsWith(":") && msg.command) {
      msg.params.push(rest.slice(1));
      break;
    }
    const end = rest.indexOf(" ");
    const word = end < 0 ? rest : rest.slice(0, end);
    if (!msg.command) msg.command = word.toUpperCase();
    else msg.params.push(word);
    rest = end < 0 ? "" : rest.slice(end + 1).replace(/^ +/, "");
  }
  return msg;
}

/** A line from a command and its parameters; the last one becomes trailing when it needs to. */
export function build(command, ...params) {
  const parts = [command];
  params.forEach((param, i) => {
    const text = String(param).replace(/[\r\n]/g, " ");
    const last = i === params.length - 1;
    if (last && (text === "" || text.includes(" ") || text.startsWith(":"))) parts.push(":" + text);
    else parts.push(text);
  });
  return parts.join(" ");
}

/** A lower-casing function for the server's CASEMAPPING (rfc1459 unless told ascii). */
export function casefolder(mapping) {
  if (mapping === "ascii") return (name) => name.toLowerCase();
  const strict = mapping === "strict-rfc1459";
  return (name) =>
    name
      .replace(/[A-Z]/g, (c) => c.toLowerCase())
      .replace(strict ? /[[\]\\]/g : /[[\]\\~]/g, (c) => ({ "[": "{", "]": "}", "\\": "|", "~": "^" })[c]);
}

/** Whether a name is a channel under the server's CHANTYPES. */
export function isChannel(name, chantypes = "#&") {
  return name.length > 1 && chantypes.includes(name[0]);
}

/** {text, action}: a CTCP ACTION's text, or the text itself. Other CTCP gives null. */
export function ctcpAction(text) {
  if (!text.startsWith("\x01")) return { text, action: false };
  const body = text.replace(/^\x01|\x01$/g, "");
  if (body.startsWith("ACTION ")) return { text: body.slice(7), action: true };
  if (body === "ACTION") return { text: "", action: true };
  return null;
}

/** The text with mIRC formatting (bold, colours, reset, ...) taken out: the view shows plain text. */
export function stripFormatting(text) {
  return text.replace(/\x03(\d{1,2}(,\d{1,2})?)?|\x04[0-9a-fA-F]{0,6}(,[0-9a-fA-F]{6})?|[\x02\x0f\x11\x16\x1d\x1e\x1f]/g, "");
}

/** SASL PLAIN's response for ``account``/``password``, base64 of UTF-8, in 400-byte AUTHENTICATE chunks. */
export function saslPlain(account, password) {
  const bytes = new TextEncoder().encode(`\0${account}\0${password}`);
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  const encoded = btoa(binary);
  const chunks = [];
  for (let i = 0; i < encoded.length; i += 400) chunks.push(encoded.slice(i, i + 400));
  if (encoded.length % 400 === 0) chunks.push("+");
  return chunks;
}

/** {modes, symbols} from ISUPPORT PREFIX, e.g. "(ov)@+". */
export function parsePrefix(value) {
  const match = /^\(([^)]*)\)(.*)$/.exec(value || "");
  if (!match || match[1].length !== match[2].length) return { modes: "ov", symbols: "@+" };
  return { modes: match[1], symbols: match[2] };
}

/** The capabilities of a CAP LS/NEW parameter as a Map of name to value ("" when none). */
export function parseCaps(text) {
  const caps = new Map();
  for (const item of text.split(" ")) {
    if (!item) continue;
    const eq = item.indexOf("=");
    if (eq < 0) caps.set(item, "");
    else caps.set(item.slice(0, eq), item.slice(eq + 1));
  }
  return caps;
}
