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

import shutil
import sys
import tempfile

from kazoo.client import KazooClient, KazooState

from herd_ensemble import WAIT_S, Ensemble, herd, wait_for


def main():
    work = tempfile.mkdtemp(prefix="herd-kazoo-ensemble.")
    ens = Ensemble(herd(sys.argv[1]), work)
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
