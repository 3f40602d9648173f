// The chat protocol for the page, sans I/O (PROTOCOL.md; STYLE.md §10):
// bytes in, events out; messages in, frames out. No DOM, no socket, no clock,
// so `node --test tests/js/` tests it as the server's codec is tested.

export const MAX_SHORT_BODY = 99; // PROTOCOL §3: a short body is 0..99 bytes
export const MAX_CHUNK = 999; // PROTOCOL §3: a chunk is 1..999 bytes
export const MAX_USERID = 32; // PROTOCOL §2
const MAX_REPLY_LINE = 1024; // longest line the server sends: FROM and a userid
const NL = 0x0a;

const encoder = new TextEncoder();
const ascii = (text) => encoder.encode(text);

// -- userids and recipients --------------------------------------------------

/** Whether `user` is a valid userid: 1 to 32 printable ASCII characters, no space. */
export function isValidUserid(user) {
  return typeof user === "string" && /^[\x21-\x7e]{1,32}$/.test(user);
}

/** The recipients written in a field ("bob, carol dave"): distinct userids, in order. */
export function parseRecipients(text) {
  const seen = new Set();
  for (const name of text.split(/[\s,]+/)) {
    if (name) seen.add(name);
  }
  return [...seen];
}

// -- frames out --------------------------------------------------------------

/** `ME IS <user>\n` (PROTOCOL §2). */
export function encodeLogin(user) {
  if (!isValidUserid(user)) throw new RangeError(`not a userid: ${JSON.stringify(user)}`);
  return ascii(`ME IS ${user}\n`);
}

/** The command line of a message: `BROADCAST\n`, or `SEND a b\n` for recipients. */
export function encodeCommand(recipients) {
  if (recipients === null || recipients.length === 0) return ascii("BROADCAST\n");
  for (const name of recipients) {
    if (!isValidUserid(name)) throw new RangeError(`not a userid: ${JSON.stringify(name)}`);
  }
  return ascii(`SEND ${recipients.join(" ")}\n`);
}

/** Chunk frames (`C<n>\n` and n bytes, n <= 999) carrying all of `data`; no end frame. */
export function encodeChunks(data) {
  const count = Math.ceil(data.length / MAX_CHUNK);
  const out = new Uint8Array(data.length + count * 5);
  let at = 0;
  for (let start = 0; start < data.length; start += MAX_CHUNK) {
    const piece = data.subarray(start, start + MAX_CHUNK);
    const head = ascii(`C${piece.length}\n`);
    out.set(head, at);
    out.set(piece, at + head.length);
    at += head.length + piece.length;
  }
  return out.subarray(0, at);
}

/** The frame that ends a chunked body. */
export const CHUNKS_END = ascii("C0\n");

/**
 * A whole message as the bytes to send: short if the body fits in 99 bytes,
 * chunked otherwise (PROTOCOL §3). `recipients` null or empty: BROADCAST.
 */
export function encodeMessage(recipients, body) {
  const command = encodeCommand(recipients);
  if (body.length <= MAX_SHORT_BODY) {
    return concat([command, ascii(`${body.length}\n`), body]);
  }
  return concat([command, encodeChunks(body), CHUNKS_END]);
}

