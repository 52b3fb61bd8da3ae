"""SIGKILL of the ensemble's leader while a lock holder works (runs last: one server stays
down). The holder's session survives the fail-over, so its lock and sequencer stay valid,
and a second session waiting for the same lock all along gets it only after the release."""

from __future__ import annotations

import os
import signal
import threading
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


def _gone(pid: int) -> bool:
    """Whether the process is dead (exited, or a zombie its parent has not reaped yet)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_leader_sigkill_while_holding_a_lock(ensemble, base):
    servers = ensemble.servers.split(",")
    events = []
    released = threading.Event()
    contender_got = []
    with coord.Client(ensemble.servers, ca=ensemble.ca, session_timeout=20) as c, \
            coord.Client(ensemble.servers, ca=ensemble.ca, session_timeout=20) as other:
        c.add_listener(events.append)
        lock = c.Lock(f"{base}/lock", "holder")
        assert lock.acquire(timeout=10)
        seq = lock.sequencer
        generation = lock.generation

        def contend():
            theirs = other.Lock(f"{base}/lock", "contender")
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                try:
                    if theirs.acquire(timeout=5):
                        # Safety: the holder had let go before this session got the lock.
                        contender_got.append((released.is_set(), theirs.generation,
                                              theirs.sequencer))
                        retry(theirs.release)
                        return
                except (coord.ConnectionLossError, coord.NotServingError, coord.LockTimeout):
                    pass

        t = threading.Thread(target=contend)
        t.start()
        retry(lambda: c.set(base, b"step-1"))
        statuses = [c.server_status(s) for s in servers]
        roles = [s["role"] for s in statuses]
        assert sorted(roles) == ["follower", "follower", "leader"], roles
        leader_index = roles.index("leader")
        leader_pid = ensemble.pid(leader_index + 1)
        os.kill(leader_pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while not _gone(leader_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _gone(leader_pid), "the leader survived SIGKILL"
        # The work goes on through the fail-over: writes retried on ConnectionLoss.
        for i in range(2, 6):
            retry(lambda: c.set(base, f"step-{i}".encode()))
            # Still ours at every step: the waiting session has not taken it.
            assert retry(lambda: c.check_sequencer(seq)) is True
            assert not contender_got
        assert retry(lambda: c.get(base, linearizable=True))[0] == b"step-5"
        assert lock.is_acquired and lock.sequencer == seq and lock.generation == generation
        released.set()
        retry(lambda: lock.release())
        assert retry(lambda: c.check_sequencer(seq)) is False
        t.join(150)
        assert not t.is_alive()
        # The contender got the lock, after the release, with a newer generation and a
        # sequencer of its own.
        assert len(contender_got) == 1, contender_got
        was_released, their_generation, their_seq = contender_got[0]
        assert was_released
        assert their_generation > generation and their_seq != seq
        assert retry(lambda: c.check_sequencer(their_seq)) is False  # released again
    # The surviving two elected a new leader; the killed one answers no more.
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
