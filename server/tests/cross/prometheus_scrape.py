#!/usr/bin/env python3
"""herd's Prometheus endpoint read by Prometheus's own Python parser.

    prometheus_scrape.py HERD_BIN

Starts a standalone herd with ZooKeeper's PrometheusMetricsProvider on free
ports, makes a node and a watch with kazoo, scrapes /metrics over HTTP and
parses it with prometheus_client's text parser: the families, their types and
their values must be ZooKeeper's. Every wait is bounded and the server is
stopped at the end. Exit status 0 when all checks pass.
"""

import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from kazoo.client import KazooClient
from prometheus_client.parser import text_string_to_metric_families

WAIT_S = 20


def addresses(proc):
    """The client and metrics addresses herd prints once it serves."""
    client = metrics = None
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline and not (client and metrics):
        line = proc.stdout.readline()
        if not line:
            break
        m = re.match(r"herd serving ZooKeeper clients on (\S+) ", line)
        client = m.group(1) if m else client
        m = re.match(r"herd serving Prometheus metrics on (\S+)", line)
        metrics = m.group(1) if m else metrics
    assert client and metrics, f"herd did not print both addresses ({client}, {metrics})"
    return client, metrics


def scrape(url):
    with urllib.request.urlopen(url, timeout=WAIT_S) as answer:
        assert answer.status == 200, answer.status
        kind = answer.headers["Content-Type"]
        assert kind == "text/plain; version=0.0.4; charset=utf-8", kind
        return answer.read().decode()


def main():
    work = tempfile.mkdtemp(prefix="herd-prometheus.")
    with open(f"{work}/zoo.cfg", "w") as cfg:
        cfg.write(
            f"clientPort=0\nadmin.enableServer=false\ndataDir={work}/data\n"
            "metricsProvider.className="
            "org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider\n"
            "metricsProvider.httpHost=127.0.0.1\nmetricsProvider.httpPort=0\n"
        )
    proc = subprocess.Popen(
        [sys.argv[1], "--config", f"{work}/zoo.cfg"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    zk = None
    try:
        client, url = addresses(proc)
        zk = KazooClient(hosts=client, timeout=10)
        zk.start(timeout=WAIT_S)
        zk.create("/p", b"abc")
        zk.get("/p", watch=lambda event: None)

        families = {f.name: f for f in text_string_to_metric_families(scrape(url))}
        value = lambda name: families[name].samples[0].value
        for name, kind in [
            ("znode_count", "gauge"),
            ("watch_count", "gauge"),
            ("num_alive_connections", "gauge"),
            ("packets_received", "gauge"),
            ("packets_sent", "gauge"),
            ("approximate_data_size", "gauge"),
            ("global_sessions", "gauge"),
            ("ephemerals_count", "gauge"),
            ("avg_latency", "gauge"),
            ("uptime", "gauge"),
            ("fsynctime", "summary"),
            ("snapshottime", "summary"),
            ("election_time", "summary"),
            ("readlatency", "summary"),
            ("updatelatency", "summary"),
        ]:
            assert name in families, f"no family {name}: {sorted(families)}"
            assert families[name].type == kind, (name, families[name].type)
        assert value("znode_count") == 6.0, value("znode_count")  # / twice, /zookeeper x3, /p
        assert value("watch_count") == 1.0, value("watch_count")
        assert value("num_alive_connections") == 1.0
        assert value("global_sessions") == 1.0
        assert value("approximate_data_size") == 3.0
        # the handshake, the create and the getData (and any ping of kazoo's)
        assert value("packets_received") >= 3.0, value("packets_received")
        fsync = {s.name: s for s in families["fsynctime"].samples}
        assert fsync["fsynctime_count"].value >= 1.0, fsync
        assert fsync["fsynctime"].labels == {"quantile": "0.5"}, fsync
        assert "version" not in families and "server_state" not in families
        # The create (an update) and the getData and handshake (reads, as
        # ZooKeeper counts everything not committed through the quorum).
        latency = {s.name: s.value for f in ("readlatency", "updatelatency")
                   for s in families[f].samples}
        assert latency["updatelatency_count"] >= 1.0, latency
        assert latency["readlatency_count"] >= 1.0, latency
        assert latency["readlatency_sum"] >= 0.0, latency

        try:
            urllib.request.urlopen(url.replace("/metrics", "/"), timeout=WAIT_S)
            raise AssertionError("/ answered; ZooKeeper serves /metrics only")
        except urllib.error.HTTPError as e:
            assert e.code == 404, e.code
        print(f"prometheus scrape: ok ({len(families)} families)")
    finally:
        if zk is not None:
            zk.stop()
            zk.close()
        proc.kill()
        proc.wait(timeout=WAIT_S)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