/** One Uint8Array holding the given ones in order. */
export function concat(parts) {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

// -- files: the header chat_client and the page agree on ---------------------

/** What a file body starts with: NUL, "chatproto-file", NUL; then name, NUL, bytes. */
export const FILE_MAGIC = ascii("\x00chatproto-file\x00");
export const MAX_FILE_NAME_BYTES = 255;

/** The header marking a body as the file `name` (a base name; "/" and NUL become "_"). */
export function encodeFileHeader(name) {
  let raw = encoder.encode(name.replace(/[\x00/]/g, "_") || "file");
  if (raw.length > MAX_FILE_NAME_BYTES) {
    raw = encoder.encode(
      new TextDecoder().decode(raw.subarray(0, MAX_FILE_NAME_BYTES)).replace(/\uFFFD+$/, ""),
    );
  }
  return concat([FILE_MAGIC, raw, new Uint8Array([0])]);
}

/** The header at the start of `head` as {name, length}, or null if the body has none. */
export function parseFileHeader(head) {
  if (head.length <= FILE_MAGIC.length) return null;
  for (let i = 0; i < FILE_MAGIC.length; i++) if (head[i] !== FILE_MAGIC[i]) return null;
  const limit = Math.min(head.length, FILE_MAGIC.length + MAX_FILE_NAME_BYTES + 1);
  const end = head.subarray(0, limit).indexOf(0, FILE_MAGIC.length);
  if (end <= FILE_MAGIC.length) return null; // no end, or an empty name
  try {
    const name = new TextDecoder("utf-8", { fatal: true }).decode(
      head.subarray(FILE_MAGIC.length, end),
    );
    return { name, length: end + 1 };
  } catch {
    return null;
  }
}

/** Longest body shown as text; a longer one is offered as a file (as chat_client does). */
export const MAX_TEXT_BYTES = 64 * 1024;

/**
 * What a received body is: {kind: "text", text}, {kind: "file", name, parts,
 * size} (its header removed) or {kind: "binary", parts, size}: not UTF-8 text
 * (or with control characters, or over 64 KiB), shown as `<sender>.bin`.
 */
export function classifyBody(parts) {
  const size = parts.reduce((sum, part) => sum + part.length, 0);
  const head = concat(takeBytes(parts, FILE_MAGIC.length + MAX_FILE_NAME_BYTES + 1));
  const header = parseFileHeader(head);
  if (header !== null) {
    return { kind: "file", name: header.name, parts: dropBytes(parts, header.length), size: size - header.length };
  }
  if (size <= MAX_TEXT_BYTES) {
    try {
      const text = new TextDecoder("utf-8", { fatal: true }).decode(concat(parts));
      if (!/[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/.test(text)) return { kind: "text", text };
    } catch {
      // not UTF-8: binary
    }
  }
  return { kind: "binary", parts, size };
}

/** The image type of a file by its first bytes (PNG, JPEG, GIF, WebP), or null. */
export function imageType(head) {
  const starts = (bytes, at = 0) => bytes.every((byte, i) => head[at + i] === byte);
  if (starts([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return "image/png";
  if (starts([0xff, 0xd8, 0xff])) return "image/jpeg";
  if (starts([0x47, 0x49, 0x46, 0x38])) return "image/gif";
  if (starts([0x52, 0x49, 0x46, 0x46]) && starts([0x57, 0x45, 0x42, 0x50], 8)) return "image/webp";
  return null;
}

function takeBytes(parts, count) {
  const out = [];
  for (const part of parts) {
    if (count <= 0) break;
    out.push(part.subarray(0, count));
    count -= part.length;
  }
  return out;
}

function dropBytes(parts, count) {
  const out = [];
  for (const part of parts) {
    if (count >= part.length) {
      count -= part.length;
    } else {
      out.push(count > 0 ? part.subarray(count) : part);
      count = 0;
    }
  }
  return out;
}

// -- bytes in: what the server sends a client --------------------------------

/**
 * Reads the server's stream: `OK`, `ERROR`, and `FROM <sender>\n<body>`
 * (short or chunked). `feed(bytes)` only stores; `next()` returns one event
 * or null when it needs more bytes, like the server's own decoder:
 *
 *   {type: "ok"} | {type: "error"}
 *   {type: "message", sender, parts: [Uint8Array], size}
 *   {type: "protocol-error", reason}   (the stream is broken; every later call says so)
 *
 * Bodies are kept as the pieces they came in (no copy); `incoming` tells a
 * chunked body's sender and size so far, for a progress display.
 */
export class Decoder {
  constructor() {
    this._pieces = []; // received, not yet read; the first from _offset
    this._offset = 0;
    this._length = 0;
    this._state = "line"; // line | short | chunk | chunk-line
    this._sender = null;
    this._body = [];
    this._size = 0;
    this._need = 0; // bytes still to read of a short body or chunk
    this._failed = null;
  }

  /** Store `data` (a Uint8Array) from the stream. */
  feed(data) {
    if (data.length) {
      this._pieces.push(data);
      this._length += data.length;
    }
  }

  /** The message being received, as {sender, size}, or null. */
  get incoming() {
    return this._sender === null ? null : { sender: this._sender, size: this._size };
  }

  /** The next event, or null until more bytes come. */
  next() {
    if (this._failed !== null) return this._failed;
    for (;;) {
      if (this._state === "short" || this._state === "chunk") {
        if (!this._readBody()) return null;
        if (this._state === "short") return this._finish();
        this._state = "chunk-line";
        continue;
      }
      const line = this._line();
      if (line === null) return null;
      if (typeof line === "object") return line; // a protocol error
      const event = this._onLine(line);
      if (event !== undefined) return event;
    }
  }

  _onLine(line) {
    if (this._state === "line") {
      if (line === "OK") return { type: "ok" };
      if (line === "ERROR") return { type: "error" };
      if (line.startsWith("FROM ") && isValidUserid(line.slice(5))) {
        this._sender = line.slice(5);
        this._state = "length";
        return undefined;
      }
      return this._fail(`unexpected line from the server: ${JSON.stringify(line.slice(0, 80))}`);
    }
    if (this._state === "length" && /^\d{1,2}$/.test(line)) {
      this._need = Number(line);
      this._state = "short";
      return undefined;
    }
    const chunk = /^C(\d{1,3})$/.exec(line);
    if (chunk === null) return this._fail(`bad body framing: ${JSON.stringify(line.slice(0, 80))}`);
    this._need = Number(chunk[1]);
    if (this._need === 0) return this._finish();
    this._state = "chunk";
    return undefined;
  }

  _finish() {
    const event = { type: "message", sender: this._sender, parts: this._body, size: this._size };
    this._sender = null;
    this._body = [];
    this._size = 0;
    this._state = "line";
    return event;
  }

  _fail(reason) {
    this._failed = { type: "protocol-error", reason };
    return this._failed;
  }

  /** Read what is there of the body bytes still needed; true once all are read. */
  _readBody() {
    while (this._need > 0 && this._length > 0) {
      const first = this._pieces[0];
      const count = Math.min(this._need, first.length - this._offset);
      this._body.push(first.subarray(this._offset, this._offset + count));
      this._consume(count);
      this._need -= count;
      this._size += count;
    }
    return this._need === 0;
  }

  /** The next line without its "\n" (and "\r"), null if not all here, or an error event. */
  _line() {
    let seen = 0;
    for (let p = 0; p < this._pieces.length; p++) {
      const piece = this._pieces[p];
      const start = p === 0 ? this._offset : 0;
      const at = piece.indexOf(NL, start);
      if (at >= 0 && seen + at - start <= MAX_REPLY_LINE) {
        const bytes = this._take(seen + at - start + 1);
        return new TextDecoder().decode(bytes.subarray(0, bytes.length - 1)).replace(/\r$/, "");
      }
      seen += piece.length - start;
      if (seen > MAX_REPLY_LINE) return this._fail("a line from the server is too long");
    }
    return null;
  }

  _take(count) {
    const out = new Uint8Array(count);
    let at = 0;
    while (at < count) {
      const first = this._pieces[0];
      const n = Math.min(count - at, first.length - this._offset);
      out.set(first.subarray(this._offset, this._offset + n), at);
      this._consume(n);
      at += n;
    }
    return out;
  }

  _consume(count) {
    this._offset += count;
    this._length -= count;
    if (this._offset === this._pieces[0].length) {
      this._pieces.shift();
      this._offset = 0;
    }
  }
}
