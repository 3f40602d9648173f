"""Make ``twistd chat`` run the chat server (see ``chatproto.tap``).

This directory must not hold an ``__init__.py``: Twisted finds plugins by
scanning every ``twisted/plugins`` directory on ``sys.path``.
"""

from twisted.application.service import ServiceMaker

chat = ServiceMaker("chatproto", "chatproto.tap", "TCP+UDP chat server", "chat")
