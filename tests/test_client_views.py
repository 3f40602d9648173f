"""Tests of :mod:`chatproto.client.views`: how messages and progress are shown."""

import io
import os
from pathlib import Path

from chatproto.client.cli import (
    Console,
    ProgressReporter,
    SavedFile,
    TextMessage,
    clock_text,
    json_record,
    render_message,
)
from tests.client_support import NOW


def test_text_message_renders_with_time_and_sender() -> None:
    """Text shows as ``[HH:MM:SS] sender: text``."""
    line = render_message(TextMessage("alice", "hi", 2), NOW)
    assert line == f"[{clock_text(NOW)}] alice: hi"


def test_multi_line_text_indents_its_continuation_lines() -> None:
    """Lines after the first are indented, so they cannot pass for other messages."""
    line = render_message(TextMessage("alice", "a\r\n[00:00:00] bob: b", 20), NOW)
    assert line == f"[{clock_text(NOW)}] alice: a\n  [00:00:00] bob: b"


def test_saved_file_renders_its_path_and_size() -> None:
    """A saved file shows as ``sender sent a file: NAME (SIZE bytes)``."""
    line = render_message(SavedFile("alice", Path("dl/alice.bin"), 5), NOW)
    assert line == f"[{clock_text(NOW)}] alice sent a file: dl/alice.bin (5 bytes)"


def test_json_record_of_a_file_has_its_absolute_path() -> None:
    """``--listen`` names a saved file by its absolute path."""
    record = json_record(SavedFile("alice", Path("alice.bin"), 5))
    assert record == {"sender": "alice", "size": 5, "path": os.path.abspath("alice.bin")}


def test_json_record_of_a_text_has_sender_size_and_text() -> None:
    """``--listen`` shows text with its sender and byte size."""
    assert json_record(TextMessage("bob", "é", 2)) == {"sender": "bob", "size": 2, "text": "é"}


def test_progress_on_a_terminal_is_rewritten_in_place() -> None:
    """On a terminal, progress lines overwrite each other and the next line starts afresh."""
    output = io.StringIO()
    console = Console(output.write, is_terminal=True)
    console.progress("10%")
    console.progress("20%")
    console.line("done")
    assert output.getvalue() == "\r10%\r20%\ndone\n"


def test_progress_shows_every_ten_percent_for_big_files() -> None:
    """A file over 1 MiB shows a progress line at each 10% step reached."""
    output = io.StringIO()
    report = ProgressReporter(Console(output.write, is_terminal=False), "f")
    size = 2_000_000
    for sent in (100_000, 250_000, 420_000, size):
        report(sent, size)
    assert output.getvalue() == (
        "sending f: 10% (250000 of 2000000 bytes)\n"
        "sending f: 20% (420000 of 2000000 bytes)\n"
        "sending f: 100% (2000000 of 2000000 bytes)\n"
    )


def test_progress_is_silent_for_small_files() -> None:
    """A file of 1 MiB or less shows no progress."""
    output = io.StringIO()
    ProgressReporter(Console(output.write, is_terminal=False), "f")(1000, 1000)
    assert output.getvalue() == ""
