"""`eventyard audit verify FILE`: is every entry of an earlier export still in the trail, unchanged?

The database refuses updates and deletes, but whoever can write the database file (or is a
PostgreSQL superuser) can drop that guard. An export kept where they cannot reach it (object
storage with a retention lock, a SIEM) is the reference: ``verify`` reads the current trail
from the export's first entry on and reports every entry of the export that is missing or
differs, and every id missing from the trail's own sequence in that range (ids are handed out
one after the other, so a hole is an entry that was removed).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ExportFileError(ValueError):
    """The reference file is not a JSON-lines audit export."""


@dataclass
class VerifyReport:
    checked: int = 0
    first_id: int = 0
    last_id: int = 0
    missing: list[int] = field(default_factory=list)
    #: id -> names of the fields that differ
    changed: dict[int, list[str]] = field(default_factory=dict)
    #: ids absent from the trail's own sequence between first_id and last_id
    holes: list[int] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.changed or self.holes)


def read_export(path: Path) -> dict[int, dict[str, Any]]:
    """The entries of a ``--format jsonl`` export, by id."""
    entries: dict[int, dict[str, Any]] = {}
    try:
        with path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ExportFileError(
                        f"{path}:{number}: not JSON ({exc.msg}); verify reads a jsonl export"
                    ) from None
                if not isinstance(entry, dict) or not isinstance(entry.get("id"), int):
                    raise ExportFileError(f"{path}:{number}: not an audit entry (no integer `id`)")
                entries[entry["id"]] = entry
    except OSError as exc:
        raise ExportFileError(f"cannot read {path}: {exc}") from None
    if not entries:
        raise ExportFileError(f"{path} holds no audit entries")
    return entries


def compare(expected: dict[int, dict[str, Any]], current: Iterable[dict[str, Any]]) -> VerifyReport:
    """Check ``expected`` (an earlier export) against ``current`` (the trail from its first id on)."""
    report = VerifyReport(checked=len(expected), first_id=min(expected), last_id=max(expected))
    seen: dict[int, dict[str, Any]] = {}
    for entry in current:
        entry_id = entry["id"]
        if entry_id > report.last_id:
            break
        if entry_id >= report.first_id:
            seen[entry_id] = entry
    for entry_id, old in sorted(expected.items()):
        now = seen.get(entry_id)
        if now is None:
            report.missing.append(entry_id)
        elif now != old:
            report.changed[entry_id] = sorted(k for k in old.keys() | now.keys() if old.get(k) != now.get(k))
    report.holes = [i for i in range(report.first_id, report.last_id + 1) if i not in seen and i not in expected]
    return report


def describe(report: VerifyReport) -> list[str]:
    """Lines for the terminal: one per problem, or one saying all is well."""
    span = f"ids {report.first_id}-{report.last_id}"
    if report.ok:
        return [f"verified {report.checked:,} entries ({span}): all present and unchanged"]
    lines = [f"{len(report.missing) + len(report.changed)} of {report.checked:,} entries ({span}) do not match:"]
    lines += [f"  #{i}: missing from the trail" for i in report.missing]
    lines += [f"  #{i}: changed ({', '.join(fields)})" for i, fields in sorted(report.changed.items())]
    if report.holes:
        shown = ", ".join(str(i) for i in report.holes[:20]) + (" ..." if len(report.holes) > 20 else "")
        lines.append(f"  ids missing from the trail's sequence (removed entries): {shown}")
    return lines
