#!/usr/bin/env python3
"""The same steps against a 3-member Apache ZooKeeper 3.8 and a 3-member herd,
compared line by line.

    ensemble_differential.py HERD_BIN

Each scenario drives one ensemble with kazoo and the byte-level client of
wire.py and writes down what it saw, in words free of what legitimately
differs (ports, session ids, zxids, times): the four-letter words' view of the
roles and the quorum; conf's ensemble part; a write through one member seen
through another after sync, with its watch and sequence numbers; and a session
reopened on another member, whose old connection's write must be refused with
the connection closed and not applied (SessionMoved), for each pair of roles,
while a close on that old connection does close the session; the leader's
proposal sizes and srst.
The script prints both transcripts side by side where they differ and exits 1
if they do; 0 when herd's equals ZooKeeper's. Every wait is bounded; every
process started is killed at the end.
"""

import os
import re
import shutil
import socket
import sys
import tempfile
import threading

from kazoo.client import KazooClient, KazooState

from herd_ensemble import WAIT_S, ZOOKEEPER, Ensemble, four_letter, herd, mode
from wire import close_session, create, session

# mntr keys of a quorum (ZooKeeper 3.8 prints the zk_*followers* ones on a leader only).
QUORUM_KEYS = ["zk_server_state", "zk_peer_state", "zk_quorum_size", "zk_followers",
               "zk_synced_followers", "zk_synced_non_voting_followers", "zk_synced_observers",
               "zk_pending_syncs", "zk_learners", "zk_last_proposal_size", "zk_min_proposal_size",
               "zk_max_proposal_size", "zk_cnt_election_time"]


def roles(ens):
    """Member addresses by role: leader first, then the followers in address order."""
    leader = ens.addrs[ens.settled()]
    return [leader] + [a for a in ens.addrs if a != leader]


def client(addr):
    zk = KazooClient(hosts=addr, timeout=15)
    zk.start(timeout=WAIT_S)
    return zk


def four_letter_words(ens, out):
    for name, addr in zip(["leader", "follower", "follower"], roles(ens)):
        srvr = four_letter(addr, "srvr")
        out.append(f"{name}: srvr Mode: {mode(addr)}")
        stat = four_letter(addr, "stat")
        out.append(f"{name}: stat has 'Mode: {mode(addr)}': {('Mode: ' + str(mode(addr))) in stat}")
        mntr = dict(line.split("\t", 1) for line in four_letter(addr, "mntr").splitlines() if "\t" in line)
        for k in QUORUM_KEYS:
            out.append(f"{name}: mntr {k} = {mntr.get(k, '(absent)')}")
        out.append(f"{name}: srvr keys {[l.split(':')[0] for l in srvr.splitlines()]}")
        sizes = [l for l in srvr.splitlines() if l.startswith("Proposal sizes")]
        out.append(f"{name}: srvr {sizes}")


def proposal_sizes(ens, out):
    """After the writes of the scenarios before: every member counted its log
    syncs; sizes, not their values (the encodings differ), and srst clearing them."""
    leader = roles(ens)[0]

    def sizes():
        line = [l for l in four_letter(leader, "srvr").splitlines() if l.startswith("Proposal sizes")]
        return [int(v) for v in line[0].split(": ")[1].split("/")] if line else None

    for name, addr in zip(["leader", "follower", "follower"], roles(ens)):
        mntr = dict(l.split("\t", 1) for l in four_letter(addr, "mntr").splitlines() if "\t" in l)
        for k in ("zk_cnt_fsynctime", "zk_cnt_sync_processor_batch_size"):
            out.append(f"{name}: mntr {k} > 0: {int(mntr.get(k, 0)) > 0}")
    last, low, high = sizes()
    out.append(f"leader: proposal sizes 0 < min <= last <= max: {0 < low <= last <= high}")
    out.append(f"leader: srst: {four_letter(leader, 'srst').strip()}")
    out.append(f"leader: proposal sizes after srst: {sizes()}")


def conf(ens, out):
    ports = {}

    def placeholder(m):
        return "<" + ports.setdefault(m.group(0), f"p{len(ports)}") + ">"

    for name, addr in zip(["leader", "follower", "follower"], roles(ens)):
        lines = four_letter(addr, "conf").splitlines()
        keys = [l.split("=")[0] for l in lines]
        out.append(f"{name}: conf keys {keys}")
        tail = lines[keys.index("initLimit"):] if "initLimit" in keys else []
        for line in tail:
            if line.split("=")[0] in ("electionPort", "quorumPort"):
                line = line.split("=")[0] + "=<port>"
            out.append(f"{name}: conf {re.sub(r'(?<=:)[0-9]{4,5}', placeholder, line)}")


