"""A worker pool on Coord: the workers elect a leader, the leader fills a job queue, every
worker takes jobs from the queue and reports its progress in an ephemeral node (gone if the
worker dies), and the leader prints the pool's progress until every job is done.

Run (after `cargo run -p coord-server --bin coordd -- dev` and its two `export` lines, and
`pip install ./bindings/python`):

    python examples/python/worker_pool.py --workers 4 --jobs 20
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import time
import uuid

import coord

ROOT = "/worker-pool"


def worker(name: str, run: str, jobs: int) -> None:
    """One worker: campaigns, fills the queue if it leads, then processes jobs."""
    with coord.Client() as c:
        base = f"{ROOT}/{run}"
        c.ensure_path(f"{base}/progress")
        election = c.Election(f"{base}/leader", name)
        queue = c.LockingQueue(f"{base}/jobs")
        done = c.Counter(f"{base}/done")
        me = c.create(f"{base}/progress/{name}", b"starting", ephemeral=True)
        if election.campaign(timeout=0.5):
            print(f"{name}: elected leader (term {election.term}); queueing {jobs} jobs", flush=True)
            for i in range(jobs):
                queue.put(f"job-{i}".encode())
            c.create(f"{base}/queued")
        while c.exists(f"{base}/queued") is None:
            time.sleep(0.05)
        finished = 0
        while True:
            job = queue.get(timeout=0.5)
            if job is None:
                break
            c.set(me, f"working on {job.decode()}".encode())
            time.sleep(random.uniform(0.01, 0.05))  # the "work"
            queue.consume()
            finished += 1
            done.add(1)
            c.set(me, f"done {finished}".encode())
        if election.is_leader:
            while done.value < jobs:
                time.sleep(0.1)
            reports = {n: c.get(f"{base}/progress/{n}")[0].decode()
                       for n in c.get_children(f"{base}/progress")}
            print(f"{name}: all {jobs} jobs done; workers report {reports}", flush=True)
            election.resign()
        else:
            # Stay until the leader has read our report.
            while done.value < jobs:
                time.sleep(0.1)
            time.sleep(0.5)
        print(f"{name}: processed {finished} jobs", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--jobs", type=int, default=20)
    args = parser.parse_args()
    if not os.environ.get("COORD_SERVERS"):
        raise SystemExit("set COORD_SERVERS and COORD_CA (what `coordd dev` prints)")
    run = uuid.uuid4().hex[:8]
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=worker, args=(f"worker-{i}", run, args.jobs))
             for i in range(args.workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    if any(p.exitcode != 0 for p in procs):
        raise SystemExit("a worker failed")


if __name__ == "__main__":
    main()
