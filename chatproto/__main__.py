"""``python -m chatproto``: the same as ``chat_server``."""

from chatproto.cli import run

run()
