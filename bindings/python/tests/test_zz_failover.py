"""SIGKILL of the ensemble's leader while a lock holder works (runs last: one server stays
down). The holder's session survives the fail-over, so its lock and sequencer stay valid."""

from __future__ import annotations

import os
import signal
import time

import coord


def retry(f, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return f()
        except (coord.ConnectionLossError, coord.NotServingError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_leader_sigkill_while_holding_a_lock(ensemble, base):
    servers = ensemble.servers.split(",")
    events = []
    with coord.Client(ensemble.servers, ca=ensemble.ca, session_timeout=20) as c:
        c.add_listener(events.append)
        lock = c.Lock(f"{base}/lock", "holder")
        assert lock.acquire(timeout=10)
        seq = lock.sequencer
        retry(lambda: c.set(base, b"step-1"))
        statuses = [c.server_status(s) for s in servers]
        leader_index = [s["role"] for s in statuses].index("leader")
        os.kill(ensemble.pid(leader_index + 1), signal.SIGKILL)
        # The work goes on through the fail-over: writes retried on ConnectionLoss.
        for i in range(2, 6):
            retry(lambda: c.set(base, f"step-{i}".encode()))
        assert retry(lambda: c.get(base, linearizable=True))[0] == b"step-5"
        assert retry(lambda: c.check_sequencer(seq)) is True
        assert lock.is_acquired and lock.sequencer == seq
        retry(lambda: lock.release())
        assert retry(lambda: c.check_sequencer(seq)) is False
    # The surviving two elected a new leader.
    others = [s for i, s in enumerate(servers) if i != leader_index]
    deadline = time.monotonic() + 30
    while True:
        roles = []
        for s in others:
            try:
                roles.append(c.server_status(s)["role"])
            except coord.CoordError:
                roles.append("?")
        if "leader" in roles or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert "leader" in roles, roles
