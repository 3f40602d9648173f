"""Headless Chromium for the page's tests: Debian's ``chromium``, driven by Playwright.

Playwright's own browser download cannot work here, so the browser is the
system's (``/usr/bin/chromium``, which ``.ci/run`` installs). Without it, or
without Playwright, the browser tests skip, unless ``CHATPROTO_REQUIRE_BROWSER``
is set (as ``.ci/run`` does), when they fail instead.
"""

import hashlib
import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("CHATPROTO_CHROMIUM", "/usr/bin/chromium"))

#: What keeps a headless Chromium quiet and self-contained in a container.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

#: Milliseconds a page may take to show what a test waits for.
PAGE_TIMEOUT_MS = 10_000


def _unavailable(reason: str) -> None:
    if os.environ.get("CHATPROTO_REQUIRE_BROWSER"):
        pytest.fail(f"browser tests required but {reason}")
    pytest.skip(reason)


def launch_browser() -> Iterator[object]:
    """Yield a running headless Chromium (a Playwright ``Browser``); close it after."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed")
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is missing (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def sha256(data: bytes) -> str:
    """The hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def png_image(width: int = 96, height: int = 64) -> bytes:
    """Return a small PNG (a colour gradient with a ring) made here, nothing downloaded."""
    rows = bytearray()
    for y in range(height):
        rows.append(0)  # filter: none
        for x in range(width):
            ring = abs(((x - width / 2) ** 2 + (y - height / 2) ** 2) ** 0.5 - height / 3) < 3
            if ring:
                rows += bytes((255, 255, 255))
            else:
                rows += bytes((40 + x * 2 % 200, 90 + y * 2 % 160, 200))

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack("!I", len(data)) + kind + data + struct.pack("!I", crc)

    header = struct.pack("!IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(rows)))
        + chunk(b"IEND", b"")
    )


def file_body(name: str, data: bytes) -> bytes:
    """A message body carrying the file ``name`` (chat_client's header, then the bytes)."""
    return b"\x00chatproto-file\x00" + name.encode() + b"\x00" + data


def chunked(command: bytes, body: bytes) -> bytes:
    """The bytes of a chunked message: ``command``, chunks of 999 bytes, ``C0``."""
    parts = [command]
    for start in range(0, len(body), 999):
        piece = body[start : start + 999]
        parts += [b"C%d\n" % len(piece), piece]
    parts.append(b"C0\n")
    return b"".join(parts)
