// The chat page: the DOM and the WebSocket around the sans-I/O protocol module.
// Every frame the server sends is read by protocol.mjs's Decoder; every frame
// sent is made by its encoders. Outgoing messages go one after another (a
// chunked file must not be interleaved with anything), in WebSocket messages
// small enough for the server's --max-web-message.

import * as P from "./protocol.mjs";
import { addOwn, addReceived, fileLink, formatSize, span } from "./view.mjs";

const $ = (id) => document.getElementById(id);
const encoder = new TextEncoder();

/** Data bytes per WebSocket message of a file: 64 chunks of 999 (about 63 KiB). */
const FILE_STEP = 64 * P.MAX_CHUNK;
/** Unsent bytes the page lets the browser hold before it waits (backpressure). */
const HIGH_WATER = 512 * 1024;

const state = {
  config: {
    maxMessageBytes: 64 * 1024 * 1024,
    maxRecipients: 1000,
    maxLineBytes: 8192,
    maxWebMessageBytes: 1 << 20,
  },
  ws: null,
  decoder: null,
  me: null, // the userid once logged in
  pendingLogin: null, // the userid asked for, until OK or ERROR
  queue: Promise.resolve(), // outgoing messages, in order
  seen: new Set(),
};

// -- the connection ------------------------------------------------------------

function socketUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/chat`;
}

/** Open the WebSocket; resolves once it is open, rejects if it cannot be. */
function connect() {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(socketUrl());
    ws.binaryType = "arraybuffer";
    state.ws = ws;
    state.decoder = new P.Decoder();
    let opened = false;
    ws.onopen = () => {
      opened = true;
      resolve();
    };
    ws.onmessage = (event) => {
      if (ws !== state.ws) return;
      if (typeof event.data === "string") return; // the server sends bytes only
      state.decoder.feed(new Uint8Array(event.data));
      for (let ev = state.decoder.next(); ev !== null; ev = state.decoder.next()) {
        onEvent(ev);
        if (ev.type === "protocol-error") break;
      }
      showIncoming();
    };
    ws.onclose = () => {
      if (ws !== state.ws) return;
      state.ws = null;
      if (!opened) {
        reject(new Error("unreachable"));
      } else {
        connectionLost();
      }
    };
  });
}

function isOpen() {
  return state.ws !== null && state.ws.readyState === WebSocket.OPEN;
}

function connectionLost() {
  const wasIn = state.me !== null;
  state.pendingLogin = null;
  setStatus("disconnected");
  $("transfer").hidden = true;
  if (!$("error").hidden) return; // what went wrong is already said
  showError(
    wasIn
      ? "The connection to the server was lost. Messages sent since may not have arrived."
      : "The connection to the server was lost.",
  );
}

function showError(text) {
  $("error-text").textContent = text;
  $("error").hidden = false;
  $("reconnect").focus();
}

async function reconnect() {
  $("error").hidden = true;
  try {
    await connect();
  } catch {
    showError("Could not reach the server. Is it running? Try again in a moment.");
    return;
  }
  if (state.me !== null) {
    login(state.me); // log in again under the same userid
  } else {
    showLogin();
  }
}

// -- what the server says ------------------------------------------------------

function onEvent(ev) {
  switch (ev.type) {
    case "ok":
      if (state.pendingLogin !== null) loggedIn(state.pendingLogin);
      break;
    case "error":
      if (state.pendingLogin !== null) {
        loginRefused(state.pendingLogin);
      } else {
        notice(
          "The server answered ERROR to your last message: a recipient is not a valid " +
            "userid, there are too many, or the message is too big.",
        );
      }
      break;
    case "message":
      addReceived(ev, state.me, state.seen);
      break;
    case "protocol-error":
      showError(`The server sent something this page does not understand (${ev.reason}).`);
      state.ws?.close();
      break;
  }
}

function showIncoming() {
  const incoming = state.decoder.incoming;
  if (incoming !== null && incoming.size > 256 * 1024) {
    setStatus(`receiving from ${incoming.sender}: ${formatSize(incoming.size)}`);
  } else if (state.me !== null) {
    setStatus(`logged in as ${state.me}`);
  }
}

// -- logging in ---------------------------------------------------------------

function showLogin(message) {
  $("chat").hidden = true;
  $("login-form").hidden = false;
  const hint = $("login-message");
  hint.textContent = message ?? "1 to 32 letters, digits or signs, no spaces.";
  hint.classList.toggle("bad", message !== undefined);
  $("userid").focus();
  $("userid").select();
}

async function login(user) {
  if (!isOpen()) {
    try {
      await connect();
    } catch {
      showLogin("Could not reach the server. Is it running? Try again in a moment.");
      return;
    }
  }
  state.pendingLogin = user;
  state.ws.send(P.encodeLogin(user));
}

function loggedIn(user) {
  state.pendingLogin = null;
  state.me = user;
  setStatus(`logged in as ${user}`);
  $("login-form").hidden = true;
  $("chat").hidden = false;
  $("message").focus();
}

function loginRefused(user) {
  state.pendingLogin = null;
  state.me = null;
  showLogin(`The server refused "${user}": someone is using it, or it is not allowed. Choose another.`);
}

// -- sending ------------------------------------------------------------------

/** Run `job` after every message queued before it; a failure is shown, not thrown. */
function enqueue(job) {
  state.queue = state.queue.then(job).catch((error) => notice(error.message));
}

/** The recipients field as userids (empty: everyone), or null after saying what is wrong. */
function recipients() {
  const names = P.parseRecipients($("recipients").value);
  const bad = names.find((name) => !P.isValidUserid(name));
  if (bad !== undefined) {
    notice(`"${bad}" is not a userid (1 to 32 characters, no spaces).`);
    return null;
  }
  if (names.length > state.config.maxRecipients) {
    notice(`At most ${state.config.maxRecipients} recipients in one message.`);
    return null;
  }
  if (P.encodeCommand(names).length > state.config.maxLineBytes) {
    notice("That list of recipients is too long for one message; send it in parts.");
    return null;
  }
  return names;
}

function sendText() {
  const text = $("message").value;
  if (text === "" || state.me === null) return;
  const to = recipients();
  if (to === null) return;
  const body = encoder.encode(text);
  if (body.length > state.config.maxMessageBytes) {
    notice(`That text is over the server's limit of ${formatSize(state.config.maxMessageBytes)}.`);
    return;
  }
  $("message").value = "";
  notice(null);
  enqueue(async () => {
    await sendBytes(P.encodeMessage(to, body));
    if (to.length) addOwn(state.me, to, (li) => li.append(span("text", text)));
  });
}

