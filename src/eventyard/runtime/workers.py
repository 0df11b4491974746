"""Several processes serving the tracking API on one port (``workers``).

One Python process parses requests on one CPU at a time (one GIL, shared with the log's
writer thread), so a ``collect`` process is CPU-bound on a single core long before the disk
is. With ``workers = N`` the process binds the port and starts ``N - 1`` more processes that
accept connections on it (on Linux each on a listening socket of its own, all bound with
``SO_REUSEPORT``, so the kernel spreads connections evenly: ``listening_sockets``); each has
its own event loop and its own log writer, appending to the same log (SQLite in WAL mode serializes their write
transactions; every commit is still fsynced before its requests are answered).

Only ``collect``-only processes may have workers (``Settings`` refuses the rest): the other
roles keep state in their process (delivery workers, rate limits, metrics served per process)
that must not be split behind one port. The first process (this one) also does the log's
hourly purge; every worker refreshes its own backlog estimate from the log.

A worker that dies takes the server down with it (the supervisor, systemd or Kubernetes,
restarts the whole server), and workers die with their parent even after ``kill -9``
(``PR_SET_PDEATHSIG``), so a stopped server never leaves a process holding the port.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable

import msgspec
import uvicorn

from eventyard.child_process import die_with_parent
from eventyard.quality import worker_metrics
from eventyard.runtime.settings import Settings

log = logging.getLogger(__name__)

#: Exit codes of a worker that was asked to stop (uvicorn re-raises the signal after its shutdown).
_STOPPED = (0, -signal.SIGTERM, -signal.SIGINT)


def uvicorn_config(settings: Settings, app: Callable[..., object]) -> uvicorn.Config:
    """The uvicorn settings every worker (and a single-process server) runs with."""
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=10,
    )


def _worker_main(fd: int, index: int, parent: int) -> None:
    """Worker ``index`` (1..N-1): the settings come as JSON on stdin, the socket as ``fd``."""
    die_with_parent(parent, signal.SIGTERM)
    from eventyard.runtime.components import build
    from eventyard.runtime.roles import create_role_app

    settings = msgspec.json.decode(sys.stdin.buffer.read(), type=Settings)
    logging.basicConfig(level=settings.log_level.upper(), format=f"%(levelname)s worker {index} %(name)s: %(message)s")
    sock = socket.socket(fileno=fd)
    components = build(settings)
    components.purge = False  # the first process purges
    components.worker_index = index
    uvicorn.Server(uvicorn_config(settings, create_role_app(settings, components))).run(sockets=[sock])


#: Pending connections each listening socket holds (uvicorn's default).
BACKLOG = 2048


def _balanced() -> bool:
    """Whether the kernel spreads new connections over sockets sharing a port (Linux)."""
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def listening_sockets(first: socket.socket, count: int) -> list[socket.socket]:
    """``first`` and ``count - 1`` more sockets listening on its address, one per process.

    On Linux each process gets a socket of its own, all bound with ``SO_REUSEPORT``: the
    kernel hands every new connection to one of them by a hash of its addresses, so the
    connections are spread evenly. With one shared socket, whichever process woke first
    accepted everything that was waiting: a client opening 64 connections at once got
    splits like 51/13 between two workers, and the busier one limited the whole server.
    Elsewhere all processes accept on ``first``.
    """
    if count == 1 or not _balanced():
        return [first] * count
    host, port = first.getsockname()[:2]
    out = [first]
    for _ in range(count - 1):
        sock = socket.socket(first.family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, port))
            sock.listen(BACKLOG)
        except OSError:
            sock.close()
            for made in out[1:]:
                made.close()
            raise
        sock.set_inheritable(True)
        out.append(sock)
    return out


def _refuse_a_taken_port(family: socket.AddressFamily, settings: Settings) -> None:
    """Exit with an error when something already listens on the port.

    A socket bound with ``SO_REUSEPORT`` shares its port with any other such socket of the
    same user, so a second server started by mistake on the port of a running one (with
    workers too) would bind without an error and take half of its connections. A plain bind
    first (no ``SO_REUSEPORT``) fails on a port that anything listens on, as a single-process
    server's bind does.
    """
    probe = socket.socket(family, socket.SOCK_STREAM)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a closed server's TIME_WAIT is no obstacle
        probe.bind((settings.host, settings.port))
    except OSError as exc:
        log.error("could not bind %s:%d: %s", settings.host, settings.port, exc)
        sys.exit(1)
    finally:
        probe.close()


def _bind(config: uvicorn.Config, settings: Settings) -> socket.socket:
    """The server's first listening socket (with ``SO_REUSEPORT`` when workers get their own)."""
    if settings.workers == 1 or not _balanced():
        return config.bind_socket()
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    if settings.port:
        _refuse_a_taken_port(family, settings)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((settings.host, settings.port))
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        log.error("could not bind %s:%d: %s", settings.host, settings.port, exc)
        sys.exit(1)
    sock.set_inheritable(True)
    return sock


def _start_worker(settings: Settings, sock: socket.socket, index: int) -> subprocess.Popen[bytes]:
    fd = sock.fileno()
    args = [sys.executable, "-m", "eventyard.runtime.workers", str(fd), str(index), str(os.getpid())]
    proc = subprocess.Popen(args, stdin=subprocess.PIPE, pass_fds=(fd,))
    assert proc.stdin is not None
    proc.stdin.write(msgspec.json.encode(settings))
    proc.stdin.close()
    return proc


def serve(settings: Settings, app: Callable[..., object]) -> None:
    """Serve ``app`` here and in ``settings.workers - 1`` more processes, on one socket."""
    config = uvicorn_config(settings, app)
    sock = _bind(config, settings)
    sockets = listening_sockets(sock, settings.workers)
    worker_metrics.clear(worker_metrics.snapshot_dir(settings.data_path, settings.port))
    children: list[subprocess.Popen[bytes]] = []
    server = uvicorn.Server(config)
    stopping = threading.Event()
    failed = threading.Event()

    def watch(child: subprocess.Popen[bytes]) -> None:
        # A worker that exits while we serve is a failure: stop the whole server.
        code = child.wait()
        if stopping.is_set():
            return
        if code in _STOPPED:
            # Stopped like the whole process group is (Ctrl-C, ``timeout``): stop as well.
            log.info("worker process %d was stopped; stopping the server", child.pid)
        else:
            log.error("worker process %d exited with code %s; stopping the server", child.pid, code)
            failed.set()
        server.should_exit = True

    try:
        for index in range(1, settings.workers):
            child = _start_worker(settings, sockets[index], index)
            children.append(child)
            if sockets[index] is not sock:
                sockets[index].close()  # the worker has its own copy; ours would take connections
            threading.Thread(target=watch, args=(child,), name=f"eventyard-worker-{index}", daemon=True).start()
        server.run(sockets=[sock])
    finally:
        stopping.set()
        for child in children:
            if child.poll() is None:
                child.terminate()
        for child in children:
            try:
                child.wait(15)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(5)
        for spare in sockets:
            spare.close()
    if failed.is_set():
        sys.exit(1)


if __name__ == "__main__":
    _worker_main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))


__all__ = ["serve", "uvicorn_config"]
