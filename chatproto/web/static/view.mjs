// The conversation on the page: entries for received and sent messages.
// Text goes in with textContent only (never as HTML); files become download
// links to blobs made here, images also thumbnails.

import * as P from "./protocol.mjs";

const $ = (id) => document.getElementById(id);

/** Show a received message (`me`: our userid; `seen`: userids suggested as recipients). */
export function addReceived(ev, me, seen) {
  if (ev.sender !== me && !seen.has(ev.sender)) {
    seen.add(ev.sender);
    const option = document.createElement("option");
    option.value = ev.sender;
    $("seen-users").append(option);
  }
  const li = entry(ev.sender, me);
  const body = P.classifyBody(ev.parts);
  if (body.kind === "text") {
    li.append(span("text", body.text));
  } else if (body.kind === "file") {
    li.append(span("text", "sent a file: "), fileLink(body.name, body.parts, body.size));
  } else {
    li.append(span("text", "sent data: "), fileLink(`${ev.sender}.bin`, body.parts, body.size));
  }
  show(li);
}

/** A message this page sent to chosen users (the server echoes only broadcasts). */
export function addOwn(me, to, fill) {
  const li = entry(me, me);
  li.append(span("to", `→ ${to.join(", ")}`));
  fill(li);
  show(li);
}

function entry(sender, me) {
  const li = document.createElement("li");
  li.classList.toggle("own", sender === me);
  const time = document.createElement("time");
  const now = new Date();
  time.className = "time";
  time.dateTime = now.toISOString();
  time.textContent = now.toLocaleTimeString([], { hour12: false });
  li.append(time, span("sender", sender));
  return li;
}

function show(li) {
  const list = $("messages");
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  list.append(li);
  if (atBottom || li.classList.contains("own")) li.scrollIntoView({ block: "end" });
}

/** A download link for a body (its name and size), with a thumbnail if it is an image. */
export function fileLink(name, parts, size) {
  const wrap = document.createElement("span");
  const head = parts[0] instanceof Uint8Array ? P.concat(parts.slice(0, 2)).subarray(0, 16) : null;
  const type = head === null ? null : P.imageType(head);
  const blob = new Blob(parts, { type: type ?? "application/octet-stream" });
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = name;
  link.className = "file";
  link.textContent = `${name} (${formatSize(size)})`;
  wrap.append(link);
  if (type !== null) {
    const img = document.createElement("img");
    img.className = "thumbnail";
    img.alt = name;
    img.src = link.href;
    wrap.append(img);
  }
  return wrap;
}

export function span(className, text) {
  const element = document.createElement("span");
  element.className = className;
  element.textContent = text;
  return element;
}

/** A size for people: B, KiB or MiB. */
export function formatSize(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
}
