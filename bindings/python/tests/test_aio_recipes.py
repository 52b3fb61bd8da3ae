"""coord.aio's recipes against the real ensemble: each one as coroutines on the running loop,
``async with`` where it holds something, and contention from several processes (each
running its own loop with several sessions) for the lock and the queue."""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import threading
import uuid

import pytest

import coord
import coord.aio


def run(coro, timeout=90):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def aclient(ensemble, **kw):
    return coord.aio.Client(ensemble.servers, ca=ensemble.ca, **kw)


# -- the lock, contended by 3 processes x 2 sessions -------------------------------------


def _aio_lock_worker(servers, ca, lock_path, counter, rounds, out):
    """Two sessions on one loop, each taking the lock `rounds` times; under it an unversioned
    read-modify-write of `counter` (only the lock keeps increments from being lost) and an
    `inside` node that two holders at once would collide on."""

    async def session(name):
        async with coord.aio.Client(servers, ca=ca) as c:
            overlaps = 0
            lock = c.Lock(lock_path, name)
            for _ in range(rounds):
                async with lock:
                    try:
                        await c.create(lock_path + "-inside", ephemeral=True)
                    except coord.NodeExistsError:
                        overlaps += 1
                    n = int((await c.get(counter))[0])
                    await asyncio.sleep(0.005)
                    await c.set(counter, str(n + 1).encode())
                    assert await c.check_sequencer(lock.sequencer)
                    await c.delete(lock_path + "-inside")
            return overlaps

    async def main():
        return sum(await asyncio.gather(*[session(f"{os.getpid()}-{i}") for i in range(2)]))

    out.put(asyncio.run(main()))


def test_aio_lock_under_contention_from_processes(client, base, ensemble):
    counter = f"{base}/counter"
    client.create(counter, b"0")
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_aio_lock_worker,
                         args=(ensemble.servers, ensemble.ca, f"{base}/lock", counter, 4, out))
             for _ in range(3)]
    for p in procs:
        p.start()
    overlaps = [out.get(timeout=180) for _ in procs]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    assert overlaps == [0, 0, 0]
    assert client.get(counter)[0] == b"24"  # 3 processes x 2 sessions x 4 rounds


def test_aio_lock_cancelled_acquire_leaves_nothing(ensemble, base):
    async def main():
        async with aclient(ensemble) as a, aclient(ensemble) as b:
            mine = a.Lock(f"{base}/l", "a")
            assert await mine.acquire()
            assert mine.status == "HELD" and mine.generation is not None
            theirs = b.Lock(f"{base}/l", "b")
            waiting = asyncio.ensure_future(theirs.acquire())
            await asyncio.sleep(0.5)
            assert not waiting.done()
            await a.sync(f"{base}/l")
            # The queue holds the holder's node and the waiter's.
            assert len([n for n in await a.get_children(f"{base}/l") if "-lock-" in n]) == 2
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            # The cancelled acquire's Rust future was dropped: its queue node is deleted and it
            # never takes the lock.
            for _ in range(100):
                if len([n for n in await a.get_children(f"{base}/l") if "-lock-" in n]) == 1:
                    break
                await asyncio.sleep(0.05)
            assert len([n for n in await a.get_children(f"{base}/l") if "-lock-" in n]) == 1
            assert await theirs.contenders() == [b"a"]
            await mine.release()
            await asyncio.sleep(0.3)
            assert not theirs.is_acquired
            third = a.Lock(f"{base}/l", "c")
            assert await third.acquire(timeout=10)
            await b.sync(f"{base}/l")  # a's writes, seen from b's server
            assert (await b.Lock(f"{base}/l").contenders()) == [b"c"]
            with pytest.raises(coord.LockTimeout):
                await theirs.acquire(timeout=0.2)
            assert await theirs.acquire(blocking=False) is False
            await third.release()

    run(main())


# -- the queue, consumed by 3 processes x 2 tasks ----------------------------------------


def _aio_consumer(servers, ca, qpath, out):
    async def main():
        async with coord.aio.Client(servers, ca=ca) as c:
            got = []

            async def take():
                q = c.Queue(qpath)
                while True:
                    item = await q.get(timeout=1.0)
                    if item is None:
                        return
                    got.append(item)

            await asyncio.gather(take(), take())
            return got

    out.put(asyncio.run(main()))


