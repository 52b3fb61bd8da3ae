"""Recipes (the Rust coord-recipes under the hood) under contention from several processes."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import coord


def _worker(servers, ca, lock_path, counter, rounds, out):
    """Takes the lock `rounds` times; under it, a read-modify-write of `counter` (without a
    version check, so only the lock keeps increments from being lost) and an `inside` node
    that two holders at once would collide on."""
    with coord.Client(servers, ca=ca) as c:
        lock = c.Lock(lock_path, f"pid-{os.getpid()}")
        overlaps = 0
        for _ in range(rounds):
            with lock:
                try:
                    c.create(lock_path + "-inside", ephemeral=True)
                except coord.NodeExistsError:
                    overlaps += 1
                n = int(c.get(counter)[0])
                c.set(counter, str(n + 1).encode())
                assert c.check_sequencer(lock.sequencer)
                c.delete(lock_path + "-inside")
        out.put(overlaps)


def test_lock_under_contention_from_processes(client, base, ensemble):
    counter = f"{base}/counter"
    client.create(counter, b"0")
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(ensemble.servers, ensemble.ca, f"{base}/lock",
                                               counter, 5, out)) for _ in range(4)]
    for p in procs:
        p.start()
    overlaps = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    assert overlaps == [0, 0, 0, 0]
    assert client.get(counter)[0] == b"20"


def test_lock_sequencer_and_timeout(client, base, ensemble):
    lock = client.Lock(f"{base}/l", "me")
    assert lock.sequencer is None and not lock.is_acquired
    assert lock.acquire()
    seq = lock.sequencer
    info = coord.decode_sequencer(seq)
    assert info["mode"] == "exclusive" and info["session_id"] == client.session_id
    assert lock.status == "HELD" and lock.generation == info["czxid"]
    assert lock.contenders() == [b"me"]
    assert client.check_sequencer(seq)
    with coord.Client(ensemble.servers, ca=ensemble.ca) as other:
        theirs = other.Lock(f"{base}/l", "them")
        assert theirs.acquire(blocking=False) is False
        with pytest.raises(coord.LockTimeout):
            theirs.acquire(timeout=0.3)
        assert isinstance(coord.LockTimeout("x"), TimeoutError)
        lock.release()
        assert not client.check_sequencer(seq)
        t = client.transaction()
        t.check_sequencer(seq)
        t.create(f"{base}/fenced")
        results = t.commit()
        assert isinstance(results[0], coord.StaleSequencerError), results
        assert client.exists(f"{base}/fenced") is None
        assert theirs.acquire(timeout=10)
        assert theirs.sequencer != seq
        theirs.release()


def test_election(client, base, ensemble):
    a = client.Election(f"{base}/e", "a")
    assert a.campaign(timeout=10)
    assert a.is_leader and a.term is not None and a.sequencer
    with coord.Client(ensemble.servers, ca=ensemble.ca) as other:
        b = other.Election(f"{base}/e", "b")
        assert b.campaign(timeout=0.3) is False
        leader = b.leader()
        assert leader[0] == b"a" and leader[2] == client.session_id
        assert b.contenders() == [b"a"]
        a.resign()
        assert b.campaign(timeout=10)
        assert other.check_sequencer(b.sequencer)
        ran = []
        b.resign()
        assert a.run(lambda x: ran.append(x) or x, 7) == 7 and ran == [7]
        assert not a.is_leader


def test_ctrl_c_interrupts_a_blocking_call(ensemble, base):
    script = textwrap.dedent(f"""
        import sys, time, coord
        holder = coord.Client({ensemble.servers!r}, ca={ensemble.ca!r}); holder.start()
        holder.Lock("{base}/cc").acquire()
        waiter = coord.Client({ensemble.servers!r}, ca={ensemble.ca!r}); waiter.start()
        print("waiting", flush=True)
        try:
            waiter.Lock("{base}/cc").acquire()
        except KeyboardInterrupt:
            print("interrupted", flush=True)
            # The abandoned acquire was stopped, not left running: its queue node goes and
            # it never takes the lock after the holder lets go.
            for _ in range(200):
                if len([n for n in waiter.get_children("{base}/cc") if "-lock-" in n]) == 1:
                    break
                time.sleep(0.05)
            queued = [n for n in waiter.get_children("{base}/cc") if "-lock-" in n]
            holder.stop()
            third = coord.Client({ensemble.servers!r}, ca={ensemble.ca!r}); third.start()
            got = third.Lock("{base}/cc", "third").acquire(timeout=10)
            print("queued", len(queued), "third", got, flush=True)
            sys.exit(0)
        sys.exit(3)
    """)
    p = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "waiting"
    time.sleep(0.5)
    p.send_signal(signal.SIGINT)
    out, _ = p.communicate(timeout=30)
    assert p.returncode == 0 and "interrupted" in out
    assert "queued 1 third True" in out, out


def _consumer(servers, ca, qpath, out):
    with coord.Client(servers, ca=ca) as c:
        q = c.Queue(qpath)
        got = []
        while True:
            item = q.get(timeout=1.0)
            if item is None:
                break
            got.append(item)
        out.put(got)


def test_queue_each_item_once_across_processes(client, base, ensemble):
    q = client.Queue(f"{base}/q")
    assert q.get() is None and len(q) == 0
    q.put(b"low", priority=9)
    q.put(b"high", priority=0)
    assert q.get() == b"high" and q.get() == b"low"
    items = [f"item-{i}".encode() for i in range(30)]
    q.put_all(items)
    assert len(q) == 30
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_consumer, args=(ensemble.servers, ensemble.ca, f"{base}/q", out))
             for _ in range(3)]
    for p in procs:
        p.start()
    taken = [x for _ in procs for x in out.get(timeout=120)]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    assert sorted(taken) == sorted(items)
    with pytest.raises(TypeError, match="priority"):
        q.put(b"x", priority=300)


def test_locking_queue_claims(client, base, ensemble):
    q = client.LockingQueue(f"{base}/lq")
    q.put(b"job-1")
    q.put(b"job-2")
    assert q.get(timeout=5) == b"job-1" and q.holds_lock()
    with coord.Client(ensemble.servers, ca=ensemble.ca) as other:
        oq = other.LockingQueue(f"{base}/lq")
        assert oq.get(timeout=5) == b"job-2"  # job-1 is claimed
        assert oq.release()
        # A consumer whose session ends loses its claim: the item comes back.
        dying = coord.Client(ensemble.servers, ca=ensemble.ca)
        dying.start()
        dq = dying.LockingQueue(f"{base}/lq")
        assert dq.get(timeout=5) == b"job-2"
        dying.stop()
        assert oq.get(timeout=10) == b"job-2"
        assert oq.consume()
    assert q.consume()
    assert len(q) == 0


def _sem_worker(servers, ca, path, counter, out):
    with coord.Client(servers, ca=ca) as c:
        sem = c.Semaphore(path, max_leases=2)
        peak = 0
        for _ in range(3):
            with sem:
                assert c.check_sequencer(sem.sequencer)
                n = c.Counter(counter).add(1)
                peak = max(peak, n)
                time.sleep(0.05)
                c.Counter(counter).add(-1)
        out.put(peak)


def test_semaphore_bounds_holders_across_processes(client, base, ensemble):
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_sem_worker, args=(ensemble.servers, ensemble.ca, f"{base}/sem",
                                                   f"{base}/inside", out)) for _ in range(4)]
    for p in procs:
        p.start()
    peaks = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    assert max(peaks) <= 2 and max(peaks) >= 1
    assert client.Counter(f"{base}/inside").value == 0


def test_counter_barrier_double_barrier(client, base, ensemble):
    counter = client.Counter(f"{base}/c")
    assert counter.value == 0
    counter += 5
    counter -= 2
    assert counter.value == 3 and counter.add(10) == 13
    with pytest.raises(TypeError, match="delta"):
        counter.add("1")
    barrier = client.Barrier(f"{base}/b")
    barrier.create()
    assert barrier.wait(timeout=0.2) is False
    barrier.remove()
    assert barrier.wait(timeout=5) is True
    import threading

    with coord.Client(ensemble.servers, ca=ensemble.ca) as other:
        results = []
        theirs = other.DoubleBarrier(f"{base}/db", 2)
        t = threading.Thread(target=lambda: results.append(theirs.enter(timeout=20)))
        t.start()
        mine = client.DoubleBarrier(f"{base}/db", 2)
        assert mine.enter(timeout=20)
        t.join(30)
        assert results == [True]
        t = threading.Thread(target=lambda: results.append(theirs.leave(timeout=20)))
        t.start()
        assert mine.leave(timeout=20)
        t.join(30)
        assert results == [True, True]


def _participant(servers, ca, path, name, yes, out):
    with coord.Client(servers, ca=ca) as c:
        p = c.TwoPhaseCommit(path).participant(name)
        assert p.wait_begun("t1", 30)
        p.vote("t1", yes)
        out.put((name, p.decision("t1", timeout=30)))


def test_two_phase_commit_across_processes(client, base, ensemble):
    ctx = mp.get_context("spawn")
    for yes_votes, expected in (((True, True), "commit"), ((True, False), "abort")):
        path = f"{base}/2pc-{expected}"
        tpc = client.TwoPhaseCommit(path)
        out = ctx.Queue()
        procs = [ctx.Process(target=_participant, args=(ensemble.servers, ensemble.ca, path,
                                                        f"p{i}", yes, out))
                 for i, yes in enumerate(yes_votes)]
        for p in procs:
            p.start()
        tpc.begin("t1", ["p0", "p1"])
        assert tpc.decide("t1", 30) == expected
        assert sorted(out.get(timeout=60) for _ in procs) == [("p0", expected), ("p1", expected)]
        for p in procs:
            p.join(30)
            assert p.exitcode == 0
        assert tpc.decision("t1") == expected
        assert tpc.participant("p0").abort_if_undecided("t1") == expected


def test_read_write_lock(client, base, ensemble):
    r1 = client.ReadLock(f"{base}/rw")
    assert r1.acquire(timeout=10) and r1.sequencer
    with coord.Client(ensemble.servers, ca=ensemble.ca) as other:
        r2 = other.ReadLock(f"{base}/rw")
        assert r2.acquire(timeout=10)  # readers share
        w = other.WriteLock(f"{base}/rw")
        assert w.acquire(blocking=False) is False
        with pytest.raises(coord.LockTimeout):
            w.acquire(timeout=0.3)
        r1.release()
        r2.release()
        with w:
            assert other.check_sequencer(w.sequencer)
            assert client.ReadLock(f"{base}/rw").acquire(blocking=False) is False
    rw = client.RwLock(f"{base}/rw")
    with rw.read_lock() as a, rw.read_lock() as b:  # two handles on one recipe share
        assert a.is_acquired and b.is_acquired
        assert coord.decode_sequencer(a.sequencer)["mode"] == "shared"
        assert rw.write_lock().acquire(blocking=False) is False
    with rw.write_lock() as w2:
        assert coord.decode_sequencer(w2.sequencer)["mode"] == "exclusive"


def test_party(client, base, ensemble):
    mine = client.Party(f"{base}/party", "me")
    mine.join()
    other = coord.Client(ensemble.servers, ca=ensemble.ca)
    other.start()
    theirs = other.Party(f"{base}/party", "them")
    theirs.join()
    client.sync(base)  # the other session's join may have gone through another server
    assert sorted(mine) == ["me", "them"] and len(mine) == 2
    other.stop()  # an ended session leaves by itself
    deadline = time.monotonic() + 10
    while len(mine) != 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(mine) == ["me"]
    mine.leave()
    assert len(mine) == 0


def test_tree_cache(client, base):
    client.create(f"{base}/a", b"1")
    cache = client.TreeCache(base)
    events = []
    cache.listen(lambda ev, path: events.append((ev, path)))
    cache.start()
    assert cache.get_data(f"{base}/a")[0] == b"1"
    assert cache.get_children(base) == ["a"]
    client.create(f"{base}/b", b"2")
    client.set(f"{base}/a", b"3")
    client.delete(f"{base}/b")
    deadline = time.monotonic() + 10
    while len(events) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert events[:3] == [("NODE_ADDED", f"{base}/b"), ("NODE_UPDATED", f"{base}/a"),
                          ("NODE_REMOVED", f"{base}/b")]
    assert cache.get_data(f"{base}/a")[0] == b"3" and cache.get_data(f"{base}/b") is None
    cache.close()


def _forked(servers, ca, path, out):
    with coord.Client(servers, ca=ca) as c:
        out.put(c.get(path)[0])


def test_forked_child_gets_its_own_runtime(client, base, ensemble):
    # The parent has used the library (runtime and callback thread running); a forked
    # child inherits none of those threads and must make its own.
    client.set(base, b"from-parent")
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    p = ctx.Process(target=_forked, args=(ensemble.servers, ensemble.ca, base, out))
    p.start()
    assert out.get(timeout=60) == b"from-parent"
    p.join(30)
    assert p.exitcode == 0
