"""A worker pool on Coord: the workers elect a leader (an Election), the leader fills a job
queue (a LockingQueue: a job is removed only once processed, and comes back if its worker
dies), every worker takes jobs from the queue and reports its progress in an ephemeral node
(gone if the worker dies), and the leader prints the pool's progress until every job is done.

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


def reports(c: coord.Client, base: str) -> dict:
    """What each live worker's ephemeral progress node says now."""
    out = {}
    for n in c.get_children(f"{base}/progress"):
        try:
            out[n] = c.get(f"{base}/progress/{n}")[0].decode()
        except coord.NoNodeError:  # that worker just ended
            pass
    return out


def worker(name: str, run: str, workers: int, jobs: int) -> None:
    """One worker: campaigns, fills the queue if it leads, then processes jobs."""
    with coord.Client() as c:
        base = f"{ROOT}/{run}"
        c.ensure_path(f"{base}/progress")
        election = c.Election(f"{base}/leader", name)
        queue = c.LockingQueue(f"{base}/jobs")
        done = c.Counter(f"{base}/done")
        # Campaign before reporting in: the leader waits for every report, so no worker can
        # still be campaigning once it has finished and resigned.
        leads = election.campaign(timeout=0.5)
        me = c.create(f"{base}/progress/{name}", b"starting", ephemeral=True)
        if leads:
            print(f"{name}: elected leader (term {election.term}); queueing {jobs} jobs", flush=True)
            deadline = time.monotonic() + 60
            while len(c.get_children(f"{base}/progress")) < workers and time.monotonic() < deadline:
                time.sleep(0.05)
            for i in range(jobs):
                queue.put(f"job-{i}".encode())
            c.create(f"{base}/queued")
        while c.exists(f"{base}/queued") is None:
            time.sleep(0.05)
        finished = 0
        last_report = time.monotonic()
        while True:
            job = queue.get(timeout=0.5)
            if job is None:
                if done.value >= jobs:
                    break
                # Jobs are still claimed by others; one whose worker died comes back to the
                # queue when that worker's session expires.
                continue
            c.set(me, f"working on {job.decode()}".encode())
            time.sleep(random.uniform(0.01, 0.05))  # the "work"
            queue.consume()  # only now is the job gone: a worker that died would leave it
            finished += 1
            done.add(1)
            c.set(me, f"done {finished}".encode())
            if leads and time.monotonic() - last_report > 0.5:
                last_report = time.monotonic()
                print(f"{name}: progress {done.value}/{jobs}: {reports(c, base)}", flush=True)
        if leads:
            while done.value < jobs:
                time.sleep(0.1)
            print(f"{name}: all {jobs} jobs done; workers report {reports(c, base)}", flush=True)
            c.create(f"{base}/finished")
            election.resign()
        else:
            # Stay (and keep the report node) until the leader has read every report.
            deadline = time.monotonic() + 60
            while c.exists(f"{base}/finished") is None and time.monotonic() < deadline:
                time.sleep(0.05)
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
    procs = [ctx.Process(target=worker, args=(f"worker-{i}", run, args.workers, args.jobs))
             for i in range(args.workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    if any(p.exitcode != 0 for p in procs):
        raise SystemExit("a worker failed")


if __name__ == "__main__":
    main()
