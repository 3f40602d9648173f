"""chatproto: a TCP and UDP chat relay on Twisted.

The package is layered (see STYLE.md): ``limits`` and ``events``/``codec`` at the
bottom, ``verbose`` beside them, ``message``/``routing``/``service`` above, the
transport adapters ``protocol`` and ``udp`` next, and ``tap``/``cli`` on top.
"""

__version__ = "0.1.0"
