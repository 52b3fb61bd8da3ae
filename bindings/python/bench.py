"""get/set ops/s from Python: 1 thread, 8 threads, and asyncio with 64 concurrent tasks.

    python bindings/python/bench.py                       # Coord (COORD_SERVERS / COORD_CA)
    python bindings/python/bench.py --zk 127.0.0.1:2181   # also kazoo against ZooKeeper

Measures throughput only (no assertions): a benchmark, not a test. kazoo is optional
(`pip install kazoo==2.11`); the ZooKeeper ensemble is started by the caller (see
loadtest/compare.sh for how the project starts one).
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time
import uuid

import coord
import coord.aio


def _threads(make_client, n_threads: int, seconds: float, op: str, path: str) -> float:
    clients = [make_client() for _ in range(n_threads)]
    count = [0] * n_threads
    stop = time.monotonic() + seconds

    def run(i: int) -> None:
        c = clients[i]
        f = c.get if op == "get" else (lambda p: c.set(p, b"x" * 64))
        while time.monotonic() < stop:
            f(path)
            count[i] += 1

    ts = [threading.Thread(target=run, args=(i,)) for i in range(n_threads)]
    start = time.monotonic()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    elapsed = time.monotonic() - start
    for c in clients:
        c.stop()
    return sum(count) / elapsed


async def _aio(seconds: float, op: str, path: str, tasks: int) -> float:
    async with coord.aio.Client() as c:
        count = 0
        stop = time.monotonic() + seconds

        async def run() -> None:
            nonlocal count
            while time.monotonic() < stop:
                if op == "get":
                    await c.get(path)
                else:
                    await c.set(path, b"x" * 64)
                count += 1

        start = time.monotonic()
        await asyncio.gather(*[run() for _ in range(tasks)])
        return count / (time.monotonic() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--zk", help="ZooKeeper connect string: also measure kazoo")
    args = ap.parse_args()
    path = "/bench-" + uuid.uuid4().hex[:8]
    with coord.Client() as c:
        c.create(path, b"x" * 64)

    def coord_client() -> coord.Client:
        cl = coord.Client()
        cl.start()
        return cl

    rows = []
    for op in ("get", "set"):
        rows.append(("coord", op, "1 thread", _threads(coord_client, 1, args.seconds, op, path)))
        rows.append(("coord", op, "8 threads", _threads(coord_client, 8, args.seconds, op, path)))
        rows.append(("coord", op, "asyncio x64", asyncio.run(_aio(args.seconds, op, path, 64))))
    if args.zk:
        from kazoo.client import KazooClient

        def kazoo_client() -> KazooClient:
            k = KazooClient(hosts=args.zk)
            k.start()
            return k

        k = kazoo_client()
        k.ensure_path(path)
        k.set(path, b"x" * 64)
        k.stop()
        for op in ("get", "set"):
            rows.append(("kazoo", op, "1 thread", _threads(kazoo_client, 1, args.seconds, op, path)))
            rows.append(("kazoo", op, "8 threads", _threads(kazoo_client, 8, args.seconds, op, path)))
    with coord.Client() as c:
        c.delete(path)
    print(f"{'client':<7} {'op':<4} {'mode':<12} {'ops/s':>10}")
    for name, op, mode, rate in rows:
        print(f"{name:<7} {op:<4} {mode:<12} {rate:>10.0f}")


if __name__ == "__main__":
    main()
