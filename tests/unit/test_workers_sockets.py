"""Collect workers listen on sockets of their own, so the kernel spreads connections over them."""

from __future__ import annotations

import socket
import sys

import pytest

from eventyard.runtime import workers
from eventyard.runtime.settings import load_settings
from eventyard.testing.server import free_port

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="SO_REUSEPORT spreads connections on Linux"
)


async def _app(scope: object, receive: object, send: object) -> None:  # never called
    raise AssertionError


def _accept_all(sock: socket.socket) -> int:
    sock.setblocking(False)
    accepted = 0
    while True:
        try:
            conn, _ = sock.accept()
        except BlockingIOError:
            return accepted
        conn.close()
        accepted += 1


def test_every_worker_socket_takes_a_share_of_the_connections() -> None:
    settings = load_settings(None, {"roles": "collect", "workers": 2, "port": free_port()}, environ={})
    first = workers._bind(workers.uvicorn_config(settings, _app), settings)
    sockets = workers.listening_sockets(first, 2)
    clients: list[socket.socket] = []
    try:
        assert sockets[0] is not sockets[1]
        assert sockets[0].getsockname() == sockets[1].getsockname()
        # 64 connections, each hashed to one socket by its addresses: all on one socket
        # would happen with probability 2**-63.
        clients = [socket.create_connection(first.getsockname()[:2], timeout=5) for _ in range(64)]
        counts = [_accept_all(s) for s in sockets]
        assert sum(counts) == 64
        assert all(counts), counts
    finally:
        for client in clients:
            client.close()
        for sock in sockets:
            sock.close()


def test_one_process_keeps_one_socket() -> None:
    settings = load_settings(None, {"port": free_port()}, environ={})
    first = workers._bind(workers.uvicorn_config(settings, _app), settings)
    try:
        assert workers.listening_sockets(first, 1) == [first]
    finally:
        first.close()


def test_a_port_another_server_listens_on_is_refused_not_shared() -> None:
    # another server with workers: its sockets allow SO_REUSEPORT, ours must not join them
    port = free_port()
    other = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    other.bind(("127.0.0.1", port))
    other.listen(8)
    settings = load_settings(None, {"roles": "collect", "workers": 2, "port": port}, environ={})
    try:
        with pytest.raises(SystemExit) as exited:
            workers._bind(workers.uvicorn_config(settings, _app), settings)
        assert exited.value.code == 1
    finally:
        other.close()


def test_a_port_freed_by_a_stopped_server_can_be_bound_again() -> None:
    settings = load_settings(None, {"roles": "collect", "workers": 2, "port": free_port()}, environ={})
    first = workers._bind(workers.uvicorn_config(settings, _app), settings)
    client = socket.create_connection(first.getsockname()[:2], timeout=5)
    conn, _ = first.accept()
    conn.close()  # the server side closes first: its end waits in TIME_WAIT
    client.close()
    first.close()
    again = workers._bind(workers.uvicorn_config(settings, _app), settings)
    again.close()
