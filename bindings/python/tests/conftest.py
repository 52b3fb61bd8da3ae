"""A real 3-server `coordd dev` ensemble on free loopback ports for the whole session."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
COORDD = ROOT / "target" / "debug" / "coordd"


def _free_base(n: int) -> int:
    """A port p with p..p+n-1 (client, UDP) and p+100..p+100+n-1 (peers) free."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + 100 + n > 65535:
            continue
        ok = True
        for p in list(range(base, base + n)) + list(range(base + 100, base + 100 + n)):
            for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                try:
                    with socket.socket(socket.AF_INET, kind) as t:
                        t.bind(("127.0.0.1", p))
                except OSError:
                    ok = False
        if ok:
            return base
    raise RuntimeError("no free port range")


class Ensemble:
    """The running ensemble: ``servers``, ``ca``, ``dir``; ``pid(i)`` of server i (1-based)."""

    def __init__(self) -> None:
        if not COORDD.exists():
            env = {**os.environ, "CARGO_TARGET_DIR": str(ROOT / "target")}
            subprocess.run(["cargo", "build", "-p", "coord-server", "--bin", "coordd"],
                           cwd=ROOT, check=True, env=env)
        self.dir = Path(tempfile.mkdtemp(prefix="coord-py-"))
        self.base = _free_base(3)
        self.proc = subprocess.Popen(
            [str(COORDD), "dev", "--nodes", "3", "--dir", str(self.dir), "--port", str(self.base)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        env = {}
        assert self.proc.stdout is not None
        while len(env) < 2:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"coordd dev exited: {self.proc.wait()}")
            if line.startswith("export "):
                k, v = line[len("export "):].strip().split("=", 1)
                env[k] = v.strip("'\"")
        self.servers = env["COORD_SERVERS"]
        self.ca = env["COORD_CA"]
        # Keep draining its output so it never blocks on a full pipe.
        import threading
        threading.Thread(target=lambda: [None for _ in self.proc.stdout], daemon=True).start()

    def pid(self, i: int) -> int:
        return int((self.dir / f"n{i}" / "pid").read_text().strip())

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def ensemble():
    e = Ensemble()
    os.environ["COORD_SERVERS"] = e.servers
    os.environ["COORD_CA"] = e.ca
    import coord

    deadline = time.monotonic() + 60
    while True:
        try:
            with coord.Client(e.servers, ca=e.ca, timeout=5) as c:
                c.exists("/")
            break
        except coord.CoordError:
            if time.monotonic() > deadline:
                e.stop()
                raise
            time.sleep(0.3)
    yield e
    e.stop()


@pytest.fixture
def client(ensemble):
    import coord

    c = coord.Client(ensemble.servers, ca=ensemble.ca)
    c.start()
    yield c
    c.close()


@pytest.fixture
def base(client):
    """A fresh node for one test."""
    path = "/t-" + uuid.uuid4().hex[:12]
    client.create(path)
    return path
