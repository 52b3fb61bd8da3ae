"""The blocking client against a real ensemble: every call, its errors, its arguments."""

from __future__ import annotations

import builtins
import logging
import threading
import time

import pytest

import coord
from coord import exceptions as ex


def wait_for(pred, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return pred()


def test_create_get_set_delete(client, base):
    p = client.create(f"{base}/a", b"hello")
    assert p == f"{base}/a"
    data, stat = client.get(p)
    assert data == b"hello"
    assert isinstance(stat, coord.ZnodeStat)
    assert stat.version == 0 and stat.dataLength == 5 and stat.data_length == 5
    assert stat.numChildren == 0 and stat.children_count == 0
    assert stat.owner_session_id is None
    assert stat.created > 1e9 and stat.last_modified >= stat.created
    s2 = client.set(p, b"world", version=0)
    assert s2.version == 1 and s2.mzxid > stat.mzxid
    with pytest.raises(coord.BadVersionError):
        client.set(p, b"x", version=0)
    with pytest.raises(coord.NodeExistsError):
        client.create(p)
    client.delete(p, version=1)
    assert client.exists(p) is None
    with pytest.raises(coord.NoNodeError) as e:
        client.get(p)
    assert e.value.code == "NoNode" and e.value.zk_code == -101
    assert isinstance(e.value, coord.CoordError)


def test_makepath_ensure_path_recursive_delete(client, base):
    deep = f"{base}/x/y/z"
    with pytest.raises(coord.NoNodeError):
        client.create(deep, b"1")
    assert client.create(deep, b"1", makepath=True) == deep
    assert client.ensure_path(f"{base}/x/q/r")
    assert client.exists(f"{base}/x/q/r") is not None
    assert sorted(client.get_children(f"{base}/x")) == ["q", "y"]
    with pytest.raises(coord.NotEmptyError):
        client.delete(f"{base}/x")
    client.delete(f"{base}/x", recursive=True)
    assert client.exists(f"{base}/x") is None


def test_sequence_and_ephemeral(client, base, ensemble):
    a = client.create(f"{base}/job-", sequence=True)
    b = client.create(f"{base}/job-", sequence=True)
    assert a < b and a.startswith(f"{base}/job-") and len(a) == len(f"{base}/job-") + 10
    other = coord.Client(ensemble.servers, ca=ensemble.ca)
    other.start()
    e = other.create(f"{base}/eph", ephemeral=True)
    stat = client.exists(e)
    assert stat.ephemeralOwner == other.session_id and stat.owner_session_id == other.session_id
    assert other.get_ephemerals(base) == [e]
    other.stop()
    assert wait_for(lambda: client.exists(e) is None)


def test_children_include_data(client, base):
    for n in ("b", "a", "c"):
        client.create(f"{base}/{n}")
    assert client.get_children(base) == ["a", "b", "c"]
    names, stat = client.get_children(base, include_data=True)
    assert names == ["a", "b", "c"] and stat.numChildren == 3


def test_acls_and_auth(client, base, ensemble):
    acl = coord.make_digest_acl("bob", "secret", all=True)
    p = client.create(f"{base}/secret", b"s", acl=[acl])
    with pytest.raises(coord.NoAuthError):
        client.get(p)
    with coord.Client(ensemble.servers, ca=ensemble.ca, auth=[("digest", "bob:secret")]) as bob:
        acls, stat = bob.get_acls(p)
        assert acls == [acl] and acls[0].id.scheme == "digest"
        assert bob.get(p)[0] == b"s"
        bob.set_acls(p, coord.OPEN_ACL_UNSAFE)
    assert client.get(p)[0] == b"s"
    assert client.get_acls(p)[1].aversion == 1
    client.add_auth("digest", "bob:secret")


def test_sync_and_linearizable_read(client, base, ensemble):
    with coord.Client(ensemble.servers, ca=ensemble.ca) as other:
        for i in range(5):
            other.set(base, str(i).encode())
            assert client.get(base, linearizable=True)[0] == str(i).encode()
            assert client.exists(base, linearizable=True).version == i + 1
    client.sync(base)
    assert client.get(base)[0] == b"4"


def test_transaction(client, base):
    with client.transaction() as t:
        t.create(f"{base}/a", b"1")
        t.set_data(base, b"x")
        t.check(f"{base}/a", 0)
    assert t.results[0] == f"{base}/a"
    assert isinstance(t.results[1], coord.ZnodeStat)
    assert t.results[2] is True
    t = client.transaction()
    t.create(f"{base}/b")
    t.check(f"{base}/a", 5)
    t.delete(f"{base}/a")
    results = t.commit()
    assert isinstance(results[0], coord.RolledBackError)
    assert isinstance(results[1], coord.BadVersionError)
    assert isinstance(results[2], coord.RolledBackError)
    assert client.exists(f"{base}/b") is None and client.exists(f"{base}/a") is not None
    with pytest.raises(ValueError):
        t.commit()


def test_watches_run_on_one_thread(client, base):
    events, threads = [], set()
    done = threading.Event()

    def w(event):
        threads.add(threading.current_thread().ident)
        events.append(event)
        done.set()

    client.get(base, watch=w)
    client.set(base, b"1")
    assert done.wait(10)
    assert events[0].type == coord.EventType.CHANGED and events[0].path == base
    done.clear()
    client.exists(f"{base}/new", watch=w)
    client.create(f"{base}/new")
    assert done.wait(10) and events[1].type == coord.EventType.CREATED
    done.clear()
    client.get_children(base, watch=w)
    client.create(f"{base}/new2")
    assert done.wait(10) and events[2].type == coord.EventType.CHILD
    assert len(threads) == 1 and threading.get_ident() not in threads


def test_persistent_watch(client, base):
    seen = []
    client.add_watch(base, lambda e: seen.append((e.type, e.path)), recursive=True)
    client.create(f"{base}/a")
    client.set(f"{base}/a", b"1")
    client.delete(f"{base}/a")
    assert wait_for(lambda: len(seen) >= 3)
    assert seen[:3] == [("CREATED", f"{base}/a"), ("CHANGED", f"{base}/a"), ("DELETED", f"{base}/a")]
    client.remove_watches(base, "any")


def test_data_and_children_watch(client, base):
    datas, kids = [], []
    client.DataWatch(f"{base}/d", lambda data, stat: datas.append(data))
    client.ChildrenWatch(base, lambda ch: kids.append(list(ch)))
    client.create(f"{base}/d", b"1")
    client.set(f"{base}/d", b"2")
    assert wait_for(lambda: datas[-1:] == [b"2"])
    # b"1" may be skipped: a one-shot watch re-reads the latest state (as kazoo's).
    assert datas[0] is None
    assert wait_for(lambda: kids and kids[-1] == ["d"])
    assert kids[0] == []


def test_callback_exception_is_logged(client, base, caplog):
    ran = threading.Event()

    def bad(event):
        ran.set()
        raise RuntimeError("boom in callback")

    with caplog.at_level(logging.ERROR, logger="coord"):
        client.get(base, watch=bad)
        client.set(base, b"z")
        assert ran.wait(10)
        assert wait_for(lambda: any("boom in callback" in (r.exc_text or "") or
                                    (r.exc_info and "boom" in str(r.exc_info[1]))
                                    for r in caplog.records))
    # The client carries on.
    assert client.get(base)[0] == b"z"


def test_listener_sees_close(ensemble):
    states = []
    c = coord.Client(ensemble.servers, ca=ensemble.ca)
    c.add_listener(states.append)
    c.start()
    c.stop()
    assert wait_for(lambda: coord.SessionState.CLOSED in states)


def test_closed_client_raises_clearly(ensemble):
    c = coord.Client(ensemble.servers, ca=ensemble.ca)
    with pytest.raises(coord.ClientClosedError):
        c.get("/")
    c.start()
    c.close()
    with pytest.raises(coord.ClientClosedError):
        c.exists("/")
    c.close()  # twice is fine


def test_bad_arguments(client):
    with pytest.raises(TypeError, match="path"):
        client.get(5)
    with pytest.raises(TypeError, match="value"):
        client.create("/x", "not bytes")
    with pytest.raises(TypeError, match="version"):
        client.set("/x", b"", version="1")
    with pytest.raises(TypeError, match="watch"):
        client.get("/", watch=3)
    with pytest.raises(coord.InvalidPathError):
        client.get("no-slash")
    with pytest.raises(coord.BadArgumentsError):
        client.check_sequencer(b"garbage")
    with pytest.raises(coord.BadArgumentsError):
        coord.decode_sequencer(b"\x01\x02")
    with pytest.raises(coord.BadArgumentsError):
        coord.Client("127.0.0.1:1", ca="/nonexistent/ca.pem").start()
    with pytest.raises(TypeError, match="acl"):
        client.create("/x", acl=[1])


def test_connect_timeout_is_builtin_timeout_or_connection_loss(ensemble):
    c = coord.Client("127.0.0.1:9", ca=ensemble.ca, timeout=0.5)
    with pytest.raises(coord.CoordError) as e:
        c.start()
    assert isinstance(e.value, (coord.ConnectionLossError, builtins.TimeoutError))


def test_timeout_error_hierarchy():
    assert issubclass(coord.TimeoutError, builtins.TimeoutError)
    assert issubclass(coord.LockTimeout, coord.CoordError)
    for name in ("NoNodeError", "NodeExistsError", "BadVersionError", "NotEmptyError",
                 "NoAuthError", "SessionExpiredError", "ConnectionLossError", "LockDelayError",
                 "StaleSequencerError", "DiskFullError", "BadArgumentsError"):
        assert issubclass(getattr(coord, name), coord.CoordError), name
    assert ex._from_code("LockDelay", -204, "m").__class__ is coord.LockDelayError
    assert ex._from_code("DiskFull", -206, "m").__class__ is coord.DiskFullError


def test_rust_logs_reach_logging(ensemble, caplog):
    # Closing a session makes the Rust client log at debug level.
    caplog.set_level(logging.DEBUG, logger="coord")
    coord.refresh_log_level()
    try:
        c = coord.Client(ensemble.servers, ca=ensemble.ca)
        c.start()
        c.create("/log-probe-" + str(time.monotonic_ns()), ephemeral=True)
        c.close()
        assert wait_for(lambda: any(r.name.startswith("coord.coord_client") for r in caplog.records))
    finally:
        logging.getLogger("coord").setLevel(logging.NOTSET)
        coord.refresh_log_level()


def test_server_status(client, ensemble):
    roles = [client.server_status(s)["role"] for s in ensemble.servers.split(",")]
    assert roles.count("leader") == 1, roles