def test_aio_queue_each_item_once_across_processes(ensemble, base):
    items = [f"item-{i}".encode() for i in range(40)]

    async def fill():
        async with aclient(ensemble) as c:
            q = c.Queue(f"{base}/q")
            assert await q.get() is None and await q.len() == 0
            await q.put(b"low", priority=9)
            await q.put(b"high", priority=0)
            assert await q.get() == b"high" and await q.get() == b"low"
            await q.put_all(items)
            assert await q.len() == 40

    run(fill())
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_aio_consumer, args=(ensemble.servers, ensemble.ca, f"{base}/q", out))
             for _ in range(3)]
    for p in procs:
        p.start()
    taken = [x for _ in procs for x in out.get(timeout=180)]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    assert sorted(taken) == sorted(items)  # each exactly once


def test_aio_queue_cancelled_get_takes_nothing(ensemble, base):
    async def main():
        async with aclient(ensemble) as c:
            q = c.Queue(f"{base}/cq")
            getter = asyncio.ensure_future(q.get(timeout=None))
            await asyncio.sleep(0.3)
            getter.cancel()
            with pytest.raises(asyncio.CancelledError):
                await getter
            await q.put(b"x")
            await asyncio.sleep(0.3)
            assert await q.len() == 1 and await q.get(timeout=5) == b"x"

    run(main())


def test_aio_locking_queue(ensemble, base):
    async def main():
        async with aclient(ensemble) as a, aclient(ensemble) as b:
            q = a.LockingQueue(f"{base}/lq")
            await q.put_all([b"job-1", b"job-2"])
            assert await q.get(timeout=5) == b"job-1" and q.holds_lock()
            with pytest.raises(ValueError):
                await q.get()
            oq = b.LockingQueue(f"{base}/lq")
            assert await oq.get(timeout=5) == b"job-2"  # job-1 is claimed
            assert await oq.release()
            dying = aclient(ensemble)
            await dying.start()
            dq = dying.LockingQueue(f"{base}/lq")
            assert await dq.get(timeout=5) == b"job-2"
            await dying.stop()  # its claim ends with its session
            assert await oq.get(timeout=10) == b"job-2"
            assert await oq.consume() and not oq.holds_lock()
            assert await q.consume()
            assert await q.len() == 0
            assert await q.get(timeout=0.2) is None

    run(main())


# -- the other recipes -------------------------------------------------------------------


def test_aio_election(ensemble, base):
    async def main():
        async with aclient(ensemble) as a, aclient(ensemble) as b:
            ea, eb = a.Election(f"{base}/e", "a"), b.Election(f"{base}/e", "b")
            assert await ea.campaign(5)
            assert ea.is_leader and ea.status == "HELD" and ea.term is not None
            assert await b.check_sequencer(ea.sequencer)
            assert not await eb.campaign(0.2)
            await b.sync(f"{base}/e")
            assert await eb.contenders() == [b"a"]
            leader = await eb.leader()
            assert leader[0] == b"a" and leader[2] == a.session_id
            # run(): campaigns (waiting for a to resign), runs the coroutine, resigns.
            task = asyncio.ensure_future(eb.run(lambda x: asyncio.sleep(0, x), 7))
            await asyncio.sleep(0.2)
            assert not task.done()
            await ea.cancel()
            assert await task == 7 and not eb.is_leader
            await a.sync(f"{base}/e")
            assert await ea.leader() is None

    run(main())


def test_aio_read_write_lock(ensemble, base):
    async def main():
        async with aclient(ensemble) as a, aclient(ensemble) as b:
            rw = a.RwLock(f"{base}/rw")
            r1, r2 = rw.read_lock(), b.ReadLock(f"{base}/rw")
            assert await r1.acquire(timeout=10) and await r2.acquire(timeout=10)  # readers share
            assert coord.decode_sequencer(r1.sequencer)["mode"] == "shared"
            w = b.WriteLock(f"{base}/rw")
            assert await w.acquire(blocking=False) is False
            with pytest.raises(coord.LockTimeout):
                await w.acquire(timeout=0.3)
            writer = asyncio.ensure_future(w.acquire())
            await asyncio.sleep(0.2)
            assert not writer.done()
            await r1.release()
            await r2.release()
            assert await asyncio.wait_for(writer, 10)
            assert coord.decode_sequencer(w.sequencer)["mode"] == "exclusive"
            assert await rw.read_lock().acquire(blocking=False) is False
            await w.release()
            async with rw.write_lock() as w2:
                assert await b.check_sequencer(w2.sequencer)
            assert not w2.is_acquired

    run(main())


