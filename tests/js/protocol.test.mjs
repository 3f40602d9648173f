// The page's protocol module, bytes only (node --test tests/js/).
// Decoding tests feed each input whole, a byte at a time and split at every
// index, and expect the same events (STYLE.md §7).

import assert from "node:assert/strict";
import { test } from "node:test";

import * as P from "../../chatproto/web/static/protocol.mjs";

const bytes = (text) => new TextEncoder().encode(text);
const text = (data) => new TextDecoder().decode(data);

/** All events of `input` fed as `pieces`, message bodies joined to strings. */
function decode(pieces) {
  const decoder = new P.Decoder();
  const events = [];
  for (const piece of pieces) {
    decoder.feed(piece);
    for (let ev = decoder.next(); ev !== null; ev = decoder.next()) {
      events.push(ev.type === "message" ? { ...ev, parts: text(P.concat(ev.parts)) } : ev);
      if (ev.type === "protocol-error") return events;
    }
  }
  return events;
}

/** Assert `input` decodes to `expected` whole, byte by byte and at every split. */
function assertDecodes(input, expected) {
  const data = typeof input === "string" ? bytes(input) : input;
  assert.deepEqual(decode([data]), expected, "whole");
  assert.deepEqual(decode([...data].map((b) => new Uint8Array([b]))), expected, "byte by byte");
  for (let i = 0; i <= data.length; i++) {
    assert.deepEqual(decode([data.subarray(0, i), data.subarray(i)]), expected, `split at ${i}`);
  }
}

test("replies decode as ok and error events", () => {
  assertDecodes("OK\nERROR\n", [{ type: "ok" }, { type: "error" }]);
});

test("a short delivery decodes as one message with sender, body and size", () => {
  assertDecodes("FROM alice\n9\nYou suck!", [
    { type: "message", sender: "alice", parts: "You suck!", size: 9 },
  ]);
});

test("a chunked delivery decodes as one message holding every chunk", () => {
  assertDecodes("FROM bob\nC3\nabcC3\nde\nC0\nOK\n", [
    { type: "message", sender: "bob", parts: "abcde\n", size: 6 },
    { type: "ok" },
  ]);
});

test("an empty short body and an empty chunked body are messages", () => {
  assertDecodes("FROM a\n0\nFROM b\nC0\n", [
    { type: "message", sender: "a", parts: "", size: 0 },
    { type: "message", sender: "b", parts: "", size: 0 },
  ]);
});

test("a body may hold newlines and NULs", () => {
  const input = P.concat([bytes("FROM a\n4\n"), new Uint8Array([0, 10, 0, 10])]);
  const [event] = decode([input]);
  assert.equal(event.size, 4);
});

test("an unknown line from the server is a protocol error, and stays one", () => {
  const decoder = new P.Decoder();
  decoder.feed(bytes("HELLO\nOK\n"));
  assert.equal(decoder.next().type, "protocol-error");
  assert.equal(decoder.next().type, "protocol-error");
});

test("a bad length line is a protocol error", () => {
  assert.equal(decode([bytes("FROM a\n100\nx")])[0].type, "protocol-error");
  assert.equal(decode([bytes("FROM a\nC1000\n")])[0].type, "protocol-error");
});

test("a line over 1 KiB without a newline is refused before it ends", () => {
  assert.equal(decode([bytes("F".repeat(1100))])[0].type, "protocol-error");
});

test("incoming tells a chunked body's sender and size so far", () => {
  const decoder = new P.Decoder();
  decoder.feed(bytes("FROM carol\nC5\nabc"));
  assert.equal(decoder.next(), null);
  assert.deepEqual(decoder.incoming, { sender: "carol", size: 3 });
});

test("encodeLogin writes ME IS and refuses a bad userid", () => {
  assert.equal(text(P.encodeLogin("alice")), "ME IS alice\n");
  assert.throws(() => P.encodeLogin("has space"), RangeError);
  assert.throws(() => P.encodeLogin("x".repeat(33)), RangeError);
  assert.throws(() => P.encodeLogin(""), RangeError);
});

