"""Settings of the function destination."""

from __future__ import annotations

from typing import Any

import msgspec


class FunctionSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Settings of a function destination."""

    #: The user's code: a path to a ``.py`` file, or an importable module name.
    module: str
    #: Passed to every handler as its second argument.
    settings: dict[str, Any] = {}
    #: Longest one handler call may take; then its process is restarted and the event retried.
    timeout_seconds: float = 5.0
    #: Hand whole batches to ``on_batch`` when the module defines it.
    batch: bool = False
    #: Most events per ``on_batch`` call.
    max_batch_size: int = 100
    #: Address-space limit of the function's process in MiB (``None``: no limit). Past it,
    #: allocations raise ``MemoryError`` in the function (the event fails, the process restarts).
    memory_limit_mb: int | None = 1024

    def __post_init__(self) -> None:
        if not self.module.strip():
            raise ValueError("`module` must name a .py file or an importable module")
        if not 0 < self.timeout_seconds <= 300:
            raise ValueError("`timeout_seconds` must be more than 0 and at most 300")
        if not 1 <= self.max_batch_size <= 10_000:
            raise ValueError("`max_batch_size` must be between 1 and 10000")
        if self.memory_limit_mb is not None and self.memory_limit_mb < 64:
            raise ValueError("`memory_limit_mb` must be at least 64 (or null for no limit)")
