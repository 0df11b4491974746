"""What eventyard's own child processes share: dying with their parent, and saying how one ended.

Used by the collect workers (``runtime.workers``), the warehouse preparation processes
(``warehouse.workers``) and the processes that run users' functions
(``destinations.function.process``).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int, sig: signal.Signals) -> None:
    """In the child: ask the kernel for ``sig`` when the parent exits (Linux; elsewhere nothing).

    Exits at once when ``parent`` is already gone (the child started after it died).
    """
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, sig)
    if os.getppid() != parent:
        os._exit(0)


def how_it_ended(code: int | None, exc: BaseException) -> str:
    """``"was killed by SIGKILL"``, ``"exited with code 3"``, or, while it still runs (``code``
    is ``None``), that it broke the protocol with ``exc``."""
    if code is None:
        return f"broke the protocol ({type(exc).__name__}: {exc})"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


__all__ = ["die_with_parent", "how_it_ended"]