def across_members(ens, out):
    leader, f1, f2 = roles(ens)
    writer, reader = client(f1), client(f2)
    try:
        writer.create("/across", b"")
        fired = threading.Event()
        events = []

        def watch(event):
            events.append(f"{event.type} {event.path}")
            fired.set()

        reader.sync("/across")
        out.append(f"reader after sync: {reader.get_children('/across', watch=watch)}")
        names = [writer.create("/across/n-", b"x", sequence=True) for _ in range(3)]
        out.append(f"sequential names through a follower: {names}")
        out.append(f"watch fired on the other follower: {fired.wait(WAIT_S)} {events}")
        reader.sync("/across")
        out.append(f"reader after sync: {sorted(reader.get_children('/across'))}")
        leader_zk = client(leader)
        out.append(f"leader reads: {sorted(leader_zk.get_children('/across'))}")
        leader_zk.stop()
    finally:
        writer.stop()
        reader.stop()


def session_moved(ens, out):
    leader, f1, f2 = roles(ens)
    for name, old, new in [("follower to follower", f1, f2), ("leader to follower", leader, f1),
                           ("follower to leader", f2, leader)]:
        sock, sid, password = session(old)
        try:
            moved = KazooClient(hosts=new, timeout=15, client_id=(sid, password))
            moved.start(timeout=WAIT_S)
            out.append(f"{name}: reopened with the same session: {moved.client_id[0] == sid}")
            path = "/moved-" + name.replace(" ", "-")
            try:
                result = f"reply {create(sock, 1, path)}"
            except (ConnectionError, socket.timeout, OSError) as e:
                result = f"connection closed ({type(e).__name__})"
            out.append(f"{name}: the old connection's create: {result}")
            # Retried through a connection loss: on a loaded machine the new
            # connection may time out and reconnect (seen once on ZooKeeper's side).
            moved.retry(moved.sync, "/")
            out.append(f"{name}: applied: {moved.retry(moved.exists, path) is not None}")
            out.append(f"{name}: the new connection's create: {moved.create(path + '-new', b'')}")
            moved.stop()
        finally:
            sock.close()


def close_after_moving(ens, out):
    """closeSession is exempt from the owner test (a session's expiry is no
    member's): sent on the connection the session moved away from, it closes
    the session, and the ephemeral made through the new connection goes."""
    leader, f1, f2 = roles(ens)
    sock, sid, password = session(f1)
    try:
        moved = KazooClient(hosts=f2, timeout=15, client_id=(sid, password))
        lost = threading.Event()
        moved.add_listener(lambda state: state == KazooState.LOST and lost.set())
        moved.start(timeout=WAIT_S)
        moved.create("/closed-eph", b"", ephemeral=True)
        try:
            result = f"reply {close_session(sock, 1)}"
        except (ConnectionError, socket.timeout, OSError) as e:
            result = f"connection closed ({type(e).__name__})"
        out.append(f"closeSession on the old connection: {result}")
        out.append(f"the new connection loses the session: {lost.wait(WAIT_S)}")
        moved.stop()
        check = client(leader)
        check.sync("/")
        out.append(f"its ephemeral is gone: {check.exists('/closed-eph') is None}")
        check.stop()
    finally:
        sock.close()


SCENARIOS = [four_letter_words, conf, across_members, session_moved, close_after_moving,
             proposal_sizes]


def transcript(command, work):
    ens = Ensemble(command, work)
    out = []
    try:
        for scenario in SCENARIOS:
            out.append(f"## {scenario.__name__}")
            scenario(ens, out)
    finally:
        ens.stop()
    return out


def main():
    work = tempfile.mkdtemp(prefix="herd-ensemble-differential.")
    try:
        zk = transcript(ZOOKEEPER, os.path.join(work, "zookeeper"))
        ours = transcript(herd(sys.argv[1]), os.path.join(work, "herd"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    differ = 0
    for i in range(max(len(zk), len(ours))):
        a = zk[i] if i < len(zk) else "(missing)"
        b = ours[i] if i < len(ours) else "(missing)"
        if a == b:
            print(f"same  {a}")
        else:
            differ += 1
            print(f"DIFF  zookeeper: {a}\n      herd:      {b}")
    print(f"ensemble_differential: {len(zk)} lines, {differ} differ")
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
