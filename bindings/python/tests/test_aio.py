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


def test_exit_with_calls_and_callbacks_in_flight(ensemble, base):
    # A process that ends while library threads still deliver results, watch events,
    # session events and log records must exit cleanly (CPython ends a thread that takes the
    # GIL during finalization: the library's threads stop entering Python first).
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(f"""
        import asyncio, logging, coord, coord.aio
        logging.basicConfig(level=logging.DEBUG)
        coord.refresh_log_level()

        async def main():
            c = coord.aio.Client({ensemble.servers!r}, ca={ensemble.ca!r})
            c.add_listener(lambda s: None)
            await c.start()
            await c.add_watch("{base}", recursive=True)
            for i in range(50):
                asyncio.ensure_future(c.get("{base}"))
                asyncio.ensure_future(c.create("{base}/x-", ephemeral=True, sequence=True))
            await asyncio.sleep(0.01)
            # No close: the session and its tasks are still running at exit.

        asyncio.run(main())
        s = coord.Client({ensemble.servers!r}, ca={ensemble.ca!r})
        s.start()
        s.get("{base}", watch=lambda e: None)
        s.create("{base}/y-", ephemeral=True, sequence=True)
        print("exiting", flush=True)
    """)
    for _ in range(5):
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                             timeout=60)
        assert out.returncode == 0, out.stderr[-2000:]
        assert "exiting" in out.stdout and "Fatal Python error" not in out.stderr


def test_aio_acls_auth_and_watch_removal(ensemble, base):
    async def main():
        async with coord.aio.Client(ensemble.servers, ca=ensemble.ca) as c, \
                coord.aio.Client(ensemble.servers, ca=ensemble.ca,
                                 auth=[("digest", "bob:secret")]) as bob:
            assert await c.ensure_path(f"{base}/deep/er")
            assert await c.exists(f"{base}/deep/er") is not None
            acl = coord.make_digest_acl("bob", "secret", all=True)
            p = await c.create(f"{base}/secret", b"s", acl=[acl])
            with pytest.raises(coord.NoAuthError):
                await c.get(p)
            await bob.sync(p)
            assert (await bob.get(p))[0] == b"s"
            assert (await bob.set_acls(p, coord.OPEN_ACL_UNSAFE)).aversion == 1
            await c.sync(p)  # bob's session may be on another server
            assert (await c.get(p))[0] == b"s"
            await c.add_auth("digest", "bob:secret")
            p2 = await bob.create(f"{base}/secret2", b"t", acl=[acl])
            await c.sync(p2)
            assert (await c.get(p2))[0] == b"t"  # c now has bob's identity

            stat, created = await c.exists_w(f"{base}/new")
            assert stat is None
            await c.create(f"{base}/new")
            assert (await created.next(10)).type == "CREATED"
            assert [e async for e in created] == []  # one-shot: done

            stream = await c.add_watch(f"{base}/new")
            await c.set(f"{base}/new", b"1")
            assert (await stream.next(10)).type == "CHANGED"
            await c.remove_watches(f"{base}/new", "any")
            # Removed: one REMOVED event, then the stream ends instead of waiting forever.
            assert [e.type async for e in stream] == ["REMOVED"]

    run(main())