/** Send `bytes` in WebSocket messages the server accepts, waiting while the browser holds a lot. */
async function sendBytes(bytes) {
  const step = Math.min(64 * 1024, state.config.maxWebMessageBytes);
  for (let at = 0; at < bytes.length; at += step) {
    await drained(HIGH_WATER);
    state.ws.send(bytes.subarray(at, at + step));
  }
}

/** Wait until the socket holds at most `limit` unsent bytes; fail if it closed. */
async function drained(limit) {
  for (;;) {
    if (!isOpen()) throw new Error("Not sent: the connection is closed.");
    if (state.ws.bufferedAmount <= limit) return;
    await new Promise((resolve) => setTimeout(resolve, 15));
  }
}

function sendFiles(files) {
  if (state.me === null) return;
  const to = recipients();
  if (to === null) return;
  for (const file of files) {
    const header = P.encodeFileHeader(file.name);
    if (header.length + file.size > state.config.maxMessageBytes) {
      notice(
        `"${file.name}" (${formatSize(file.size)}) is over the server's limit of ` +
          `${formatSize(state.config.maxMessageBytes)}.`,
      );
      continue;
    }
    enqueue(() => sendFile(file, header, to));
  }
}

async function sendFile(file, header, to) {
  const total = header.length + file.size;
  const bar = $("transfer-progress");
  $("transfer-name").textContent = `sending ${file.name}`;
  bar.value = 0;
  $("transfer").hidden = false;
  try {
    await drained(HIGH_WATER);
    state.ws.send(P.concat([P.encodeCommand(to), P.encodeChunks(header)]));
    let handed = header.length;
    for (let at = 0; at < file.size; at += FILE_STEP) {
      const piece = new Uint8Array(await file.slice(at, at + FILE_STEP).arrayBuffer());
      await drained(HIGH_WATER);
      state.ws.send(P.encodeChunks(piece));
      handed += piece.length;
      bar.value = Math.max(0, handed - state.ws.bufferedAmount) / total;
    }
    state.ws.send(P.CHUNKS_END);
    await drained(0);
    bar.value = 1;
  } finally {
    $("transfer").hidden = true;
  }
  if (to.length) addOwn(state.me, to, (li) => li.append(fileLink(file.name, [file], file.size)));
}

function notice(text) {
  $("notice").textContent = text ?? "";
  $("notice").hidden = !text;
}

function setStatus(text) {
  $("status").textContent = text;
}

// -- wiring -------------------------------------------------------------------

function wire() {
  $("login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const user = $("userid").value.trim();
    if (!P.isValidUserid(user)) {
      showLogin("A userid has 1 to 32 letters, digits or signs, and no spaces.");
      return;
    }
    login(user);
  });
  $("send-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sendText();
  });
  $("message").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      sendText();
    }
  });
  $("file").addEventListener("change", () => {
    sendFiles([...$("file").files]);
    $("file").value = "";
  });
  const chat = $("chat");
  chat.addEventListener("dragover", (event) => {
    event.preventDefault();
    chat.classList.add("dragging");
    $("drop-hint").hidden = false;
  });
  chat.addEventListener("dragleave", () => {
    chat.classList.remove("dragging");
    $("drop-hint").hidden = true;
  });
  chat.addEventListener("drop", (event) => {
    event.preventDefault();
    chat.classList.remove("dragging");
    $("drop-hint").hidden = true;
    sendFiles([...event.dataTransfer.files]);
  });
  $("reconnect").addEventListener("click", reconnect);
}

async function start() {
  wire();
  $("userid").focus();
  try {
    const answer = await fetch("config.json");
    if (answer.ok) Object.assign(state.config, await answer.json());
  } catch {
    // the defaults above are the server's defaults
  }
  document.body.dataset.ready = "true";
}

start();
