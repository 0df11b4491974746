"""The worker process of ``eventyard.warehouse.workers.PreparePool``.

    python -m eventyard.warehouse.worker_main <parent pid>

Reads requests from stdin and writes replies to stdout (the framing is in ``workers``), one at
a time, until the end of its input. Anything else written to stdout goes to stderr instead, so
a stray ``print`` cannot break the protocol.
"""

from __future__ import annotations

import gc
import importlib
import os
import pickle
import signal
import sys
import traceback
from collections.abc import Callable
from typing import Any

import msgspec

from eventyard.child_process import die_with_parent
from eventyard.warehouse.workers import EVENTS_MSGPACK, REPLY, REPLY_ERROR, REPLY_OK, REQUEST

#: Batches between two runs of the cyclic garbage collector.
COLLECT_EVERY = 8


def _read(stream: Any, size: int) -> bytes | None:
    data: bytes = stream.read(size)
    return data if len(data) == size else None


def main(parent: int) -> None:
    die_with_parent(parent, signal.SIGKILL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C of the server's terminal: the server stops us
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    source = sys.stdin.buffer
    functions: dict[str, Callable[..., Any]] = {}
    decoder = msgspec.msgpack.Decoder()
    # A batch's objects are freed by reference counting when it is done; the cyclic collector
    # would only walk them again and again while they are built (a third of the time of
    # decoding the events, measured). It runs between batches instead, every few.
    gc.disable()
    done = 0
    while True:
        if done % COLLECT_EVERY == COLLECT_EVERY - 1:
            gc.collect()
        done += 1
        header = _read(source, REQUEST.size)
        if header is None:
            return
        kind, events_size, call_size = REQUEST.unpack(header)
        events_data = _read(source, events_size)
        call_data = _read(source, call_size)
        if events_data is None or call_data is None:
            return
        try:
            events = decoder.decode(events_data) if kind == EVENTS_MSGPACK else pickle.loads(events_data)
            del events_data
            name, args = pickle.loads(call_data)
            function = functions.get(name)
            if function is None:
                module, _, attribute = name.partition(":")
                function = functions[name] = getattr(importlib.import_module(module), attribute)
                gc.freeze()  # the modules' objects: full collections during a batch skip them
            reply = REPLY_OK, pickle.dumps(function(events, *args), protocol=pickle.HIGHEST_PROTOCOL)
            del events
        except Exception:
            reply = REPLY_ERROR, pickle.dumps(traceback.format_exc())
        status, data = reply
        out.write(REPLY.pack(status, len(data)))
        out.write(data)
        out.flush()


if __name__ == "__main__":
    main(int(sys.argv[1]))
