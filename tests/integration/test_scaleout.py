"""The split deployment on loopback: role processes on NATS JetStream and PostgreSQL.

Two collect, two unify and two route processes share the work; one of each is killed with
SIGKILL under load; every acknowledged event still reaches the webhook. Then the same against
a three-node NATS cluster that loses a node under load.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from eventyard.testing.deployment import Deployment, Load, NatsCluster, delivered_ids, metric
from eventyard.testing.recorder import ThreadedRecorder, WebhookRecorder
from eventyard.testing.scaleout import nats_available, nats_url, postgres_available, postgres_database
from eventyard.testing.services import require_service
from eventyard.testing.wait import eventually

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pg() -> Iterator[str]:
    require_service(postgres_available(), "PostgreSQL at 127.0.0.1:5432")
    with postgres_database() as dsn:
        yield dsn


@pytest.fixture
def recorder() -> Iterator[ThreadedRecorder]:
    with WebhookRecorder().in_thread() as rec:
        yield rec


def wait_delivered(recorder: ThreadedRecorder, acked: set[str], timeout: float = 60.0) -> set[str]:
    """The acknowledged ids not delivered yet, once all are or ``timeout`` passed."""
    return eventually(
        lambda: acked - set(delivered_ids([r.json for r in recorder.requests])),
        lambda missing: not missing,
        timeout=timeout,
        every=0.25,
    )


def test_two_processes_per_role_share_the_work_and_survive_kill_9(
    tmp_path: Path, pg: str, recorder: ThreadedRecorder
) -> None:
    require_service(nats_available(), "NATS JetStream at 127.0.0.1:4222")
    # Leases (and JetStream's intake ack wait) of 8 s: a dead process's work comes back within
    # seconds, while a live one starved of CPU on a busy machine keeps its leases, so the
    # duplicates counted below are those of the killed route process.
    deployment = Deployment(pg, nats_url(), tmp_path, max_lease=8)
    deployment.setup(f"{recorder.url}/hook")
    try:
        procs = deployment.start({"collect": 2, "unify": 2, "route": 2})
        with Load(procs["collect"], "kill9") as load:
            load.wait_for_acks(200)
            # Both processes of each work role took part before anything was killed.
            both = eventually(
                lambda: (
                    [metric(p, "eventyard_pipeline_events") > 0 for p in procs["unify"]]
                    + [metric(p, "eventyard_deliveries") > 0 for p in procs["route"]]
                ),
                all,
                timeout=30,
            )
            assert all(both), f"work not shared: {both}"
            for role in ("route", "unify", "collect"):
                procs[role][0].kill()
                load.wait_for_acks(len(load.acked) + 200)
        missing = wait_delivered(recorder, load.acked)
        assert not missing, f"{len(missing)} acknowledged events never delivered, e.g. {sorted(missing)[:5]}"
        seen = delivered_ids([r.json for r in recorder.requests])
        assert set(seen) <= load.sent, "the webhook got events nobody sent"
        again = {m: n for m, n in seen.items() if n > 1}
        # At least once: only a batch in flight at a killed route process may arrive twice.
        assert len(again) <= 4 * 100, f"{len(again)} events delivered more than once"
    finally:
        deployment.stop()
        deployment.drop()


def test_losing_a_nats_node_under_load_loses_no_acknowledged_event(
    tmp_path: Path, pg: str, recorder: ThreadedRecorder
) -> None:
    with NatsCluster(tmp_path / "nats") as cluster:
        deployment = Deployment(pg, f"{cluster.url}?replicas=3", tmp_path, max_lease=4)
        deployment.setup(f"{recorder.url}/hook")
        try:
            procs = deployment.start({"collect,unify,route": 2}, timeout=90)
            with Load(procs["collect,unify,route"], "node") as load:
                load.wait_for_acks(200)
                leader = cluster.stream_leader(f"{deployment.prefix}_log")
                cluster.kill(leader)  # the stream's leader: JetStream elects another, replicas keep the data
                load.wait_for_acks(len(load.acked) + 200, timeout=60)
                cluster.start_node(leader)  # the node comes back and catches up
                load.wait_for_acks(len(load.acked) + 100, timeout=60)
            missing = wait_delivered(recorder, load.acked, timeout=90)
            assert not missing, f"{len(missing)} acknowledged events lost, e.g. {sorted(missing)[:5]}"
            assert set(delivered_ids([r.json for r in recorder.requests])) <= load.sent
        finally:
            deployment.stop()
            deployment.drop()