def test_aio_semaphore_bounds_holders(ensemble, base):
    async def main():
        clients = [aclient(ensemble) for _ in range(5)]
        await asyncio.gather(*[c.start() for c in clients])
        inside, peak = 0, 0

        async def hold(c):
            nonlocal inside, peak
            for _ in range(2):
                async with c.Semaphore(f"{base}/sem", max_leases=2) as sem:
                    assert sem.is_acquired and await c.check_sequencer(sem.sequencer)
                    inside += 1
                    peak = max(peak, inside)
                    await asyncio.sleep(0.05)
                    inside -= 1

        await asyncio.gather(*[hold(c) for c in clients])
        assert peak == 2
        s1 = clients[0].Semaphore(f"{base}/s1", max_leases=1)
        assert await s1.acquire()
        with pytest.raises(ValueError):
            await s1.acquire()
        assert await clients[1].Semaphore(f"{base}/s1").acquire(timeout=0.2) is False
        assert await s1.release() and not await s1.release()
        await asyncio.gather(*[c.close() for c in clients])

    run(main())


def test_aio_counter_barrier_double_barrier(ensemble, base):
    async def main():
        async with aclient(ensemble) as a, aclient(ensemble) as b:
            ca, cb = a.Counter(f"{base}/c"), b.Counter(f"{base}/c")
            assert await ca.get() == 0
            await asyncio.gather(*[(ca if i % 2 else cb).add(1) for i in range(20)])
            await b.sync(f"{base}/c")
            assert await cb.get() == 20 and await ca.add(-5) == 15
            with pytest.raises(TypeError, match="delta"):
                await ca.add("1")

            barrier = a.Barrier(f"{base}/b")
            await barrier.create()
            await b.sync(f"{base}/b")
            assert await b.Barrier(f"{base}/b").wait(timeout=0.2) is False
            waiter = asyncio.ensure_future(b.Barrier(f"{base}/b").wait())
            await asyncio.sleep(0.2)
            assert not waiter.done()
            assert await barrier.remove()
            assert await asyncio.wait_for(waiter, 10) is True

            c3 = aclient(ensemble)
            await c3.start()
            order = []

            async def member(c, name):
                async with c.DoubleBarrier(f"{base}/db", 3):
                    order.append(name + "+")
                    await asyncio.sleep(0.05)
                order.append(name + "-")

            await asyncio.gather(member(a, "a"), member(b, "b"), member(c3, "c"))
            # Nobody left before everyone had entered.
            assert all(x.endswith("+") for x in order[:3]) and len(order) == 6
            lone = a.DoubleBarrier(f"{base}/db2", 2)
            assert await lone.enter(timeout=0.3) is False
            await c3.close()

    run(main())


def test_aio_party(ensemble, base):
    async def main():
        async with aclient(ensemble) as a:
            mine = a.Party(f"{base}/party", "me")
            await mine.join()
            assert mine.participating
            other = aclient(ensemble)
            await other.start()
            async with other.Party(f"{base}/party", "them"):
                await a.sync(base)
                assert sorted(await mine.members()) == ["me", "them"]
                assert sorted([m async for m in mine]) == ["me", "them"]
            await a.sync(base)
            assert await mine.members() == ["me"]
            again = other.Party(f"{base}/party", "them-again")
            await again.join()
            await other.stop()  # an ended session leaves by itself
            for _ in range(200):
                if await mine.len() == 1:
                    break
                await asyncio.sleep(0.05)
            assert await mine.members() == ["me"]
            await mine.leave()
            assert await mine.len() == 0

    run(main())


