"""get/set ops/s from Python (1 thread, 8 threads, 64 concurrent async calls) and lock
acquire/release cycles/s under contention, for Coord and, optionally, kazoo on ZooKeeper.

    python bindings/python/bench.py                       # Coord (COORD_SERVERS / COORD_CA)
    python bindings/python/bench.py --zk 127.0.0.1:2181   # also kazoo against ZooKeeper
    python bindings/python/bench.py --only kazoo --zk 127.0.0.1:2181 --json out.jsonl

Measures throughput only (no assertions): a benchmark, not a test. kazoo is optional
(`pip install kazoo==2.11`); the ZooKeeper ensemble is started by the caller
(bindings/python/compare.sh starts both systems, one at a time, and prints the ratios).

What each row does, the same on both sides:
  get/set "1 thread", "8 threads": one session per thread, each call blocking.
  get/set "async x64": one session, 64 calls in flight at all times. Coord: 64 asyncio tasks
      awaiting coord.aio calls. kazoo has no asyncio API: its own async API (get_async /
      set_async) with a window of 64 outstanding calls, refilled from the completion callbacks.
  lock "N sessions": N processes (one session each, so neither client's threads share a GIL
      with another contender) loop acquire + release on one lock for the given time;
      coord.Lock vs kazoo's Lock. Cycles/s is the total over all processes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import sys
import threading
import time
import uuid
from typing import Any, Callable, List, Tuple

VALUE = b"x" * 64


# -- get/set ---------------------------------------------------------------------------


def _threads(make_client: Callable[[], Any], n_threads: int, seconds: float, op: str, path: str) -> float:
    clients = [make_client() for _ in range(n_threads)]
    count = [0] * n_threads
    start_gate = threading.Barrier(n_threads + 1)
    stop = [0.0]

    def run(i: int) -> None:
        c = clients[i]
        f = c.get if op == "get" else (lambda p: c.set(p, VALUE))
        start_gate.wait()
        n = 0
        while time.monotonic() < stop[0]:
            f(path)
            n += 1
        count[i] = n

    ts = [threading.Thread(target=run, args=(i,)) for i in range(n_threads)]
    for t in ts:
        t.start()
    start = time.monotonic()
    stop[0] = start + seconds
    start_gate.wait()
    for t in ts:
        t.join()
    elapsed = time.monotonic() - start
    for c in clients:
        c.stop()
    return sum(count) / elapsed


async def _coord_aio(seconds: float, op: str, path: str, tasks: int) -> float:
    import coord.aio

    async with coord.aio.Client() as c:
        count = 0
        stop = time.monotonic() + seconds

        async def run() -> None:
            nonlocal count
            while time.monotonic() < stop:
                if op == "get":
                    await c.get(path)
                else:
                    await c.set(path, VALUE)
                count += 1

        start = time.monotonic()
        await asyncio.gather(*[run() for _ in range(tasks)])
        return count / (time.monotonic() - start)


def _kazoo_async(make_client: Callable[[], Any], seconds: float, op: str, path: str, window: int) -> float:
    """kazoo's async API with `window` calls outstanding: each completion frees a slot."""
    k = make_client()
    slots = threading.Semaphore(window)
    done = [0]
    lock = threading.Lock()

    def finished(_: Any) -> None:
        with lock:
            done[0] += 1
        slots.release()

    start = time.monotonic()
    stop = start + seconds
    while time.monotonic() < stop:
        slots.acquire()
        r = k.get_async(path) if op == "get" else k.set_async(path, VALUE)
        r.rawlink(finished)
    for _ in range(window):  # wait for the calls still in flight
        slots.acquire()
    elapsed = time.monotonic() - start
    k.stop()
    return done[0] / elapsed


# -- lock ------------------------------------------------------------------------------


def _lock_worker(system: str, zk: str, path: str, ready: Any, go: Any, seconds: float, out: Any) -> None:
    if system == "coord":
        import coord

        client: Any = coord.Client()
        client.start()
        lock = client.Lock(path, "bench")
    else:
        from kazoo.client import KazooClient

        client = KazooClient(hosts=zk)
        client.start()
        lock = client.Lock(path, "bench")
    ready.put(1)
    go.wait()
    n = 0
    stop = time.monotonic() + seconds
    while time.monotonic() < stop:
        lock.acquire()
        lock.release()
        n += 1
    client.stop()
    out.put(n)


