"""Poller failover: one replica polls a pipeline under a store lease; when it dies another takes over
within the documented bound (`poll_lease` × 4/3 plus one round) and resumes from the stored cursor."""

from __future__ import annotations

import copy
import time
from collections import Counter
from collections.abc import Callable

import pytest

from tests.replicas.conftest import Cluster, Replica, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

POLL_LEASE = 2.0
EVERY = 0.5  # the poll pipeline's schedule
INITIAL = "2000-01-01"


def polls(replica: Replica) -> int:
    return replica.log.read_text().count('"message": "polled"')


def workorders(cluster: Cluster) -> Counter[str]:
    return Counter(w["workorderNumber"] for w in cluster.nextplus.workorders.values())


def test_poller_fails_over_and_resumes_from_the_cursor(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(poll=True, poll_lease=POLL_LEASE, orders=2)
    sells = cluster.nextx.store.sells
    codes = {s["invoice_no"] for s in sells.values()}
    replicas = cluster.start(2)
    wait_for(
        lambda: codes <= set(workorders(cluster)),
        20,
        lambda: f"work orders {sorted(codes)} not all in Next Plus: {sorted(workorders(cluster))}",
    )

    # Exactly one replica polls; watch it for several rounds.
    time.sleep(4 * EVERY)
    rounds = {replica.name: polls(replica) for replica in replicas}
    pollers = [replica for replica in replicas if rounds[replica.name]]
    assert len(pollers) == 1, f"polling rounds per replica: {rounds}"
    (holder,) = pollers
    (survivor,) = [replica for replica in replicas if replica is not holder]
    cursor = cluster.sql("SELECT value FROM cursors WHERE pipeline = 'rep.workorders'")
    assert cursor, "the poller stored no cursor"

    holder.kill()
    killed = time.monotonic()
    since_kill = cluster.nextx.clock() - cluster.nextx.started
    template = next(iter(sells.values()))
    added = set()
    for n in range(3):
        oid = max(sells) + 1
        sell = copy.deepcopy(template)
        sell.update(id=oid, invoice_no=f"HD9{oid:05d}", transaction_date=f"2030-01-0{n + 1}")
        sells[oid] = sell
        added.add(sell["invoice_no"])

    bound = POLL_LEASE * 4 / 3 + EVERY
    wait_for(
        lambda: added <= set(workorders(cluster)),
        bound + 15,
        lambda: f"new orders {sorted(added)} never reached Next Plus; survivor log:\n{survivor.tail()}",
    )
    took = time.monotonic() - killed
    assert took <= bound + 4.0, (
        f"takeover and delivery took {took:.1f} s; the bound is {bound:.1f} s + delivery"
    )
    assert polls(survivor) > 0, f"the survivor never polled:\n{survivor.tail()}"

    # Resumed from the stored cursor: no poll after the kill started from the initial value again.
    later = [c for c in cluster.nextx.calls if c["path"] == "/api/sell/sell" and c["time"] >= since_kill]
    assert later, "no poll reached NextX after the kill"
    restarted = [c["query"] for c in later if "2000-01-01" in c["query"]]
    assert not restarted, f"polls after the kill started over from {INITIAL}: {restarted}"

    # No work order created twice: one record each, and not a single refused or repeated create.
    counts = workorders(cluster)
    assert counts == Counter({code: 1 for code in codes | added}), f"work orders in Next Plus: {counts}"
    creates = [
        c for c in cluster.nextplus.calls if c["method"] == "POST" and c["path"].startswith("/api/Workorders")
    ]
    statuses = Counter(c["status"] for c in creates)
    assert statuses == Counter({200: len(codes | added)}), f"work-order creates by status: {statuses}"
    stored = cluster.sql("SELECT value FROM cursors WHERE pipeline = 'rep.workorders'")[0][0]
    assert "2030-01-03" in stored, f"cursor not advanced past the new orders: {stored}"
    assert survivor.stop() == 0
