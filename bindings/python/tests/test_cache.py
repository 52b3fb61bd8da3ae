"""The client cache (``Client(cache=True)``) against the real ensemble: a cached read never
misses a write another session saw acknowledged, plain reads are served from the cache
(hits) and writes to cached nodes invalidate it, linearizable and watched reads bypass it;
blocking and asyncio."""

from __future__ import annotations

import asyncio
import time

import pytest

import coord
import coord.aio


@pytest.fixture
def cached(ensemble):
    c = coord.Client(ensemble.servers, ca=ensemble.ca, cache=True)
    c.start()
    yield c
    c.close()


def test_cache_flag_and_stats_shape(client, cached):
    assert cached.cache is True and client.cache is False
    assert cached._n.cached is True and client._n.cached is False
    s = cached.cache_stats()
    assert isinstance(s, coord.CacheStats)
    assert s == (s.hits, s.misses, s.invalidations)
    assert all(isinstance(v, int) and v >= 0 for v in s)
    # A session without the cache counts nothing, however much it reads.
    client.exists("/")
    client.get("/")
    client.get_children("/")
    assert client.cache_stats() == coord.CacheStats(0, 0, 0)


def test_cached_reads_see_every_acknowledged_write(client, cached, base):
    """``client`` (another session, maybe on another server) writes; right after each write
    returns, every plain read of the cached session must show it, though the same reads
    had just been served (and cached) before the write."""
    node = f"{base}/n"
    client.create(node, b"v-1")
    before = cached.cache_stats()
    iterations = 60
    children = set()
    for i in range(iterations):
        child = f"c{i:03d}"
        # Warm the cache: each read twice (the second is a hit while the lease lasts),
        # including the absence of the child about to be created.
        for _ in range(2):
            assert cached.get(node)[0] == f"v{i - 1}".encode()  # b"v-1" at first
            assert cached.exists(f"{base}/{child}") is None
            assert sorted(cached.get_children(base)) == sorted(children | {"n"})
        # Another session writes: data, a new child, and (every third round) a delete.
        stat = client.set(node, f"v{i}".encode())
        client.create(f"{base}/{child}", str(i).encode())
        children.add(child)
        if i % 3 == 2:
            gone = sorted(children)[0]
            client.delete(f"{base}/{gone}")
            children.discard(gone)
        # Every read right after the writes returned shows them.
        data, got = cached.get(node)
        assert data == f"v{i}".encode(), f"round {i}: stale data {data!r}"
        assert got.version == stat.version and got.mzxid == stat.mzxid
        e = cached.exists(node)
        assert e is not None and e.version == stat.version, f"round {i}: stale exists"
        assert cached.exists(f"{base}/{child}") is not None, f"round {i}: create not seen"
        names, parent = cached.get_children(base, include_data=True)
        assert sorted(names) == sorted(children | {"n"}), f"round {i}: stale children {names}"
        assert parent.numChildren == len(children) + 1
        if i % 3 == 2:
            assert cached.exists(f"{base}/{gone}") is None, f"round {i}: delete not seen"
    after = cached.cache_stats()
    # The test exercised the cache: reads were served from it and writes invalidated it.
    assert after.hits - before.hits > 0, (before, after)
    assert after.invalidations - before.invalidations > 0, (before, after)
    assert after.misses - before.misses > 0, (before, after)


def test_cache_stats_hits_and_invalidations(client, cached, base):
    node = f"{base}/s"
    client.create(node, b"0")
    s0 = cached.cache_stats()
    assert cached.get(node)[0] == b"0"  # a miss, then cached for the lease
    s1 = cached.cache_stats()
    assert s1.misses == s0.misses + 1 and s1.hits == s0.hits
    for _ in range(20):
        assert cached.get(node)[0] == b"0"
    s2 = cached.cache_stats()
    assert s2.hits - s1.hits > 0, (s1, s2)
    assert (s2.hits - s1.hits) + (s2.misses - s1.misses) == 20
    # A write to the cached node invalidates it before it is applied: counted by the time
    # the write returns. Retried in case a slow machine let the lease run out first.
    for attempt in range(10):
        cached.get(node)
        before = cached.cache_stats().invalidations
        client.set(node, str(attempt + 1).encode())
        if cached.cache_stats().invalidations > before:
            break
    else:
        pytest.fail(f"no invalidation counted: {cached.cache_stats()}")
    assert cached.get(node)[0] == str(attempt + 1).encode()


def test_linearizable_and_watched_reads_bypass_the_cache(client, cached, base):
    node = f"{base}/l"
    client.create(node, b"a")
    cached.get(node)
    s = cached.cache_stats()
    for _ in range(5):
        assert cached.get(node, linearizable=True)[0] == b"a"
        assert cached.exists(node, linearizable=True) is not None
        assert cached.get_children(base, linearizable=True) == ["l"]
    assert cached.cache_stats() == s
    fired = []
    data, _ = cached.get(node, watch=fired.append)
    assert data == b"a"
    assert cached.cache_stats() == s
    client.set(node, b"b")
    deadline = time.monotonic() + 10
    while not fired and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [e.type for e in fired] == ["CHANGED"]
    assert cached.get(node)[0] == b"b"


def test_aio_cached_reads(ensemble, base):
    async def main():
        async with coord.aio.Client(ensemble.servers, ca=ensemble.ca, cache=True) as c, \
                coord.aio.Client(ensemble.servers, ca=ensemble.ca) as w:
            assert c.cache and not w.cache
            node = f"{base}/a"
            await w.create(node, b"0")
            start = c.cache_stats()
            for i in range(1, 6):
                for _ in range(3):
                    assert (await c.get(node))[0] == str(i - 1).encode()
                    assert await c.exists(f"{base}/k{i}") is None
                    assert len(await c.get_children(base)) == i
                await w.set(node, str(i).encode())
                await w.create(f"{base}/k{i}")
                assert (await c.get(node))[0] == str(i).encode()
                assert (await c.exists(node)).version == i
                assert await c.exists(f"{base}/k{i}") is not None
                assert f"k{i}" in await c.get_children(base)
                assert (await c.get(node, linearizable=True))[0] == str(i).encode()
            end = c.cache_stats()
            assert isinstance(end, coord.CacheStats)
            assert end.hits > start.hits and end.invalidations > start.invalidations
            assert w.cache_stats() == (0, 0, 0)

    asyncio.run(asyncio.wait_for(main(), 60))