def _lock_bench(system: str, zk: str, sessions: int, seconds: float) -> float:
    ctx = mp.get_context("spawn")
    ready, out, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    path = f"/bench-lock-{uuid.uuid4().hex[:8]}"
    procs = [ctx.Process(target=_lock_worker, args=(system, zk, path, ready, go, seconds, out))
             for _ in range(sessions)]
    for p in procs:
        p.start()
    for _ in procs:
        ready.get(timeout=120)
    go.set()
    total = sum(out.get(timeout=seconds + 120) for _ in procs)
    for p in procs:
        p.join(30)
        if p.exitcode != 0:
            raise SystemExit(f"a {system} lock worker failed (exit {p.exitcode})")
    return total / seconds


# -- main ------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="per get/set row")
    ap.add_argument("--zk", help="ZooKeeper connect string: also measure kazoo")
    ap.add_argument("--only", choices=("coord", "kazoo"), help="measure one system")
    ap.add_argument("--lock-sessions", type=int, default=0,
                    help="also run the lock benchmark with this many contending sessions")
    ap.add_argument("--lock-seconds", type=float, default=5.0)
    ap.add_argument("--json", help="append one JSON line per row to this file")
    args = ap.parse_args()
    systems = [args.only] if args.only else (["coord", "kazoo"] if args.zk else ["coord"])
    if "kazoo" in systems and not args.zk:
        ap.error("kazoo needs --zk")
    rows: List[Tuple[str, str, str, float]] = []
    path = "/bench-" + uuid.uuid4().hex[:8]

    if "coord" in systems:
        import coord

        with coord.Client() as c:
            c.create(path, VALUE)

        def coord_client() -> Any:
            cl = coord.Client()
            cl.start()
            return cl

        for op in ("get", "set"):
            rows.append(("coord", op, "1 thread", _threads(coord_client, 1, args.seconds, op, path)))
            rows.append(("coord", op, "8 threads", _threads(coord_client, 8, args.seconds, op, path)))
            rows.append(("coord", op, "async x64", asyncio.run(_coord_aio(args.seconds, op, path, 64))))
        if args.lock_sessions:
            rows.append(("coord", "lock", f"{args.lock_sessions} sessions",
                         _lock_bench("coord", "", args.lock_sessions, args.lock_seconds)))
        with coord.Client() as c:
            c.delete(path)

    if "kazoo" in systems:
        from kazoo.client import KazooClient

        def kazoo_client() -> Any:
            k = KazooClient(hosts=args.zk)
            k.start()
            return k

        k = kazoo_client()
        k.ensure_path(path)
        k.set(path, VALUE)
        k.stop()
        for op in ("get", "set"):
            rows.append(("kazoo", op, "1 thread", _threads(kazoo_client, 1, args.seconds, op, path)))
            rows.append(("kazoo", op, "8 threads", _threads(kazoo_client, 8, args.seconds, op, path)))
            rows.append(("kazoo", op, "async x64", _kazoo_async(kazoo_client, args.seconds, op, path, 64)))
        if args.lock_sessions:
            rows.append(("kazoo", "lock", f"{args.lock_sessions} sessions",
                         _lock_bench("kazoo", args.zk, args.lock_sessions, args.lock_seconds)))
        k = kazoo_client()
        k.delete(path)
        k.stop()

    print(f"{'client':<7} {'op':<4} {'mode':<12} {'ops/s':>10}")
    for name, op, mode, rate in rows:
        print(f"{name:<7} {op:<4} {mode:<12} {rate:>10.0f}")
    if args.json:
        with open(args.json, "a") as f:
            for name, op, mode, rate in rows:
                f.write(json.dumps({"system": name, "op": op, "mode": mode, "ops_per_sec": rate,
                                    "seconds": args.lock_seconds if op == "lock" else args.seconds,
                                    "python": sys.version.split()[0]}) + "\n")


if __name__ == "__main__":
    main()
