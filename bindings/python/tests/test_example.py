"""The worker-pool example of examples/python runs to completion against the ensemble."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import ROOT


def test_worker_pool_example(ensemble):
    env = {**os.environ, "COORD_SERVERS": ensemble.servers, "COORD_CA": ensemble.ca}
    out = subprocess.run([sys.executable, str(ROOT / "examples/python/worker_pool.py"),
                          "--workers", "3", "--jobs", "12"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("elected leader") == 1, out.stdout
    assert "all 12 jobs done" in out.stdout
    processed = [int(line.split("processed ")[1].split()[0])
                 for line in out.stdout.splitlines() if "processed" in line]
    assert len(processed) == 3 and sum(processed) == 12, out.stdout