test("a body of up to 99 bytes goes short, to everyone or to the users named", () => {
  assert.equal(text(P.encodeMessage(null, bytes("hi"))), "BROADCAST\n2\nhi");
  assert.equal(text(P.encodeMessage([], bytes("hi"))), "BROADCAST\n2\nhi");
  assert.equal(text(P.encodeMessage(["bob", "carol"], bytes("hi"))), "SEND bob carol\n2\nhi");
  const body = bytes("x".repeat(99));
  assert.equal(text(P.encodeMessage(null, body)), `BROADCAST\n99\n${"x".repeat(99)}`);
});

test("a body over 99 bytes goes chunked, in chunks of at most 999, then C0", () => {
  const body = bytes("y".repeat(2000));
  const wire = text(P.encodeMessage(["bob"], body));
  assert.equal(
    wire,
    `SEND bob\nC999\n${"y".repeat(999)}C999\n${"y".repeat(999)}C2\nyyC0\n`,
  );
});

test("a body the page encodes reads back whole as a delivery (round trip)", () => {
  // Encoded as a sender, delivered with FROM in place of the command: the bodies match.
  for (const size of [0, 1, 99, 100, 999, 1000, 5000]) {
    const body = new Uint8Array(size).map((_, i) => i % 251);
    const sent = P.encodeMessage(null, body);
    const delivered = P.concat([bytes("FROM me\n"), sent.subarray("BROADCAST\n".length)]);
    const decoder = new P.Decoder();
    decoder.feed(delivered);
    const event = decoder.next();
    assert.deepEqual(P.concat(event.parts), body, `size ${size}`);
  }
});

test("parseRecipients splits on commas and spaces and drops repeats", () => {
  assert.deepEqual(P.parseRecipients(" bob, carol  bob,,dave "), ["bob", "carol", "dave"]);
  assert.deepEqual(P.parseRecipients("   "), []);
});

test("a file header round-trips and a body with it classifies as that file", () => {
  const header = P.encodeFileHeader("holiday é.png");
  assert.deepEqual(P.parseFileHeader(header), { name: "holiday é.png", length: header.length });
  const body = P.classifyBody([header.subarray(0, 5), header.subarray(5), bytes("DATA")]);
  assert.equal(body.kind, "file");
  assert.equal(body.name, "holiday é.png");
  assert.equal(body.size, 4);
  assert.equal(text(P.concat(body.parts)), "DATA");
});

test("a file name with a slash or NUL is made a base name; an empty one is 'file'", () => {
  assert.equal(P.parseFileHeader(P.encodeFileHeader("a/b\x00c")).name, "a_b_c");
  assert.equal(P.parseFileHeader(P.encodeFileHeader("")).name, "file");
  const long = P.parseFileHeader(P.encodeFileHeader("é".repeat(200))).name;
  assert.ok(new TextEncoder().encode(long).length <= 255);
});

test("a header with an empty name or no end is not a file header", () => {
  assert.equal(P.parseFileHeader(P.concat([P.FILE_MAGIC, new Uint8Array([0])])), null);
  assert.equal(P.parseFileHeader(P.concat([P.FILE_MAGIC, bytes("x".repeat(300))])), null);
});

test("UTF-8 text classifies as text; control bytes or bad UTF-8 as binary", () => {
  assert.deepEqual(P.classifyBody([bytes("héllo\nworld")]), { kind: "text", text: "héllo\nworld" });
  assert.equal(P.classifyBody([new Uint8Array([0xff, 0xfe])]).kind, "binary");
  assert.equal(P.classifyBody([bytes("a\x00b")]).kind, "binary");
  assert.equal(P.classifyBody([bytes("x".repeat(70000))]).kind, "binary");
});

test("imageType knows PNG, JPEG, GIF and WebP by their first bytes", () => {
  assert.equal(P.imageType(new Uint8Array([0x89, 0x50, 0x4e, 0x47, 13, 10, 26, 10])), "image/png");
  assert.equal(P.imageType(new Uint8Array([0xff, 0xd8, 0xff, 0xe0])), "image/jpeg");
  assert.equal(P.imageType(bytes("GIF89a")), "image/gif");
  assert.equal(P.imageType(bytes("RIFF\0\0\0\0WEBP")), "image/webp");
  assert.equal(P.imageType(bytes("hello")), null);
});
