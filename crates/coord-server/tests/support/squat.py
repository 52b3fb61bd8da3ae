"""A stranger on the network: holds COUNT idle TCP connections to HOST:PORT, sends nothing,
and opens a new one 3 s after the server closes one, until it reads a line on stdin.
Prints "ready MADE" once COUNT connections were made, then "done MADE OPEN" at the end.
Used by crates/coord-server/tests/liveness.rs (a process is limited in open files; one
squatter per port keeps each under the limit)."""

import asyncio
import resource
import sys


async def squat(host, port, stats, stop):
    while not stop.is_set():
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port), timeout=5
            )
        except (OSError, asyncio.TimeoutError):
            await asyncio.sleep(1)
            continue
        stats["made"] += 1
        stats["open"] += 1
        try:
            while not stop.is_set():
                try:
                    data = await asyncio.wait_for(reader.read(16), timeout=0.5)
                except asyncio.TimeoutError:
                    continue
                if not data:
                    break
        except OSError:
            pass
        stats["open"] -= 1
        writer.close()
        try:
            await asyncio.wait_for(asyncio.shield(stop.wait()), timeout=3)
        except asyncio.TimeoutError:
            pass


async def main():
    host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < count + 100:
        print(f"error: open-file limit {hard} is below {count + 100}", flush=True)
        sys.exit(2)
    stats = {"made": 0, "open": 0}
    stop = asyncio.Event()
    tasks = [asyncio.create_task(squat(host, port, stats, stop)) for _ in range(count)]
    while stats["made"] < count:
        await asyncio.sleep(0.05)
    print(f"ready {stats['made']}", flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.readline)
    opened = stats["open"]
    stop.set()
    await asyncio.gather(*tasks)
    print(f"done {stats['made']} {opened}", flush=True)


asyncio.run(main())
