"""coord.aio against the real ensemble: coroutines on the running loop, async with, watches
as async iterators, concurrency."""

from __future__ import annotations

import asyncio
import threading

import pytest

import coord
import coord.aio


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


def test_aio_ops(ensemble, base):
    async def main():
        async with coord.aio.Client(ensemble.servers, ca=ensemble.ca) as c:
            p = await c.create(f"{base}/a/b", b"v1", makepath=True)
            data, stat = await c.get(p)
            assert data == b"v1" and isinstance(stat, coord.ZnodeStat)
            assert (await c.set(p, b"v2", version=0)).version == 1
            assert (await c.get(p, linearizable=True))[0] == b"v2"
            assert await c.get_children(f"{base}/a") == ["b"]
            with pytest.raises(coord.NoNodeError):
                await c.get(f"{base}/missing")
            with pytest.raises(coord.BadVersionError):
                await c.delete(p, version=7)
            acls, _ = await c.get_acls(p)
            assert acls == coord.OPEN_ACL_UNSAFE
            await c.sync()
            async with c.transaction() as t:
                t.create(f"{base}/t1")
                t.set_data(p, b"v3")
            assert t.results[0] == f"{base}/t1"
            await c.delete(f"{base}/a", recursive=True)
            assert await c.exists(f"{base}/a") is None
            with pytest.raises(TypeError, match="value"):
                await c.create(f"{base}/x", 1)
        with pytest.raises(coord.ClientClosedError):
            await c.get("/")

    run(main())


def test_aio_watches_as_async_iterators(ensemble, base):
    async def main():
        async with coord.aio.Client(ensemble.servers, ca=ensemble.ca) as c:
            _, _, watch = await c.get_w(base)
            stream = await c.add_watch(base, recursive=True)
            await c.set(base, b"1")
            events = [e async for e in watch]
            assert [e.type for e in events] == ["CHANGED"]
            await c.create(f"{base}/k")
            first = await stream.next(10)
            second = await stream.next(10)
            assert (first.type, second.type) == ("CHANGED", "CREATED")
            assert second.path == f"{base}/k"
            _, kids = await c.get_children_w(base)
            await c.delete(f"{base}/k")
            assert (await kids.next(10)).type == "CHILD"

    run(main())


def test_aio_many_concurrent_tasks_no_thread_per_call(ensemble, base):
    async def main():
        async with coord.aio.Client(ensemble.servers, ca=ensemble.ca) as c:
            before = threading.active_count()
            paths = await asyncio.gather(*[c.create(f"{base}/n{i}", str(i).encode())
                                           for i in range(64)])
            datas = await asyncio.gather(*[c.get(p) for p in paths])
            assert [d for d, _ in datas] == [str(i).encode() for i in range(64)]
            assert threading.active_count() <= before + 1

    run(main())


def test_aio_lock_and_election(ensemble, base):
    async def main():
        async with coord.aio.Client(ensemble.servers, ca=ensemble.ca) as a, \
                coord.aio.Client(ensemble.servers, ca=ensemble.ca) as b:
            order = []

            async def worker(client, name):
                async with client.Lock(f"{base}/lock", name) as lock:
                    assert await client.check_sequencer(lock.sequencer)
                    order.append(name + "+")
                    await asyncio.sleep(0.05)
                    order.append(name + "-")

            await asyncio.gather(worker(a, "a"), worker(b, "b"))
            assert order in (["a+", "a-", "b+", "b-"], ["b+", "b-", "a+", "a-"])
            ea, eb = a.Election(f"{base}/e", "a"), b.Election(f"{base}/e", "b")
            assert await ea.campaign(5)
            assert not await eb.campaign(0.2)
            assert (await eb.leader())[0] == b"a"
            await ea.resign()
            assert await eb.campaign(5)

    run(main())


def test_aio_queue_and_listener(ensemble, base):
    async def main():
        states = []
        c = coord.aio.Client(ensemble.servers, ca=ensemble.ca)
        c.add_listener(states.append)
        await c.start()
        q = c.Queue(f"{base}/aq")
        await q.put(b"a")
        await q.put(b"b")
        assert await q.len() == 2
        assert [await q.get(), await q.get(), await q.get()] == [b"a", b"b", None]
        await c.close()
        for _ in range(200):
            if coord.SessionState.CLOSED in states:
                break
            await asyncio.sleep(0.02)
        assert coord.SessionState.CLOSED in states

    run(main())
