"""Client certificates from Python against a real server that requires them: a certificate
made with ``coordd cert client`` gives the session its ``x509`` identity, ACLs on it hold,
and a client without one cannot connect."""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

import coord
from conftest import COORDD


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def secured():
    d = Path(tempfile.mkdtemp(prefix="coord-py-tls-"))
    port = _free_port()
    cfg = d / "coord.toml"
    cfg.write_text(f'id = 1\nclient_addr = "127.0.0.1:{port}"\ndata_dir = "{d / "data"}"\n'
                   '[tls]\nclient_auth = "required"\n')
    log = open(d / "coordd.log", "w")
    proc = subprocess.Popen([str(COORDD), "run", "--config", str(cfg)],
                            stdout=subprocess.DEVNULL, stderr=log)
    ca_dir = d / "data" / "tls"
    deadline = time.monotonic() + 30
    while not (ca_dir / "ca.key").exists():
        assert time.monotonic() < deadline, "coordd made no CA"
        assert proc.poll() is None, (d / "coordd.log").read_text()
        time.sleep(0.05)
    certs = {}
    for name in ("alice", "bob"):
        out = subprocess.run([str(COORDD), "cert", "client", "--ca", str(ca_dir), "--name", name,
                              "--out", str(d / "clients")], check=True, capture_output=True,
                             text=True).stdout
        env = dict(line[len("export "):].split("=", 1) for line in out.splitlines()
                   if line.startswith("export "))
        certs[name] = (env["COORD_CERT"], env["COORD_KEY"])
    yield f"127.0.0.1:{port}", str(ca_dir / "ca.pem"), certs
    proc.kill()
    proc.wait()


def _connect(servers, ca, cert=None, key=None):
    deadline = time.monotonic() + 30
    while True:
        try:
            c = coord.Client(servers, ca=ca, cert=cert, key=key, timeout=3)
            c.start()
            return c
        except coord.CoordError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_a_client_certificate_is_the_sessions_x509_identity(secured):
    servers, ca, certs = secured
    alice = _connect(servers, ca, *certs["alice"])
    bob = _connect(servers, ca, *certs["bob"])
    try:
        only_alice = [coord.ACL(coord.Permissions.ALL, coord.Id("x509", "CN=alice"))]
        alice.create("/alice", b"a", acl=only_alice)
        assert alice.get("/alice")[0] == b"a"
        with pytest.raises(coord.NoAuthError):
            bob.get("/alice")
        with pytest.raises(coord.NoAuthError):
            bob.set("/alice", b"b")
        alice.set("/alice", b"c")
        assert alice.get_acls("/alice")[0] == only_alice
    finally:
        alice.close()
        bob.close()


def test_without_a_certificate_there_is_no_session(secured):
    servers, ca, _ = secured
    c = coord.Client(servers, ca=ca, timeout=2)
    with pytest.raises(coord.ConnectionLossError):
        c.start()


def test_cert_without_key_is_refused(secured):
    servers, ca, certs = secured
    with pytest.raises(coord.CoordError, match="cert= and key="):
        coord.Client(servers, ca=ca, cert=certs["alice"][0])
