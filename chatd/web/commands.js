// What the input box understands: text for the buffer in view, or a /command.
// runCommand returns true when the input was handled (so the box may be cleared) and
// false when it could not be sent: a disconnected client keeps what was typed.
import { isChannel } from "./irc.js";

const MAX_TEXT_BYTES = 400; // leaves room in the 512-byte line for the prefix the server adds

/** The text in pieces of at most MAX_TEXT_BYTES of UTF-8, never splitting a character. */
export function splitText(text) {
  const encoder = new TextEncoder();
  const pieces = [];
  let piece = "";
  let size = 0;
  for (const ch of text) {
    const length = encoder.encode(ch).length;
    if (size + length > MAX_TEXT_BYTES) {
      pieces.push(piece);
      piece = "";
      size = 0;
    }
    piece += ch;
    size += length;
  }
  if (piece) pieces.push(piece);
  return pieces;
}

function say(client, target, text, action = false) {
  for (const piece of splitText(text)) {
    const body = action ? `\x01ACTION ${piece}\x01` : piece;
    if (!client.send("PRIVMSG", target, body)) return false;
    client.localEcho(target, piece, action);
  }
  return true;
}

const COMMANDS = {
  join(client, args) {
    const [channels, keys] = args.split(/\s+/);
    if (!channels) return client.info("Usage: /join #channel [key]", "error");
    const names = channels.split(",").map((name) => (isChannel(name, client.state.chantypes) ? name : `#${name}`));
    names.forEach((name) => {
      client.buffer(name, "channel").wanted = true;
    });
    client.state.pendingSwitch = client.buffer(names[0], "channel").key;
    return keys ? client.send("JOIN", names.join(","), keys) : client.send("JOIN", names.join(","));
  },
  part(client, args) {
    const active = client.activeBuffer();
    const [first, ...rest] = args.split(" ");
    const name = isChannel(first, client.state.chantypes) ? first : active?.kind === "channel" ? active.name : "";
    const reason = isChannel(first, client.state.chantypes) ? rest.join(" ") : args;
    if (!name) return client.info("Usage: /part #channel [reason]", "error");
    const channel = client.buffer(name, "channel");
    channel.wanted = false;
    channel.closing = true;
    return reason ? client.send("PART", name, reason) : client.send("PART", name);
  },
  msg(client, args) {
    const match = /^(\S+)\s+(.+)$/.exec(args);
    if (!match) return client.info("Usage: /msg nick text", "error");
    if (!isChannel(match[1], client.state.chantypes)) client.switchTo(match[1]);
    return say(client, match[1], match[2]);
  },
  query(client, args) {
    const nick = args.trim();
    if (!nick) return client.info("Usage: /query nick", "error");
    client.switchTo(nick);
    return true;
  },
  me(client, args) {
    const active = client.activeBuffer();
    if (!active || active.kind === "server") return client.info("/me works in a channel or a conversation", "error");
    return say(client, active.name, args, true);
  },
  nick: (client, args) => client.send("NICK", args.trim()),
  topic(client, args) {
    const active = client.activeBuffer();
    if (active?.kind !== "channel") return client.info("/topic works in a channel", "error");
    return args ? client.send("TOPIC", active.name, args) : client.send("TOPIC", active.name);
  },
  close(client) {
    const active = client.activeBuffer();
    if (active) client.close(active.name);
    return true;
  },
  quit(client, args) {
    client.quit(args);
    return true;
  },
  quote(client, args) {
    return client.state.ws ? (client.state.ws.send(args), true) : false;
  },
};
COMMANDS.raw = COMMANDS.quote;
COMMANDS.j = COMMANDS.join;
COMMANDS.leave = COMMANDS.part;

/** Run one input line; true when it was handled, false when the connection is down. */
export function runCommand(client, input) {
  if (!client.connected()) {
    client.info("Not connected: your message is kept until the connection is back.", "error");
    return false;
  }
  if (input.startsWith("/") && !input.startsWith("//")) {
    const [, name, args = ""] = /^\/(\S+)\s*(.*)$/s.exec(input) || [];
    const command = COMMANDS[(name || "").toLowerCase()];
    if (command) return command(client, args) !== false;
    return COMMANDS.quote(client, `${(name || "").toUpperCase()} ${args}`.trim());
  }
  const active = client.activeBuffer();
  if (!active || active.kind === "server") {
    client.info("Join a channel first (/join #channel), or send a command.", "error");
    return true;
  }
  return say(client, active.name, input.startsWith("//") ? input.slice(1) : input);
}
