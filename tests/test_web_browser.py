"""The chat page in a real browser: headless Chromium against a real server on loopback.

Two pages chat with each other and with a TCP client; a file goes from a page
to a TCP client and from a TCP client to a page, intact; a taken userid shows
an error; a lost connection offers to reconnect. One test keeps a screenshot
of a conversation with a received image (``docs/web-chat.png`` with
``CHATPROTO_UPDATE_SCREENSHOT=1``). Every wait is Playwright's, bounded.
"""

import json
import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.browser_support import (
    PAGE_TIMEOUT_MS,
    chunked,
    file_body,
    launch_browser,
    png_image,
    sha256,
)
from tests.client_support import ClientProcess
from tests.e2e_support import HOST, free_ports
from tests.sockets import TcpClient
from tests.tls_support import make_certificate, ssl_endpoint
from tests.web_support import Server, launch_web, wait_for_port_tcp

pytestmark = pytest.mark.e2e  # every test here starts a server and a browser

SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "web-chat.png"


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """One headless Chromium for the module (each test opens its own pages)."""
    yield from launch_browser()


@pytest.fixture
def web(launch: Callable[..., Server]) -> tuple[Server, int, int]:
    """A server with a chat port and a web port: (server, chat port, web port)."""
    return launch_web(launch)


