"""Garbage-collector settings for a long-running server process.

CPython's cyclic collector runs a young-generation pass every 700 container allocations
and, every so often, a full pass over every object of the process. A server allocates a
handful of containers per request, and its heap is mostly long-lived objects created at
start (modules, routes, configuration). Measured on the ingest benchmark, collections cost
10-20 % of the single-event throughput with the defaults. After start-up the heap as it is
is frozen (moved out of the collector's view: it lives as long as the process) and the
young generation is collected less often. Reference counting still frees everything that
is not part of a cycle at once; only cyclic garbage waits longer.
"""

from __future__ import annotations

import gc

#: Container allocations between young-generation collections (CPython's default: 700).
YOUNG_THRESHOLD = 50_000


def settle_after_start() -> None:
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, 50, 100)
