#!/usr/bin/env python3
"""kazoo against a 3-member herd ensemble, with a 3-host connect string.

    kazoo_ensemble.py HERD_BIN

Starts three herd members on 127.0.0.1, .2 and .3 (ports picked free, one
zoo.cfg and myid each), connects one kazoo client with all three addresses,
and kills (SIGKILL) the member it is connected to, twice in turn (after the
first, that member restarts). Each time the client must move to another
member with its session: same session id, its ephemeral node kept, its
DataWatch recipe watching again (it sees a write made through another client), a lock
it holds still held, and its writes going on. Every wait is bounded; every
process started is killed at the end. Exit status 0 when all checks pass.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from kazoo.client import KazooClient, KazooState

WAIT_S = 30


def free_port(ip):
    s = socket.socket()
    s.bind((ip, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def mode(addr):
    host, port = addr.rsplit(":", 1)
    try:
        s = socket.create_connection((host, int(port)), timeout=1)
        s.settimeout(2)
        s.sendall(b"srvr")
        out = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            out += b
    except OSError:
        return None
    for line in out.decode(errors="replace").splitlines():
        if line.startswith("Mode: "):
            return line[6:].strip()
    return None


class Ensemble:
    def __init__(self, herd, work):
        self.herd, self.work = herd, work
        ips = [f"127.0.0.{i}" for i in (1, 2, 3)]
        self.addrs = [f"{ip}:{free_port(ip)}" for ip in ips]
        servers = "".join(
            f"server.{i + 1}={ip}:{free_port(ip)}:{free_port(ip)}\n" for i, ip in enumerate(ips)
        )
        self.procs = [None] * 3
        for i, ip in enumerate(ips):
            d = os.path.join(work, f"m{i + 1}")
            os.makedirs(d)
            with open(os.path.join(d, "myid"), "w") as f:
                f.write(f"{i + 1}\n")
            port = self.addrs[i].rsplit(":", 1)[1]
            with open(os.path.join(d, "zoo.cfg"), "w") as f:
                f.write(f"tickTime=2000\ninitLimit=10\nsyncLimit=5\ndataDir={d}\n"
                        f"clientPort={port}\nclientPortAddress={ip}\n"
                        f"4lw.commands.whitelist=*\n{servers}")
            self.start(i)

    def start(self, i):
        d = os.path.join(self.work, f"m{i + 1}")
        log = open(os.path.join(d, "herd.log"), "a")
        self.procs[i] = subprocess.Popen([self.herd, "--config", os.path.join(d, "zoo.cfg")],
                                         stdout=log, stderr=subprocess.STDOUT)

    def kill(self, i):
        self.procs[i].send_signal(signal.SIGKILL)
        self.procs[i].wait()
        self.procs[i] = None

    def settled(self):
        deadline = time.time() + WAIT_S
        while time.time() < deadline:
            modes = sorted(str(mode(a)) for a, p in zip(self.addrs, self.procs) if p)
            if modes.count("leader") == 1 and set(modes) <= {"leader", "follower"}:
                return
            time.sleep(0.05)
        raise AssertionError(f"ensemble not settled within {WAIT_S} s")

    def stop(self):
        for i, p in enumerate(self.procs):
            if p:
                self.kill(i)

    def logs(self):
        out = []
        for i in range(3):
            try:
                out.append(f"--- member {i + 1}\n" + open(os.path.join(self.work, f"m{i + 1}", "herd.log")).read()[-3000:])
            except OSError:
                pass
        return "\n".join(out)


def wait_for(what, cond):
    deadline = time.time() + WAIT_S
    while not cond():
        if time.time() > deadline:
            raise AssertionError(f"not within {WAIT_S} s: {what}")
        time.sleep(0.02)


def main():
    herd = sys.argv[1]
    work = tempfile.mkdtemp(prefix="herd-kazoo-ensemble.")
    ens = Ensemble(herd, work)
    ok = False
    try:
        ens.settled()
        hosts = ",".join(ens.addrs)
        zk = KazooClient(hosts=hosts, timeout=15)
        states = []
        zk.add_listener(states.append)
        zk.start(timeout=WAIT_S)
        session = zk.client_id[0]
        zk.create("/k", b"0")
        zk.create("/k/eph", b"mine", ephemeral=True)
        lock = zk.Lock("/k/lock", "holder")
        assert lock.acquire(timeout=WAIT_S), "lock acquired"
        # kazoo drops one-shot watches on a connection loss; its DataWatch
        # recipe sets its watch again on the member it reconnects to.
        seen = []

        @zk.DataWatch("/k")
        def watch(data, _stat):
            seen.append(data)

        other = KazooClient(hosts=hosts, timeout=15)
        other.start(timeout=WAIT_S)
        for move in range(2):
            peer = "%s:%d" % zk._connection._socket.getpeername()
            at = ens.addrs.index(peer)
            states.clear()
            ens.kill(at)
            wait_for("the client reconnects", lambda: zk.state == KazooState.CONNECTED and
                     KazooState.SUSPENDED in states)
            moved_to = "%s:%d" % zk._connection._socket.getpeername()
            assert moved_to != peer, f"moved from {peer} to {moved_to}"
            assert zk.client_id[0] == session, "the session moved, not a new one"
            assert KazooState.LOST not in states, "the session was not lost"
            data, stat = zk.get("/k/eph")
            assert data == b"mine" and stat.ephemeralOwner == session, "ephemeral kept"
            assert lock.is_acquired, "lock still held"
            assert zk.get_children("/k/lock"), "lock node kept"
            # Writes go on through the member it moved to.
            zk.set("/k/eph", b"mine")
            zk.create(f"/k/after-{move}", b"")
            # The recipe's watch is set on the member it moved to.
            other.set("/k", str(move + 1).encode())
            wait_for("the DataWatch sees the write", lambda: seen[-1:] == [str(move + 1).encode()])
            ens.start(at)
            ens.settled()
            print(f"kazoo_ensemble: move {move + 1}: {peer} killed, session 0x{session:x} "
                  f"on {moved_to} with its ephemeral, lock and DataWatch")
        lock.release()
        zk.stop()
        assert other.exists("/k/eph") is None, "the ephemeral went with the closed session"
        assert sorted(other.get_children("/k")) == ["after-0", "after-1", "lock"]
        other.stop()
        ok = True
    finally:
        ens.stop()
        if not ok:
            print(ens.logs(), file=sys.stderr)
        shutil.rmtree(work, ignore_errors=True)
    print("kazoo_ensemble: all checks passed")


if __name__ == "__main__":
    main()
