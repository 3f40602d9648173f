"""The service assembled from the options, for ``twistd chat`` and ``chat_server``.

``makeService`` builds one :class:`~chatproto.server.service.ChatService` and, for
every port, a TCP listener and a UDP listener that share it (PROTOCOL §1);
with ``--workers N`` it builds instead a supervisor of N such processes.
Nothing else happens here: wiring, and no behaviour of its own. The twistd
plugin finds :class:`~chatproto.options.Options` here too.
"""

import gc
import random
import resource
import sys

from twisted.application import internet, strports
from twisted.application.service import MultiService

from chatproto.endpoints import tcp_endpoint
from chatproto.options import Options  # the twistd plugin reads it from here
from chatproto.server.reuseport import ReusePortCheck, ReusePortTCPServer, ReusePortUDPServer
from chatproto.server.service import ChatService
from chatproto.server.tcp import ChatFactory
from chatproto.server.udp import ChatDatagramProtocol, UDPClients
from chatproto.server.workers import parent_watch, worker_monitor
from chatproto.serving import ServerService, listen_address


def raise_open_file_limit() -> None:
    """Raise the soft limit on open files to the hard limit: every client is a descriptor."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def freeze_startup_objects() -> None:
    """Leave the objects made so far out of every later garbage collection.

    A full collection visits every object the collector tracks, and the
    tens of thousands that importing Twisted and chatproto made (46,000, a
    third of them TLS's) live as long as the process. Visited again while
    thousands of clients connect, they made each full collection a stall
    of 34-52 ms, and every client logging in waited through it.
    ``gc.freeze`` moves them to a permanent generation that collections
    skip (the ``gc`` documentation's tool for a parent's long-lived objects
    before ``fork``, which twistd's daemon mode does next); garbage made
    later is collected as before. What is garbage already is collected
    first, not frozen.
    """
    gc.collect()
    gc.freeze()


def _supervisor(config: Options, reactor) -> MultiService:  # type: ignore[no-untyped-def]
    """Build the service of ``--workers N``: no listener, N worker processes.

    It first checks that every port can be shared (see :class:`ReusePortCheck`).
    """
    top = ServerService()
    ReusePortCheck(config["ports"], config["interface"]).setServiceParent(top)
    command = [sys.executable, "-m", "chatproto", *config.worker_args()]
    worker_monitor(command, config["workers"], reactor).setServiceParent(top)
    return top


def makeService(  # type: ignore[no-untyped-def]
    config: Options, reactor=None, *, session_log: bool = True
) -> MultiService:
    """Build the chat service and its TCP and UDP listeners on every port.

    Args:
        config: parsed :class:`Options`.
        reactor: the reactor to listen with and take time from; the global
            reactor when omitted.
        session_log: log each login and logout (twistd's log has them;
            ``chat_server``, which shows no such line, asks for none).
    """
    if reactor is None:
        from twisted.internet import reactor
    if config["workers"] > 1:
        return _supervisor(config, reactor)
    raise_open_file_limit()
    top = ServerService()
    watch = parent_watch(reactor)  # a worker of --workers stops with its parent
    if watch is not None:
        watch.setServiceParent(top)
    limits = config.limits()
    router = None
    if config["cluster"] is not None:
        from chatproto.cluster.router import RedisRouter

        router = RedisRouter(config["cluster"], reactor, limits)
    chat = ChatService(
        reactor,
        limits,
        router=router,
        rng=random.Random(config["random-seed"]),
        random_messages=not config["no-random"],
        is_verbose=config["verbose"],
        spool_directory=config["spool-dir"],
        limit_exempt=config["limit-exempt"],
        session_log=session_log,
    )
    chat.setServiceParent(top)
    factory = ChatFactory(chat)
    interface = config["interface"]
    udp_clients = UDPClients()  # PROTOCOL §6: one UDP user whatever port it writes to
    for port in config["ports"]:
        backlog = chat.limits.listen_backlog
        udp_protocol = ChatDatagramProtocol(chat, udp_clients)
        if config["reuse-port"]:
            tcp = ReusePortTCPServer(port, interface, backlog, factory, reactor)
            udp = ReusePortUDPServer(port, interface, udp_protocol, reactor)
        else:
            tcp = strports.service(
                tcp_endpoint(port, interface, backlog), factory, reactor=reactor
            )
            udp = internet.UDPServer(port, udp_protocol, interface=interface, reactor=reactor)
        top.add_listener(tcp, f"TCP {listen_address(interface, port)}")
        top.add_listener(udp, f"UDP {listen_address(interface, port)}")
    for endpoint in config["listen"]:
        listener = strports.service(endpoint, factory, reactor=reactor)
        top.add_listener(listener, f"--listen {endpoint}")
    if config["web"]:  # the chat page and its WebSocket (chatproto.web)
        from chatproto.web.site import web_services

        webs = web_services(chat, config["web"], interface, config["web-origin"], reactor=reactor)
        for value, listener in zip(config["web"], webs, strict=True):
            top.add_listener(listener, f"--web {value}")
    if config["metrics-port"] is not None:
        from chatproto.server.metrics import metrics_site

        where = listen_address(config["metrics-interface"], config["metrics-port"])
        metrics = tcp_endpoint(config["metrics-port"], config["metrics-interface"])
        site = metrics_site(chat, factory)
        listener = strports.service(metrics, site, reactor=reactor)
        top.add_listener(listener, f"--metrics-port {where}")
    freeze_startup_objects()
    return top
