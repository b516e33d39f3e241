// chatd's web client: one WebSocket back to the page's own host and port, IRC over it.
// Invariants:
// - The input box is never cleared except by sending what it holds: a reconnect keeps it.
// - After an unintended close the client retries after 1 s, doubling to 30 s, and rejoins
//   the channels it was in (chat.js keeps the buffers; the 001 handler joins them).
import { parse, parseCaps } from "./irc.js";
import { $, RETRY_FIRST_MS, SERVER, buffer, client, closeBuffer, isMe, renderNicks, requestHistory, setStatus,
  showLogin, state, switchTo } from "./chat.js";
import { dispatch } from "./handlers.js";
import { runCommand } from "./commands.js";

const RETRY_MAX_MS = 30000;

function socketUrl() {
  return `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/`;
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
    if (ws !== state.ws || typeof event.data !== "string") return;
    for (const line of event.data.split(/\r?\n/)) if (line) dispatch(parse(line));
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

// ---- the page ------------------------------------------------------------------------

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
