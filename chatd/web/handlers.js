// What each server message does to the chat state: one handler per command or numeric.
// ``dispatch`` is the only entry point; lines inside a batch wait for the batch's end,
// and a chathistory batch is merged into its buffer by time (see chat.js).
import { ctcpAction, isChannel, parseCaps, parsePrefix, saslPlain, stripFormatting, casefolder } from "./irc.js";
import { $, RETRY_FIRST_MS, SERVER, addLine, buffer, client, isMe, mergeHistory, rekey, renderAll, renderHeader,
  mentions, renderNicks, rerender, setStatus, showChat, state, switchTo } from "./chat.js";

const WANTED_CAPS = ["server-time", "message-tags", "echo-message", "batch", "draft/chathistory", "sasl",
  "away-notify", "account-notify", "extended-join", "multi-prefix", "draft/message-redaction"];

/** Handle one parsed server message (or hold it for the batch it belongs to). */
export function dispatch(msg) {
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
    if (batch.type !== "chathistory") return batch.messages.forEach(dispatch);
    const target = buffer(batch.target);
    const lines = batch.messages.filter((m) => m.command === "PRIVMSG" || m.command === "NOTICE").map(messageLine).filter(Boolean);
    const added = mergeHistory(target, lines);
    if (target.historyPending && added === 0) target.historyDone = true;
    target.historyPending = false;
  },
  PRIVMSG: onPrivmsg,
  NOTICE: onPrivmsg,
  REDACT(msg) {
    // A message taken back (IRCv3 message-redaction): its line says who deleted it, in its place.
    const [name, msgid, reason] = msg.params;
    const where = isChannel(name) || isMe(msg.nick) ? name : msg.nick;
    const target = state.buffers.get(state.fold(where));
    const line = target?.lines.find((candidate) => candidate.msgid === msgid);
    if (!line) return;
    Object.assign(line, { kind: "info", highlight: false,
      text: `(message deleted by ${msg.nick}${reason ? `: ${stripFormatting(reason)}` : ""})` });
    if (target.key === state.active) rerender();
  },
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
  const failure = msg.command >= "400" && msg.command < "600" && msg.command !== "422"; // 422: no MOTD
  if (failure && state.registered) return client.info(text, "error");
  addLine(buffer(SERVER), { kind: failure ? "error" : "info", text, time: new Date() });
}
