"""Settings, URLs and role routing of the scale-out deployment: every bad input gets a clear error."""

from __future__ import annotations

import pytest
from starlette.types import Receive, Scope, Send

from eventyard.errors import ConfigError
from eventyard.log.jetstream_names import LogUrl, Names, frame, partition, unframe
from eventyard.runtime import backends
from eventyard.runtime.roles import RoleGate, role_of
from eventyard.runtime.settings import Settings, load_settings
from eventyard.state.postgres import split_state_url
from eventyard.testing.asgi import call

PG = "postgresql://eventyard@db.internal:5432/eventyard"


def settings(**overrides: object) -> Settings:
    return load_settings(None, dict(overrides), environ={})


def test_roles_from_flags_env_and_all() -> None:
    assert settings(roles="route, collect").roles == ("collect", "route")
    assert settings(roles="all").roles == ("collect", "unify", "route", "control")
    assert settings().roles == ("collect", "unify", "route", "control")
    assert load_settings(None, {}, environ={"EVENTYARD_ROLES": "unify"}).roles == ("unify",)
    with pytest.raises(ConfigError, match=r"unknown role\(s\) \['collector'\]"):
        settings(roles="collector")
    with pytest.raises(ConfigError, match="empty"):
        settings(roles=" , ")


def test_passwords_in_urls_stay_out_of_reprs() -> None:
    shown = repr(settings(state="postgresql://eventyard:s3cret@db/eventyard", log="nats://u:pw@nats:4222"))
    assert "s3cret" not in shown and "pw@" not in shown
    assert "postgresql://eventyard:***@db/eventyard" in shown


@pytest.mark.parametrize(
    ("log", "state", "message"),
    [
        ("redis://x", PG, "`log` = 'redis://x' is not supported"),
        ("nats://127.0.0.1:4222", "", "keeps its queue state in PostgreSQL"),
        ("nats://127.0.0.1:4222", "sqlite:///tmp/s.db", "keeps its queue state in PostgreSQL"),
        ("", "mysql://db/x", "`state` = 'mysql://db/x' is not supported"),
        ("nats://h:4222?prefx=a", PG, r"unknown option\(s\) \['prefx'\]"),
        ("nats://h:4222?replicas=7", PG, "replicas must be between 1 and 5"),
        ("nats://h:4222?max_lease=soon", PG, "max_lease must be a number"),
        ("nats://h:4222?prefix=9bad", PG, "must start with a letter"),
        ("nats://h:4222", "postgresql://db", "expected postgresql://user@host:5432/database"),
        ("nats://h:4222", PG + "?schema=bad-name", "letters, digits"),
    ],
)
def test_bad_backend_urls_say_what_to_change(log: str, state: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        backends.check(settings(log=log, state=state))


def test_good_urls_pick_the_scale_out_backends() -> None:
    s = settings(log="nats://a:4222,nats://b:4222?replicas=3&prefix=prod&max_lease=30", state=PG + "?schema=ey")
    backends.check(s)
    assert backends.is_scale_out(s)
    url = LogUrl(s.log)
    assert (url.servers, url.prefix, url.replicas, url.max_lease) == (
        ["nats://a:4222", "nats://b:4222"],
        "prod",
        3,
        30.0,
    )
    assert split_state_url(s.state) == ("postgresql://eventyard@db.internal:5432/eventyard", "ey")
    assert not backends.is_scale_out(settings())


def test_subjects_escape_topics_and_frames_keep_any_key() -> None:
    names = Names("ey")
    subject = names.live("deliver.dst_1 *x>", "ana")
    assert subject.count(".") == 3 and " " not in subject and "*" not in subject
    assert names.topic_of(subject) == "deliver.dst_1 *x>"
    assert names.live("t", "") == "ey.t.p.0" and partition("ana") == partition("ana")
    assert unframe(frame(12.5, "ü.ser 1", b"{}")) == (12.5, "ü.ser 1", b"{}")


def test_role_paths() -> None:
    assert role_of("/v1/batch") == "collect" and role_of("/pixel/v1/track") == "collect"
    assert role_of("/api/v1/sources") == "control" and role_of("/") == "control"
    assert role_of("/metrics") is None and role_of("/ready") is None


async def test_a_path_of_a_role_not_run_here_answers_404_with_the_reason() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    gate = RoleGate(app, ("unify", "route"))
    refused = await call(gate, "POST", "/v1/track", {"event": "x"})
    assert refused.status == 404
    body = refused.json()
    assert body["code"] == "role_not_served" and "needs the collect role" in body["message"]
    assert (await call(gate, "GET", "/api/v1/sources")).status == 404
    assert (await call(gate, "GET", "/metrics")).status == 200