@pytest.fixture
def pages(browser) -> Iterator[Callable[..., object]]:  # type: ignore[no-untyped-def]
    """Open pages on demand, each in a context of its own; close them at teardown."""
    contexts = []

    def open_page(  # type: ignore[no-untyped-def]
        web_port: int, viewport: dict[str, int] | None = None, scheme: str = "http"
    ):
        context = browser.new_context(
            accept_downloads=True,
            viewport=viewport or {"width": 900, "height": 640},
            ignore_https_errors=True,  # the TLS test's certificate is its own
        )
        context.set_default_timeout(PAGE_TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        page.goto(f"{scheme}://127.0.0.1:{web_port}/")
        page.wait_for_selector("body[data-ready=true]", state="attached")
        return page

    yield open_page
    for context in contexts:
        context.close()


def log_in(page, user: str) -> None:  # type: ignore[no-untyped-def]
    """Log in from the page's form with the keyboard, and wait for the conversation."""
    page.keyboard.type(user)  # the login field has the focus when the page opens
    page.keyboard.press("Enter")
    page.wait_for_selector("#chat", state="visible")


def say(page, text: str, to: str = "") -> None:  # type: ignore[no-untyped-def]
    """Type a message (to these recipients, or everyone) and send it with Enter."""
    page.fill("#recipients", to)
    page.focus("#message")
    page.keyboard.type(text)
    page.keyboard.press("Enter")


def entry(page, sender: str, text: str):  # type: ignore[no-untyped-def]
    """Wait for the conversation entry from ``sender`` holding ``text``; return it."""
    locator = page.locator("#messages li", has=page.locator(".sender", has_text=sender)).filter(
        has_text=text
    )
    locator.first.wait_for()
    return locator.first


def is_own(locator) -> bool:  # type: ignore[no-untyped-def]
    """Whether a conversation entry is marked as one's own."""
    return "own" in (locator.get_attribute("class") or "").split()


def active_id(page) -> str:  # type: ignore[no-untyped-def]
    return page.evaluate("document.activeElement && document.activeElement.id")


def test_two_pages_and_a_tcp_client_chat(web, pages) -> None:  # type: ignore[no-untyped-def]
    """Broadcasts and SENDs pass between two pages and a TCP client; own messages are marked."""
    _, chat_port, web_port = web
    alice, bob = pages(web_port), pages(web_port)
    assert active_id(alice) == "userid"
    log_in(alice, "alice")
    assert active_id(alice) == "message"
    log_in(bob, "bob")
    carol = TcpClient(chat_port)
    carol.login(b"carol")

    say(alice, "hello everyone")
    carol.expect(b"FROM alice\n14\nhello everyone")
    entry(bob, "alice", "hello everyone")
    assert is_own(entry(alice, "alice", "hello everyone"))

    carol.send(b"SEND bob\n6\nhi bob")
    entry(bob, "carol", "hi bob")
    assert not is_own(entry(bob, "carol", "hi bob"))

    long_text = "a long line, " * 20  # 260 bytes: goes chunked
    say(bob, long_text, to="alice, carol")
    entry(alice, "bob", long_text.strip())
    assert carol.recv_line() == b"FROM bob\n"
    assert carol.recv_exactly(len(long_text) + 8) == b"C260\n" + long_text.encode() + b"C0\n"
    assert is_own(entry(bob, "bob", "→ alice, carol"))  # shown as sent, marked own
    options = bob.eval_on_selector_all("#seen-users option", "o => o.map(e => e.value)")
    assert sorted(options) == ["alice", "carol"]


def test_a_file_chosen_in_the_page_reaches_a_tcp_client_intact(web, pages, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A file picked in the page arrives at a TCP client chunked, named, with its sha256."""
    _, chat_port, web_port = web
    data = os.urandom(300_000)
    path = tmp_path / "report.bin"
    path.write_bytes(data)
    page = pages(web_port)
    log_in(page, "alice")
    carol = TcpClient(chat_port)
    carol.login(b"carol")
    page.fill("#recipients", "carol")
    page.set_input_files("#file", str(path))
    assert carol.recv_line(seconds=20) == b"FROM alice\n"
    body = bytearray()
    while (header := carol.recv_line(seconds=20)) != b"C0\n":
        assert header.startswith(b"C") and len(header) <= 5
        body += carol.recv_exactly(int(header[1:]), seconds=20)
    assert bytes(body[:27]) == b"\x00chatproto-file\x00report.bin\x00"
    assert sha256(bytes(body[27:])) == sha256(data)
    entry(page, "alice", "report.bin (293.0 KiB)")


def test_a_file_from_a_tcp_client_downloads_intact_from_the_page(web, pages) -> None:  # type: ignore[no-untyped-def]
    """A file a TCP client sends shows as a link with its size and downloads byte for byte."""
    _, chat_port, web_port = web
    page = pages(web_port)
    log_in(page, "alice")
    carol = TcpClient(chat_port)
    carol.login(b"carol")
    data = os.urandom(200_000)
    carol.send(chunked(b"SEND alice\n", file_body("data.tar", data)))
    link = entry(page, "carol", "data.tar").locator("a.file")
    assert link.text_content() == "data.tar (195.3 KiB)"
    with page.expect_download() as download:
        link.click()
    assert sha256(Path(download.value.path()).read_bytes()) == sha256(data)
    assert download.value.suggested_filename == "data.tar"

    carol.send(b"SEND alice\n3\n\xff\xfe\x00")  # not text, no header: <sender>.bin
    assert entry(page, "carol", "carol.bin").locator("a.file").text_content() == "carol.bin (3 B)"


def test_a_taken_userid_shows_an_error_and_another_can_be_tried(web, pages) -> None:  # type: ignore[no-untyped-def]
    """ERROR to ME IS is shown in plain words, the field keeps the focus, a retry works."""
    _, chat_port, web_port = web
    holder = TcpClient(chat_port)
    holder.login(b"alice")
    page = pages(web_port)
    page.keyboard.type("alice")
    page.keyboard.press("Enter")
    page.wait_for_selector("#login-message.bad")
    assert "refused" in page.text_content("#login-message")
    assert page.is_hidden("#chat")
    assert active_id(page) == "userid"
    page.keyboard.type("alice2")  # the old text is selected: typing replaces it
    page.keyboard.press("Enter")
    page.wait_for_selector("#chat", state="visible")
    assert page.text_content("#status") == "logged in as alice2"


def test_a_lost_connection_is_said_and_reconnect_logs_in_again(web, pages, launch) -> None:  # type: ignore[no-untyped-def]
    """When the server goes away the page says so; Reconnect (from the keyboard) logs back in."""
    server, chat_port, web_port = web
    page = pages(web_port)
    log_in(page, "alice")
    server.stop()
    page.wait_for_selector("#error", state="visible")
    assert "connection to the server was lost" in page.text_content("#error-text")
    assert active_id(page) == "reconnect"
    restarted = launch("chat_server", [chat_port], ["--no-random", "--web", str(web_port)])
    wait_for_port_tcp(web_port, restarted)
    page.keyboard.press("Enter")  # the focused Reconnect button
    page.wait_for_selector("#error", state="hidden")
    # Locator waits, not wait_for_function: polling a string would need eval, which
    # the page's Content-Security-Policy (rightly) forbids.
    page.locator("#status", has_text=re.compile(r"^logged in as alice$")).wait_for()
    carol = TcpClient(chat_port)
    carol.login(b"carol")
    carol.send(b"SEND alice\n4\nback")
    entry(page, "carol", "back")


def test_the_page_fits_a_phone_screen(web, pages) -> None:  # type: ignore[no-untyped-def]
    """At 360 px wide nothing needs sideways scrolling and a long word wraps."""
    _, _, web_port = web
    page = pages(web_port, viewport={"width": 360, "height": 640})
    log_in(page, "alice")
    say(page, "x" * 300)
    entry(page, "alice", "xxxx")
    assert page.evaluate("document.documentElement.scrollWidth") <= 360


def test_screenshot_of_a_conversation_with_a_received_image(web, pages, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A received PNG shows as a thumbnail next to its link; the view is kept as a screenshot."""
    _, chat_port, web_port = web
    alice = pages(web_port, viewport={"width": 760, "height": 560})
    log_in(alice, "alice")
    bob = pages(web_port)
    log_in(bob, "bob")
    carol = TcpClient(chat_port)
    carol.login(b"carol")
    say(bob, "Hi all! Carol, did you bring the holiday photos?")
    entry(alice, "bob", "holiday photos")
    carol.send(b"BROADCAST\n22\nYes, here is the first")
    entry(alice, "carol", "here is the first")
    carol.send(chunked(b"BROADCAST\n", file_body("beach.png", png_image())))
    image = entry(alice, "carol", "beach.png").locator("img.thumbnail")
    image.wait_for()
    # decode() settles once the image is decoded (a promise, so no polling, no eval).
    assert image.evaluate("img => img.decode().then(() => img.naturalWidth)") == 96
    say(alice, "Lovely! Sending you the rest, Bob.", to="bob")
    entry(alice, "alice", "Sending you the rest")
    shot = tmp_path / "web-chat.png"
    alice.screenshot(path=str(shot))
    assert shot.read_bytes().startswith(b"\x89PNG")
    if os.environ.get("CHATPROTO_UPDATE_SCREENSHOT"):
        SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(shot, SCREENSHOT)


def test_over_tls_the_page_connects_with_wss(launch, pages, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Served from an ssl: endpoint, the page opens its WebSocket with wss: and chats."""
    cert, key = make_certificate(tmp_path)
    chat_port, web_port = free_ports(2)
    server = launch("chat_server", [chat_port], ["--web", ssl_endpoint(web_port, cert, key)])
    wait_for_port_tcp(web_port, server)
    page = pages(web_port, scheme="https")
    log_in(page, "alice")
    carol = TcpClient(chat_port)
    carol.login(b"carol")
    carol.send(b"SEND alice\n6\nsecret")
    entry(page, "carol", "secret")


DROP_FILE = """([name, bytes]) => {
    const transfer = new DataTransfer();
    transfer.items.add(new File([new Uint8Array(bytes)], name));
    const chat = document.getElementById("chat");
    chat.dispatchEvent(new DragEvent("dragover", {dataTransfer: transfer, bubbles: true}));
    chat.dispatchEvent(new DragEvent("drop", {dataTransfer: transfer, bubbles: true}));
}"""


def test_a_file_dropped_on_the_conversation_is_sent(web, pages) -> None:  # type: ignore[no-untyped-def]
    """Drag and drop sends the file as the picker does: named, chunked, intact."""
    _, chat_port, web_port = web
    page = pages(web_port)
    log_in(page, "alice")
    carol = TcpClient(chat_port)
    carol.login(b"carol")
    data = os.urandom(5000)
    page.fill("#recipients", "carol")
    page.evaluate(DROP_FILE, ["notes.txt", list(data)])
    assert carol.recv_line() == b"FROM alice\n"
    body = bytearray()
    while (header := carol.recv_line()) != b"C0\n":
        body += carol.recv_exactly(int(header[1:]))
    assert bytes(body) == b"\x00chatproto-file\x00notes.txt\x00" + data
    assert page.is_hidden("#drop-hint")


WATCH_PROGRESS = """() => {
    window.progressSeen = [];
    const bar = document.getElementById("transfer-progress");
    const box = document.getElementById("transfer");
    new MutationObserver(() => {
        window.progressSeen.push([box.hidden, Number(bar.value)]);
    }).observe(box, {attributes: true, subtree: true});
}"""


def test_a_big_file_shows_a_progress_bar_that_ends_full(web, pages, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """While a file goes out the progress bar shows and grows, and is full when it hides."""
    _, chat_port, web_port = web
    data = os.urandom(3 * 1024 * 1024)
    path = tmp_path / "big.iso"
    path.write_bytes(data)
    page = pages(web_port)
    log_in(page, "alice")
    carol = TcpClient(chat_port)
    carol.login(b"carol")
    page.fill("#recipients", "carol")
    page.evaluate(WATCH_PROGRESS)
    page.set_input_files("#file", str(path))
    assert carol.recv_line(seconds=30) == b"FROM alice\n"
    size = 0
    while (header := carol.recv_line(seconds=30)) != b"C0\n":
        size += len(carol.recv_exactly(int(header[1:]), seconds=30))
    assert size == len(b"\x00chatproto-file\x00big.iso\x00") + len(data)
    page.wait_for_selector("#transfer", state="hidden")
    seen = page.evaluate("window.progressSeen")
    shown = [value for hidden, value in seen if not hidden]
    assert len(shown) > 10 and shown == sorted(shown) and shown[-1] > 0.9  # it grew
    assert seen[-1] == [True, 1]  # full when it was hidden again


def test_files_pass_between_the_page_and_chat_client_under_their_names(  # type: ignore[no-untyped-def]
    web, pages, tmp_path
) -> None:
    """The page and chat_client agree on the file header: each keeps the other's file name."""
    _, chat_port, web_port = web
    page = pages(web_port)
    log_in(page, "alice")
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    listener = ClientProcess(
        [HOST, str(chat_port), "hal", "--listen", "--download-dir", str(downloads)], tmp_path
    )
    try:
        listener.wait_for(r"logged in as hal .*", stream="err")
        data = os.urandom(20_000)
        (tmp_path / "plan.pdf").write_bytes(data)
        page.fill("#recipients", "hal")
        page.set_input_files("#file", str(tmp_path / "plan.pdf"))
        received = json.loads(listener.line(seconds=20))
        assert (received["sender"], Path(received["path"]).name) == ("alice", "plan.pdf")
        assert Path(received["path"]).read_bytes() == data

        sender = ClientProcess(
            [HOST, str(chat_port), "sam", "--send", "alice", "--file", str(tmp_path / "plan.pdf")],
            tmp_path,
        )
        try:
            assert sender.process.wait(timeout=20) == 0
        finally:
            sender.stop()
        link = entry(page, "sam", "plan.pdf").locator("a.file")
        with page.expect_download() as download:
            link.click()
        assert Path(download.value.path()).read_bytes() == data
    finally:
        listener.stop()
