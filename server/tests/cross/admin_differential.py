#!/usr/bin/env python3
"""herd's AdminServer beside Apache ZooKeeper's, read with urllib and json.

    admin_differential.py HERD_BIN

Starts a standalone herd and a standalone ZooKeeper 3.8 (the Debian package),
each with its AdminServer on a free port of 127.0.0.1, takes the same steps on
both with kazoo (nodes, an ephemeral, data and child watches), then asks both
for every command herd lists, by name and by alias, and compares: status,
content type, the JSON fields (herd's are ZooKeeper's, less the ones listed in
NOT_IN_HERD), and the values that must agree (counts, paths, states, zxids).
Unknown commands, other paths and other methods are compared too. Every wait
is bounded and both servers are stopped at the end. Exit 0 when all checks pass.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from kazoo.client import KazooClient

from herd_ensemble import WAIT_S, ZK_CP, free_port

# The aliases each command answers to, as ZooKeeper 3.8 names them.
ALIASES = {
    "configuration": ["conf", "config"],
    "connection_stat_reset": ["crst"],
    "connections": ["cons"],
    "environment": ["envi", "env"],
    "is_read_only": ["isro"],
    "monitor": ["mntr"],
    "server_stats": ["srvr"],
    "stat_reset": ["srst"],
    "stats": ["stat"],
    "watch_summary": ["wchs"],
    "watches": ["wchc"],
    "watches_by_path": ["wchp"],
}

# ZooKeeper's fields herd does not have: JVM facts, TLS counters and
# per-response buffer and latency statistics it does not keep.
NOT_IN_HERD = {
    "server_stats": {"client_response"},
    "stats": {"client_response"},
    "server_stats.server_stats": {
        "client_response_stats",
        "non_mtlsremote_conn_count", "non_mtlslocal_conn_count",
    },
    "connection": {
        "interest_ops", "last_operation", "established", "last_cxid", "last_response_time",
        "last_latency", "min_latency", "avg_latency", "max_latency",
    },
}
JVM_ONLY = ("java.", "os.memory.")


def config(work, name):
    """A server's directory and zoo.cfg; returns (client addr, admin url, cfg path)."""
    d = os.path.join(work, name)
    os.makedirs(os.path.join(d, "data"))
    client, admin = free_port("127.0.0.1"), free_port("127.0.0.1")
    cfg = os.path.join(d, "zoo.cfg")
    with open(cfg, "w") as f:
        f.write(f"tickTime=2000\ndataDir={d}/data\nclientPort={client}\n"
                "clientPortAddress=127.0.0.1\n4lw.commands.whitelist=*\n"
                f"admin.serverAddress=127.0.0.1\nadmin.serverPort={admin}\n")
    return f"127.0.0.1:{client}", f"http://127.0.0.1:{admin}", cfg


def get(url, method="GET"):
    """(status, content type, body) of one request."""
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=WAIT_S) as answer:
            return answer.status, answer.headers["Content-Type"], answer.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], e.read().decode()


def command(base, name):
    status, kind, body = get(f"{base}/commands/{name}")
    assert status == 200, (base, name, status, body)
    assert kind.startswith("application/json"), (base, name, kind)
    return json.loads(body)


def wait_serving(base, log):
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if command(base, "srvr").get("error") is None:
                return
        except (OSError, AssertionError, ValueError):
            pass
        time.sleep(0.2)
    raise AssertionError(f"{base} did not serve within 60 s\n{open(log).read()[-3000:]}")


def same_steps(addr):
    zk = KazooClient(hosts=addr, timeout=10)
    zk.start(timeout=WAIT_S)
    zk.create("/app", b"x")
    zk.create("/app/one", b"1")
    zk.create("/app/lease", b"", ephemeral=True)
    zk.get("/app/one", watch=lambda e: None)
    zk.exists("/app/lease", watch=lambda e: None)
    zk.exists("/app/absent", watch=lambda e: None)
    return zk


def fields(herd, zk, where):
    """herd's field names are ZooKeeper's, but for those listed as not in herd."""
    h, z = set(herd), set(zk)
    missing = {k for k in z - h if not k.startswith(JVM_ONLY)} - NOT_IN_HERD.get(where, set())
    extra = h - z - {"herd.version"}
    assert not missing, f"{where}: herd lacks {sorted(missing)}"
    assert not extra, f"{where}: herd has fields ZooKeeper does not: {sorted(extra)}"


