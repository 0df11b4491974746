"""PostgreSQL errors translated into outcomes: what will pass on a later try, and what will not.

SQLSTATE classes decide. Connection trouble (``08``), rolled-back transactions such as
serialization failures and deadlocks (``40``), lock and statement timeouts, a server short of
resources (``53``) or shutting down (``57``) pass later: retry. Everything else with a SQLSTATE
(permissions ``42501``, the 1600-column cap ``54011``, a missing database ``3D000``, bad
credentials ``28``) fails the same way again: failed, with the server's message. A refused
connection has no SQLSTATE: a missing database or role and failed authentication are failed,
anything else (refused, timed out, too many clients) retry.
"""

from __future__ import annotations

import psycopg

from eventyard.destinations.base import Outcome

#: SQLSTATE classes (first two characters) and codes that pass on a later try.
RETRY_CLASSES = frozenset({"08", "40", "53", "57", "58"})
RETRY_CODES = frozenset({"55P03", "55006"})
#: A refused connection carries no SQLSTATE; these server answers to it will not change by themselves.
REFUSED_FOR_GOOD = (
    "does not exist",  # database or role
    "password authentication failed",
    "no pg_hba.conf entry",
    "permission denied",
    "not permitted to log in",
    "invalid connection option",
    "invalid dsn",
)


def is_transient(exc: BaseException) -> bool:
    """True when the same load may succeed later."""
    if not isinstance(exc, psycopg.Error):
        return isinstance(exc, OSError | TimeoutError)
    code = exc.sqlstate
    if code is None:
        # No SQLSTATE: the client lost or never had a connection; the server may have said why.
        text = str(exc).lower()
        if any(reason in text for reason in REFUSED_FOR_GOOD):
            return False
        return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)
    return code[:2] in RETRY_CLASSES or code in RETRY_CODES


def describe(exc: BaseException) -> str:
    """One line: the server's message with its SQLSTATE, or the exception's text."""
    if isinstance(exc, psycopg.Error):
        diag = exc.diag
        lines = str(exc).strip().splitlines()
        primary = diag.message_primary or (lines[0] if lines else type(exc).__name__)
        code = f" (SQLSTATE {exc.sqlstate})" if exc.sqlstate else ""
        hint = f"; hint: {diag.message_hint}" if diag.message_hint else ""
        return f"PostgreSQL: {primary}{code}{hint}"
    text = str(exc) or type(exc).__name__
    return f"PostgreSQL: {type(exc).__name__}: {text}"


def outcome_for(exc: BaseException, what: str = "load") -> Outcome:
    """``retry`` for a transient error, else ``failed``; the message says which it was."""
    if is_transient(exc):
        return Outcome.retry(f"{what} failed, will retry: {describe(exc)}")
    return Outcome.failed(f"{what} failed and would fail again: {describe(exc)}")
