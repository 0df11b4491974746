"""``FqlError``: what is wrong with an FQL statement, and where.

The message names the problem and shows the line with a caret under the column, e.g.::

    expected a value after '=' at column 8:
      event =
             ^
"""

from __future__ import annotations

from eventyard.errors import ConfigError

_EXCERPT = 100  # characters of a long line shown around the problem


class FqlError(ConfigError):
    """An FQL statement does not compile. ``position`` is the 0-based offset into ``source``."""

    def __init__(self, message: str, position: int, source: str = "") -> None:
        self.message = message
        self.position = max(0, min(position, len(source)))
        self.source = source
        before = source[: self.position]
        self.line = before.count("\n") + 1
        self.column = self.position - (before.rfind("\n") + 1) + 1
        super().__init__(self._render())

    def __reduce__(self) -> tuple[type[FqlError], tuple[str, int, str]]:
        return (type(self), (self.message, self.position, self.source))

    def _render(self) -> str:
        if not self.source:
            return self.message
        where = f"column {self.column}" if "\n" not in self.source else f"line {self.line}, column {self.column}"
        text = self.source.split("\n")[self.line - 1]
        start = 0
        if len(text) > _EXCERPT:
            start = max(0, min(self.column - 1 - _EXCERPT // 2, len(text) - _EXCERPT))
            text = text[start : start + _EXCERPT]
        pad = "".join("\t" if ch == "\t" else " " for ch in text[: self.column - 1 - start])
        return f"{self.message} at {where}:\n  {text}\n  {pad}^"
