"""Flat matching with Segment's merge protection, on an in-memory view of the graph.

For each event, with its identifiers in priority order:

1. find the profiles its identifiers already belong to;
2. none: a new profile gets them all; one: it gets the new ones; several: they merge into
   the oldest, which gets the new ones;
3. before changing anything, check the result against the rules: per-type limits over a
   period, the identifier cap and the merge cap. A rule counts as broken only when the change
   makes it worse (more of a type than any single profile held before), so tightening the
   rules later never stops a profile from being matched;
4. when a rule would break, drop the lowest-priority identifier of the event, note why, and
   try again from 1. One identifier always fits, so this ends.

``WorkingGraph`` holds what one batch touched: identifiers looked up once for the batch,
profiles loaded when a rule needs their identifiers, and every change (new profiles,
identifiers, merges, refusals) for the caller to write in the same transaction. With an empty
loader it is also the scratch graph a recomputation replays events into.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import msgspec

from eventyard.state.identity_base import MergeRow
from eventyard.unify.identifiers import split_key
from eventyard.unify.identity_rules import IdentityRules

#: Why two profiles merged.
SHARED_IDENTIFIER = "shared_identifier"
ALIAS = "alias"
MERGE = "merge"


@dataclass(slots=True)
class Ident:
    key: str
    added_at: float
    message_id: str
    source_id: str
    origin: str
    created_at: float
    is_new: bool = False


@dataclass(slots=True)
class Prof:
    id: str
    created_at: float
    merges: int = 0
    #: ``None`` until loaded.
    identifiers: dict[str, Ident] | None = None
    is_new: bool = False
    merged_into: str | None = None


@dataclass(slots=True)
class Item:
    """One event to resolve."""

    keys: list[str]
    message_id: str
    source_id: str
    #: The event's time (limits over a period are counted back from it).
    ts: float
    #: What a merge caused by this item is recorded as.
    rule: str = SHARED_IDENTIFIER
    #: Resolve without merging (a recomputation replays the event a split cut this way).
    no_merge: bool = False
    #: Identifiers known to belong together already: no rule check (a recomputation's
    #: identifiers whose events are past retention).
    trusted: bool = False


@dataclass(slots=True)
class Refusal:
    key: str
    rule: str
    detail: str


class Outcome(msgspec.Struct):
    """Where an event went (a Struct: one per event, cheap to make)."""

    profile_id: str
    created: bool = False
    #: Profiles merged into ``profile_id`` by this item.
    merged: list[str] = []
    #: Identifiers of the event that were dropped, with the rule and why.
    refused: list[Refusal] = []


class Loader(Protocol):
    def lookup(self, keys: Sequence[str]) -> dict[str, str]: ...

    def load(self, profile_ids: Sequence[str]) -> dict[str, Prof]: ...


class EmptyLoader:
    """A graph with nothing in it yet."""

    def lookup(self, keys: Sequence[str]) -> dict[str, str]:
        return {}

    def load(self, profile_ids: Sequence[str]) -> dict[str, Prof]:
        return {}


class WorkingGraph:
    def __init__(
        self,
        workspace_id: str,
        collection: str,
        rules: IdentityRules,
        loader: Loader,
        now: float,
        new_id: Callable[[], str],
    ) -> None:
        self.workspace_id = workspace_id
        self.collection = collection
        self.rules = rules
        self.loader = loader
        self.now = now
        self.new_id = new_id
        self.key_to_profile: dict[str, str] = {}
        self.profiles: dict[str, Prof] = {}
        self.merges: list[MergeRow] = []
        self._looked_up: set[str] = set()
        self._created = itertools.count()

    # ------------------------------------------------------------------ loading

    def prefetch(self, keys: Sequence[str]) -> None:
        """Look up every key the batch may need, in one query."""
        looked_up = self._looked_up
        if looked_up.issuperset(keys):
            return
        wanted = [k for k in keys if k not in looked_up]
        if not wanted:
            return
        wanted = list(dict.fromkeys(wanted))
        self._looked_up.update(wanted)
        for k, pid in self.loader.lookup(wanted).items():
            self.key_to_profile.setdefault(k, pid)

    def preload(self, profile_ids: Iterable[str]) -> None:
        """Load the identifiers of profiles a rule check will need, in one query."""
        missing = [p for p in dict.fromkeys(profile_ids) if self._needs_load(p)]
        if missing:
            for pid, prof in self.loader.load(missing).items():
                self.profiles[pid] = prof

    def _needs_load(self, pid: str) -> bool:
        prof = self.profiles.get(pid)
        return prof is None or prof.identifiers is None

    def profile(self, pid: str) -> Prof:
        if self._needs_load(pid):
            self.preload([pid])
        prof = self.profiles.get(pid)
        if prof is None:
            raise LookupError(f"profile {pid} is referenced by an identifier but does not exist")
        return prof

    def current(self, pid: str) -> str:
        """Follow merges made in this graph to the profile that holds ``pid`` now."""
        prof = self.profiles.get(pid)
        while prof is not None and prof.merged_into is not None:
            pid = prof.merged_into
            prof = self.profiles.get(pid)
        return pid

    def needs_checks(self, keys: Sequence[str]) -> list[str]:
        """Profiles a rule check for an item with ``keys`` would load (for ``preload``)."""
        self.prefetch(keys)
        pids = {self.key_to_profile[k] for k in keys if k in self.key_to_profile}
        unknown = any(k not in self.key_to_profile for k in keys)
        return sorted(pids) if (unknown or len(pids) > 1) else []

    # --------------------------------------------------------------- resolving

    def resolve(self, item: Item) -> Outcome | None:
        """Place one event in the graph; ``None`` when it has no identifiers."""
        keys = list(dict.fromkeys(item.keys))
        if not keys:
            return None
        self.prefetch(keys)
        known = self.key_to_profile
        first = known.get(keys[0])
        if first is not None and all(known.get(k) == first for k in keys[1:]):
            return Outcome(first)  # the common case: every identifier already on one profile
        refused: list[Refusal] = []
        while True:
            pids = list(dict.fromkeys(self.key_to_profile[k] for k in keys if k in self.key_to_profile))
            new = [k for k in keys if k not in self.key_to_profile]
            if item.no_merge and len(pids) > 1:
                # keep only the identifiers of the first (highest-priority) profile and new ones
                keep = pids[0]
                for k in keys:
                    pk = self.key_to_profile.get(k)
                    if pk is not None and pk != keep:
                        refused.append(Refusal(k, "split", f"not linked again after a split (belongs to {pk})"))
                keys = [k for k in keys if self.key_to_profile.get(k) in (None, keep)]
                continue
            broken = None if item.trusted else self._broken(pids, new, item.ts)
            if broken is None:
                break
            rule, detail = broken
            dropped = keys.pop()
            refused.append(Refusal(dropped, rule, detail))
        outcome = self._apply(item, keys, pids, new)
        outcome.refused = refused
        return outcome

    def _count(self, identifiers: Iterable[str], ts: float, added: dict[str, Ident]) -> dict[str, int]:
        counts: dict[str, int] = {}
        for k in identifiers:
            type_ = split_key(k)[0]
            period = self.rules.rule_of(self.collection, type_)[2]
            ident = added.get(k)
            if period is not None and ident is not None and ident.added_at <= ts - period:
                continue
            counts[type_] = counts.get(type_, 0) + 1
        return counts

    def _broken(self, pids: list[str], new: list[str], ts: float) -> tuple[str, str] | None:
        if not new and len(pids) <= 1:
            return None
        profs = [self.profile(p) for p in pids]
        combined: dict[str, int] = {}
        single_max: dict[str, int] = {}
        total = len(new)
        biggest = 0
        for prof in profs:
            assert prof.identifiers is not None
            counts = self._count(prof.identifiers, ts, prof.identifiers)
            for t, n in counts.items():
                combined[t] = combined.get(t, 0) + n
                single_max[t] = max(single_max.get(t, 0), n)
            total += len(prof.identifiers)
            biggest = max(biggest, len(prof.identifiers))
        for t, n in self._count(new, ts, {}).items():
            combined[t] = combined.get(t, 0) + n
        for t in sorted(combined, key=lambda t: self.rules.rule_of(self.collection, t)[0]):
            _, limit, period = self.rules.rule_of(self.collection, t)
            n = combined[t]
            if n > limit and n > single_max.get(t, 0):
                per = "ever" if period is None else f"per {period / 86400:g} days"
                return f"limit:{t}", f"a profile may hold {limit} {t} ({per}); this would make {n}"
        if total > self.rules.max_identifiers and total > biggest:
            return (
                "cap:identifiers",
                f"a profile may hold {self.rules.max_identifiers} identifiers; this would make {total}",
            )
        if len(profs) > 1:
            merges = sum(p.merges for p in profs) + len(profs) - 1
            if merges > self.rules.max_merges:
                return "cap:merges", f"a profile may absorb {self.rules.max_merges} merges; this would make {merges}"
        return None

    def _apply(self, item: Item, keys: list[str], pids: list[str], new: list[str]) -> Outcome:
        if len(pids) == 1 and not new:
            return Outcome(pids[0])  # the common case: a known profile, nothing changes
        if not pids:
            pid = self.new_id()
            self.profiles[pid] = Prof(pid, self.now + next(self._created) * 1e-6, identifiers={}, is_new=True)
            outcome = Outcome(pid, created=True)
        else:
            profs = [self.profile(p) for p in pids]
            survivor = min(profs, key=lambda p: (p.created_at, p.id))
            outcome = Outcome(survivor.id)
            before = {k: self.key_to_profile[k] for k in keys if k in self.key_to_profile}
            for prof in profs:
                if prof is not survivor:
                    self._merge(prof, survivor, item, before)
                    outcome.merged.append(prof.id)
        target = self.profiles[outcome.profile_id]
        assert target.identifiers is not None
        for k in new:
            target.identifiers[k] = Ident(k, item.ts, item.message_id, item.source_id, target.id, self.now, is_new=True)
            self.key_to_profile[k] = target.id
        return outcome

    def _merge(self, other: Prof, survivor: Prof, item: Item, before: dict[str, str]) -> None:
        assert other.identifiers is not None and survivor.identifiers is not None
        for k, ident in other.identifiers.items():
            survivor.identifiers[k] = ident
            self.key_to_profile[k] = survivor.id
        survivor.merges += 1 + other.merges
        other.merged_into = survivor.id
        other.identifiers = {}
        for prof in self.profiles.values():
            if prof.merged_into == other.id:
                prof.merged_into = survivor.id
        linked = ", ".join(f"{k} ({p})" for k, p in before.items())
        if item.rule == ALIAS:
            detail = f"alias call linked {linked}"
        elif item.rule == MERGE:
            detail = f"merge call linked {linked}"
        else:
            detail = f"the event carried {linked}"
        self.merges.append(
            MergeRow(
                workspace_id=self.workspace_id,
                collection=self.collection,
                into_profile=survivor.id,
                from_profile=other.id,
                message_id=item.message_id,
                source_id=item.source_id,
                rule=item.rule,
                detail=detail,
                identifiers=before,
                event_ts=item.ts,
                at=self.now,
            )
        )
