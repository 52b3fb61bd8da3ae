"""The package's type information (py.typed, the stubs of the extension and of the
exceptions) covers the blocking and asyncio APIs: a program using them passes mypy --strict."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import coord

PROGRAM = textwrap.dedent('''
    import asyncio
    from typing import List, Optional, Tuple

    import coord
    import coord.aio


    def blocking() -> None:
        with coord.Client() as c:
            data, stat = c.get("/x")
            version: int = stat.version
            lock = c.Lock("/l", "me")
            with lock:
                token: Optional[bytes] = lock.sequencer
            with c.Semaphore("/s", max_leases=2), c.WriteLock("/rw"):
                pass
            with c.RwLock("/rw").read_lock():
                pass
            try:
                c.create("/x")
            except coord.NodeExistsError as e:
                code: str = e.code
        with coord.Client(cache=True) as cached:
            cached.get("/x")
            stats: coord.CacheStats = cached.cache_stats()
            hits: int = stats.hits + stats.misses + stats.invalidations
            on: bool = cached.cache


    async def asynchronous() -> None:
        async with coord.aio.Client(cache=True) as c:
            invalidations: int = c.cache_stats().invalidations
            data, stat, watch = await c.get_w("/x")
            async for event in watch:
                kind: str = event.type
            async with c.Lock("/l", "me") as lock:
                token: Optional[bytes] = lock.sequencer
            async with c.Semaphore("/s", max_leases=2) as sem:
                ok: bool = sem.is_acquired
            async with c.ReadLock("/rw"), c.RwLock("/rw2").write_lock():
                pass
            item: Optional[bytes] = await c.Queue("/q").get(timeout=1.0)
            lq = c.LockingQueue("/lq")
            if await lq.get(timeout=1.0) is not None:
                await lq.consume()
            total: int = await c.Counter("/c").add(1)
            await c.Barrier("/b").wait(timeout=1.0)
            async with c.DoubleBarrier("/db", 2):
                pass
            election = c.Election("/e", "me")
            leader: Optional[Tuple[bytes, int, int, bytes]] = await election.leader()
            members: List[str] = await c.Party("/p", "me").members()
            async with c.TreeCache("/t") as cache:
                async for change, path in cache.events():
                    found = cache.get_data(path)
            tpc = c.TwoPhaseCommit("/2pc")
            decision: Optional[str] = await tpc.decision("t1")
            await tpc.participant("p0").vote("t1", True)
            async with c.transaction() as t:
                t.create("/y")
            status = await c.server_status("127.0.0.1:7181")
            try:
                await c.delete("/x")
            except coord.NoNodeError:
                pass


    asyncio.run(asynchronous())
''')


def test_api_type_checks_strictly(tmp_path):
    program = tmp_path / "user.py"
    program.write_text(PROGRAM)
    package_dir = Path(coord.__file__).resolve().parent
    assert (package_dir / "py.typed").exists()
    assert (package_dir / "_native.pyi").exists() and (package_dir / "exceptions.pyi").exists()
    out = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-incremental",
                          "--cache-dir", str(tmp_path / "cache"), str(program)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