def compare(herd, zk, herd_port, herd_client, zk_client):
    checks = 0
    # The command list: every herd command is one of ZooKeeper's.
    status, kind, page = get(f"{herd}/commands")
    assert status == 200 and kind.startswith("text/html"), (status, kind)
    zk_page = get(f"{zk}/commands")[2]
    listed = [line.split('">')[1].split("<")[0] for line in page.splitlines() if "href" in line]
    assert listed == sorted(listed) and listed, listed
    for name in listed:
        assert f'href="/commands/{name}"' in zk_page, f"ZooKeeper has no command {name}"
    checks += 1

    answers = {}
    for name in listed:
        h, z = command(herd, name), command(zk, name)
        for alias in ALIASES.get(name, []):
            assert command(herd, alias)["command"] == name, (alias, name)
        assert h["command"] == z["command"] == name, (name, h["command"], z["command"])
        assert h["error"] is None and z["error"] is None, (name, h["error"], z["error"])
        assert list(h)[-1] == "error", f"{name}: error is not the last field"
        answers[name] = (h, z)
        checks += 1

    for name, (h, z) in answers.items():
        if name == "monitor":
            # herd's metrics are a subset of ZooKeeper's (see mntr's differential
            # test), but for the percentiles herd keeps of every summary.
            percentile = lambda k: k.split("_", 1)[0] in ("p50", "p95", "p99", "p999")
            extra = {k for k in set(h) - set(z)
                     if not (percentile(k) and "avg_" + k.split("_", 1)[1] in z)}
            assert not extra, f"monitor: herd has metrics ZooKeeper does not: {sorted(extra)}"
        elif name in ("stat_reset", "connection_stat_reset"):
            continue
        else:
            fields(h, z, name)
        checks += 1
    for name in ("server_stats", "stats"):
        h, z = answers[name]
        fields(h["server_stats"], z["server_stats"], "server_stats.server_stats")
        for key in ("server_state", "last_processed_zxid", "num_alive_client_connections",
                    "outstanding_requests"):
            assert h["server_stats"][key] == z["server_stats"][key], (name, key)
        assert h["node_count"] == z["node_count"], (name, h["node_count"], z["node_count"])
        checks += 1
    for name in ("connections", "stats"):
        h, z = answers[name]
        assert len(h["connections"]) == len(z["connections"]) == 1, name
        fields(h["connections"][0], z["connections"][0], "connection")
        assert h["secure_connections"] == z["secure_connections"] == []
        checks += 1
    h, z = answers["connections"]
    assert h["connections"][0]["session_id"] == herd_client.client_id[0]
    assert z["connections"][0]["session_id"] == zk_client.client_id[0]
    assert h["connections"][0]["remote_socket_address"].startswith("127.0.0.1:")

    h, z = answers["monitor"]
    for key in ("server_state", "znode_count", "watch_count", "ephemerals_count",
                "num_alive_connections", "global_sessions", "outstanding_requests",
                "cnt_updatelatency"):
        assert h[key] == z[key], ("monitor", key, h[key], z[key])
    # Three reads each (a ping of kazoo's may add one on either side).
    assert h["cnt_readlatency"] >= 3 and z["cnt_readlatency"] >= 3, (h, z)
    checks += 1
    assert answers["watch_summary"][0] == answers["watch_summary"][1], answers["watch_summary"]
    h, z = answers["watches"]
    hw, zw = h["session_id_to_watched_paths"], z["session_id_to_watched_paths"]
    assert sorted(hw[str(herd_client.client_id[0])]) == sorted(zw[str(zk_client.client_id[0])])
    h, z = answers["watches_by_path"]
    hp, zp = h["path_to_session_ids"], z["path_to_session_ids"]
    assert sorted(hp) == sorted(zp), (hp, zp)
    assert all(v == [herd_client.client_id[0]] for v in hp.values()), hp
    h, z = answers["dump"]
    he, ze = h["session_id_to_ephemeral_paths"], z["session_id_to_ephemeral_paths"]
    assert he == {str(herd_client.client_id[0]): ["/app/lease"]}, he
    assert ze == {str(zk_client.client_id[0]): ["/app/lease"]}, ze
    assert sum(map(len, h["expiry_time_to_session_ids"].values())) == 1
    checks += 4
    h, z = answers["configuration"]
    for key in ("tick_time", "max_client_cnxns", "min_session_timeout", "max_session_timeout",
                "server_id", "client_port_listen_backlog"):
        assert h[key] == z[key], ("configuration", key, h[key], z[key])
    assert h["client_port"] == herd_port, (h["client_port"], herd_port)
    assert answers["is_read_only"][0] == answers["is_read_only"][1]
    h, z = answers["environment"]
    # host.name is Java's canonical name for the host, a reverse lookup; not compared.
    for key in ("os.name", "os.arch", "os.version", "user.name", "user.home"):
        assert h[key] == z[key], ("environment", key, h[key], z[key])
    assert h["zookeeper.version"].startswith("3.9."), h["zookeeper.version"]
    assert answers["voting_view"][0] == answers["voting_view"][1]
    checks += 4

    # The resets: counters back to (near) zero on both, latency summaries too.
    for base in (herd, zk):
        command(base, "stat_reset")
        assert command(base, "server_stats")["server_stats"]["packets_received"] <= 2, base
        assert command(base, "monitor")["cnt_updatelatency"] == 0, base
        command(base, "connection_stat_reset")
        assert command(base, "connections")["connections"][0]["packets_received"] <= 2, base
    checks += 1

    # What is not a command.
    for base in (herd, zk):
        unknown = command(base, "nosuch")
        assert unknown == {"command": "nosuch", "error": "Unknown command: nosuch"}, unknown
        assert get(f"{base}/elsewhere")[0] == 404, base
        assert get(f"{base}/commands/ruok", method="POST")[0] == 405, base
    checks += 1
    return checks


def main():
    work = tempfile.mkdtemp(prefix="herd-admin.")
    procs, clients = [], []
    try:
        herd_client, herd, herd_cfg = config(work, "herd")
        zk_client, zk, zk_cfg = config(work, "zookeeper")
        for cmd, d in (([sys.argv[1], "--config", herd_cfg], "herd"),
                       (["java", "-Xms256m", "-Xmx256m", "-cp", ZK_CP,
                         "org.apache.zookeeper.server.ZooKeeperServerMain", zk_cfg], "zookeeper")):
            log = open(os.path.join(work, d, "server.log"), "w")
            procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT))
        wait_serving(herd, os.path.join(work, "herd", "server.log"))
        wait_serving(zk, os.path.join(work, "zookeeper", "server.log"))
        clients = [same_steps(herd_client), same_steps(zk_client)]
        herd_port = int(herd_client.rsplit(":", 1)[1])
        checks = compare(herd, zk, herd_port, *clients)
        print(f"admin_differential: {checks} checks passed, herd's AdminServer answers as "
              "ZooKeeper's")
    finally:
        for c in clients:
            c.stop()
        for p in procs:
            p.kill()
            p.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