def test_aio_tree_cache(ensemble, base):
    async def main():
        async with aclient(ensemble) as c:
            await c.create(f"{base}/a", b"1")
            await c.create(f"{base}/a/deep", b"d")
            loop_thread = threading.get_ident()
            heard = []
            cache = c.TreeCache(base)
            cache.listen(lambda ev, path: heard.append((ev, path, threading.get_ident())))
            async with cache:
                assert cache.get_data(f"{base}/a")[0] == b"1"
                assert cache.get_data(f"{base}/a/deep")[0] == b"d"
                assert cache.get_children(base) == ["a"] and cache.get_children(f"{base}/nope") is None
                events = cache.events()
                first = asyncio.ensure_future(events.__anext__())
                await asyncio.sleep(0)
                await c.create(f"{base}/b", b"2")
                await c.set(f"{base}/a", b"3")
                await c.delete(f"{base}/b")
                got = [await asyncio.wait_for(first, 10)]
                while len(got) < 3:
                    got.append(await asyncio.wait_for(events.__anext__(), 10))
                assert got == [("NODE_ADDED", f"{base}/b"), ("NODE_UPDATED", f"{base}/a"),
                               ("NODE_REMOVED", f"{base}/b")]
                assert cache.get_data(f"{base}/a")[0] == b"3" and cache.get_data(f"{base}/b") is None
            # close() ended the iterator; listeners ran on the loop's thread.
            assert [x async for x in events] == []
            assert [(e, p) for e, p, _ in heard] == got
            assert {t for _, _, t in heard} == {loop_thread}
            with pytest.raises(ValueError):
                cache.get_data(base)
            single = c.TreeCache(f"{base}/a", recursive=False)
            await single.start()
            assert single.get_data(f"{base}/a")[0] == b"3" and single.get_data(f"{base}/a/deep") is None
            single.close()

    run(main())


def test_aio_two_phase_commit(ensemble, base):
    async def main():
        async with aclient(ensemble) as coordinator, aclient(ensemble) as p0c, \
                aclient(ensemble) as p1c:
            for yes_votes, expected in (((True, True), "commit"), ((True, False), "abort")):
                path = f"{base}/2pc-{expected}"
                tpc = coordinator.TwoPhaseCommit(path)

                async def participant(c, name, yes):
                    p = c.TwoPhaseCommit(path).participant(name)
                    assert await p.wait_begun("t1", 30)
                    await p.vote("t1", yes)
                    return name, await p.decision("t1", timeout=30)

                voters = asyncio.gather(participant(p0c, "p0", yes_votes[0]),
                                        participant(p1c, "p1", yes_votes[1]))
                assert await tpc.decision("t1") is None
                await tpc.begin("t1", ["p0", "p1"])
                assert await tpc.decide("t1", 30) == expected
                assert sorted(await voters) == [("p0", expected), ("p1", expected)]
                assert await tpc.decision("t1") == expected
                assert await tpc.participant("p0").abort_if_undecided("t1") == expected

    run(main())


def test_aio_session_calls(ensemble, base):
    async def main():
        async with aclient(ensemble) as c:
            path, stat = await c.create(f"{base}/e/x", b"v", ephemeral=False, makepath=True,
                                        include_data=True)
            assert path == f"{base}/e/x" and stat.dataLength == 1
            eph = await c.create(f"{base}/e/eph-", ephemeral=True, sequence=True)
            assert await c.get_ephemerals(f"{base}/e") == [eph]
            assert await c.get_all_children_number(base) == 3
            statuses = [await c.server_status(s) for s in ensemble.servers.split(",")]
            assert sorted(s["role"] for s in statuses) == ["follower", "follower", "leader"]
            assert c.connected and c.state == "CONNECTED" and c.last_zxid > 0
        # The blocking client has the same calls.
        with coord.Client(ensemble.servers, ca=ensemble.ca) as s:
            s.sync(base)
            assert s.get_all_children_number(base) == 2  # the ephemeral went with its session
            assert s.get_ephemerals(base) == []

    run(main())


def test_aio_many_sessions_one_loop_no_thread_per_call(ensemble, base):
    async def main():
        before = threading.active_count()
        clients = [aclient(ensemble) for _ in range(4)]
        await asyncio.gather(*[c.start() for c in clients])
        name = uuid.uuid4().hex[:6]
        locks = [c.Lock(f"{base}/{name}") for c in clients]
        held = []

        async def cycle(i):
            for _ in range(3):
                async with locks[i]:
                    held.append(i)
                    assert sum(1 for lk in locks if lk.is_acquired) == 1

        await asyncio.gather(*[cycle(i) for i in range(4)])
        assert sorted(held) == sorted(list(range(4)) * 3)
        # Library threads only (I/O and callback): none per call or per session.
        assert threading.active_count() <= max(before, 1) + 3
        await asyncio.gather(*[c.close() for c in clients])

    run(main())
