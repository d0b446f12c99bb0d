#!/usr/bin/env python3
"""Cross-client conformance suite: kazoo (Python ZooKeeper client) + recipes.

Usage: kazoo_suite.py HOST:PORT

Every check asserts exact values observed against a standalone Apache
ZooKeeper 3.8 server (the reference).  Against a member of an ensemble,
KAZOO_SUITE_MODE names the mode the four-letter words must report
(follower, leader or observer; standalone when unset).  Each wait is bounded.  The suite
works under a single root (/kazoo_suite) that is removed at start and end,
so it can be re-run against the same server.

Prints one line per check ("ok   NAME" / "FAIL NAME: reason") and finally
exactly one summary line "N passed, M failed".  Exit status is 0 only when
every check passed.
"""

import base64
import hashlib
import logging
import os
import re
import sys
import threading
import time
import traceback

from kazoo.client import KazooClient
from kazoo.exceptions import (
    BadVersionError,
    LockTimeout,
    InvalidACLError,
    NoAuthError,
    NoChildrenForEphemeralsError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    RolledBackError,
    RuntimeInconsistency,
)
from kazoo.protocol.states import ZnodeStat

import herd_ensemble
from kazoo.security import ACL, Id, OPEN_ACL_UNSAFE, READ_ACL_UNSAFE, CREATOR_ALL_ACL, make_digest_acl

ROOT = "/kazoo_suite"
TIMEOUT = 5.0          # bound for every wait on the server
SETTLE = 0.4           # time given to prove that something does NOT happen
GLOBAL_DEADLINE = 170  # hard stop for the whole suite (seconds)

USER, PASSWORD = "alice", "secret"

if len(sys.argv) != 2 or ":" not in sys.argv[1]:
    print("usage: kazoo_suite.py HOST:PORT", file=sys.stderr)
    sys.exit(2)
HOSTPORT = sys.argv[1]
HOST, PORT = HOSTPORT.rsplit(":", 1)
PORT = int(PORT)
MODE = os.environ.get("KAZOO_SUITE_MODE", "standalone")

logging.basicConfig(level=logging.CRITICAL)

PASSED = 0
FAILED = 0
FAILED_NAMES = []
CLIENTS = []


def _watchdog():
    print("FAIL watchdog: suite exceeded %ds, aborting" % GLOBAL_DEADLINE, flush=True)
    print("%d passed, %d failed" % (PASSED, FAILED + 1), flush=True)
    os._exit(1)


_wd = threading.Timer(GLOBAL_DEADLINE, _watchdog)
_wd.daemon = True
_wd.start()


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------

class CheckFailed(Exception):
    pass


def eq(actual, expected, what=""):
    if actual != expected:
        raise CheckFailed("%s: expected %r, got %r" % (what or "value", expected, actual))


def true(cond, what):
    if not cond:
        raise CheckFailed(what)


def raises(exc_type, fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except exc_type:
        return
    except Exception as e:  # wrong exception type
        raise CheckFailed("expected %s, got %s(%s)" % (exc_type.__name__, type(e).__name__, e))
    raise CheckFailed("expected %s, call succeeded" % exc_type.__name__)


def wait_until(pred, what, timeout=TIMEOUT):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.02)
    if pred():
        return
    raise CheckFailed("timed out after %.1fs waiting for %s" % (timeout, what))


def check(name):
    def deco(fn):
        global PASSED, FAILED
        t0 = time.time()
        try:
            fn()
        except Exception as e:
            FAILED += 1
            FAILED_NAMES.append(name)
            if isinstance(e, CheckFailed):
                reason = str(e)
            else:
                reason = "%s: %s\n%s" % (type(e).__name__, e, traceback.format_exc())
            print("FAIL %s: %s" % (name, reason), flush=True)
        else:
            PASSED += 1
            print("ok   %s (%.2fs)" % (name, time.time() - t0), flush=True)
        return fn
    return deco


def new_client(**kw):
    c = KazooClient(hosts=HOSTPORT, timeout=10.0, **kw)
    c.start(timeout=TIMEOUT)
    CLIENTS.append(c)
    return c


def stop_client(c):
    try:
        c.stop()
        c.close()
    except Exception:
        pass


def p(*parts):
    return "/".join((ROOT,) + parts)


def four_letter(cmd):
    """The whole answer to a four letter word, on a fresh socket."""
    return herd_ensemble.four_letter(HOSTPORT, cmd.decode())


def parse_mntr(text):
    out = {}
    for line in text.splitlines():
        if not line:
            continue
        k, sep, v = line.partition("\t")
        if not sep:
            raise CheckFailed("mntr line without TAB: %r" % line)
        out[k] = v
    return out


def parse_srvr(text):
    keys, vals = [], {}
    for line in text.splitlines():
        k, sep, v = line.partition(": ")
        if not sep:
            raise CheckFailed("srvr line without ': ': %r" % line)
        keys.append(k)
        vals[k] = v
    return keys, vals


def digest(user, password):
    return base64.b64encode(hashlib.sha1(("%s:%s" % (user, password)).encode()).digest()).decode()


# ZooKeeper 3.8 version string, e.g.
#   3.8.0-5a02a05eddb59aee6ac762f7ea82e92a68eb9c0f, built on 2022-02-25 08:49 UTC
#   3.8.0-${mvngit.commit.id}, built on 2024-12-29 17:54 UTC   (Debian build)
VERSION_RE = re.compile(r"^3\.[89]\.\d+(-\S+)?, built on \d{4}-\d\d-\d\d \d\d:\d\d UTC$")

# --------------------------------------------------------------------------
# setup
# --------------------------------------------------------------------------

SUITE_T0 = time.time()
try:
    main = new_client(auth_data=[("digest", "%s:%s" % (USER, PASSWORD))])
except Exception as e:
    print("FAIL connect: cannot connect to %s: %s" % (HOSTPORT, e))
    print("0 passed, 1 failed")
    sys.exit(1)


def cleanup():
    # the main client is authenticated as alice, so digest-protected nodes
    # can be listed/removed as well
    if main.exists(ROOT):
        main.delete(ROOT, recursive=True)


try:
    cleanup()
    main.create(ROOT)
except Exception as e:
    print("FAIL setup: cannot reset %s: %r" % (ROOT, e))
    print("0 passed, 1 failed")
    sys.exit(1)

# --------------------------------------------------------------------------
# four letter words / server identity
# --------------------------------------------------------------------------

SRVR_VERSION = {}


@check("4lw ruok == imok")
def _():
    eq(main.command(b"ruok"), "imok", "ruok reply")


@check("4lw isro == rw")
def _():
    eq(main.command(b"isro"), "rw", "isro reply")


@check("4lw srvr layout")
def _():
    text = main.command(b"srvr")
    true(text.endswith("\n"), "srvr output ends with newline")
    keys, v = parse_srvr(text)
    eq(keys, ["Zookeeper version", "Latency min/avg/max", "Received", "Sent",
              "Connections", "Outstanding", "Zxid", "Mode", "Node count"], "srvr keys")
    true(VERSION_RE.match(v["Zookeeper version"]), "srvr version format %r" % v["Zookeeper version"])
    true(re.match(r"^\d+/\d+(\.\d+)?/\d+$", v["Latency min/avg/max"]), "latency format %r" % v["Latency min/avg/max"])
    for k in ("Received", "Sent", "Connections", "Outstanding", "Node count"):
        true(re.match(r"^\d+$", v[k]), "%s is integer: %r" % (k, v[k]))
    true(int(v["Connections"]) >= 1, "at least one connection")
    true(re.match(r"^0x[0-9a-f]+$", v["Zxid"]), "Zxid hex format %r" % v["Zxid"])
    eq(v["Mode"], MODE, "Mode")
    SRVR_VERSION["v"] = v["Zookeeper version"]


@check("4lw stat layout")
def _():
    text = four_letter(b"stat")
    lines = text.split("\n")
    true(VERSION_RE.match(lines[0].partition("Zookeeper version: ")[2]), "stat first line %r" % lines[0])
    eq(lines[1], "Clients:", "stat second line")
    true(re.search(r"^ /[0-9.:a-fA-F\[\]]+:\d+\[\d+\]\(queued=\d+,recved=\d+,sent=\d+", text, re.M),
         "stat lists at least one client line")
    for key in ("Latency min/avg/max: ", "Received: ", "Sent: ", "Connections: ", "Outstanding: ",
                "Zxid: 0x", "Mode: " + MODE, "Node count: "):
        true(re.search("^" + re.escape(key), text, re.M), "stat contains line %r" % key)


@check("4lw envi + server_version()")
def _():
    # full read: kazoo's command() stops after one recv(8192) and the envi
    # output (java.class.path) is usually longer than that
    text = four_letter(b"envi")
    lines = text.splitlines()
    eq(lines[0], "Environment:", "envi header")
    env = {}
    for line in lines[1:]:
        k, sep, v = line.partition("=")
        true(sep, "envi line is key=value: %r" % line)
        env[k] = v
    for k in ("zookeeper.version", "host.name", "os.name", "os.arch", "os.version",
              "user.name", "user.home", "user.dir"):
        true(k in env, "envi has key %s" % k)
    true(VERSION_RE.match(env["zookeeper.version"]), "envi zookeeper.version format %r" % env["zookeeper.version"])
    if "v" in SRVR_VERSION:
        eq(env["zookeeper.version"], SRVR_VERSION["v"], "envi version == srvr version")
    ver = main.server_version()
    print("     server_version() = %r  (envi zookeeper.version=%s)" % (ver, env["zookeeper.version"]))
    true(isinstance(ver, tuple) and len(ver) == 3 and all(isinstance(x, int) for x in ver),
         "server_version is a 3-tuple of ints: %r" % (ver,))
    true(ver[:2] in ((3, 8), (3, 9)), "server major.minor %r is 3.8 or 3.9" % (ver[:2],))


MNTR_KEYS = [
    # the set read by common monitoring tools (Datadog, Prometheus exporters,
    # zktop, Nagios check_zookeeper): all present in standalone ZK 3.8
    "zk_version", "zk_server_state", "zk_avg_latency", "zk_min_latency", "zk_max_latency",
    "zk_packets_received", "zk_packets_sent", "zk_num_alive_connections",
    "zk_outstanding_requests", "zk_znode_count", "zk_watch_count", "zk_ephemerals_count",
    "zk_approximate_data_size", "zk_open_file_descriptor_count",
    "zk_max_file_descriptor_count", "zk_uptime", "zk_global_sessions", "zk_local_sessions",
]


@check("4lw mntr keys and values")
def _():
    # kazoo's command() does a single recv(8192); the leading keys must be there
    head = main.command(b"mntr")
    first = head.split("\n")[0]
    true(first.startswith("zk_version\t"), "mntr first line is zk_version: %r" % first)
    head_keys = [l.split("\t")[0] for l in head.split("\n")[:7]]
    eq(head_keys, ["zk_version", "zk_server_state", "zk_ephemerals_count", "zk_num_alive_connections",
                   "zk_avg_latency", "zk_outstanding_requests", "zk_znode_count"], "first mntr keys")
    m = parse_mntr(four_letter(b"mntr"))
    for k in MNTR_KEYS:
        true(k in m, "mntr has key %s" % k)
    true(VERSION_RE.match(m["zk_version"]), "zk_version format %r" % m["zk_version"])
    if "v" in SRVR_VERSION:
        eq(m["zk_version"], SRVR_VERSION["v"], "mntr zk_version == srvr version")
    eq(m["zk_server_state"], MODE, "zk_server_state")
    for k in MNTR_KEYS[2:]:
        true(re.match(r"^-?\d+(\.\d+)?$", m[k]), "%s numeric: %r" % (k, m[k]))
    true(int(m["zk_num_alive_connections"]) >= 1, "zk_num_alive_connections >= 1")
    true(int(m["zk_znode_count"]) >= 5, "zk_znode_count >= 5 (/, /zookeeper, config, quota, root)")
    true(float(m["zk_min_latency"]) <= float(m["zk_avg_latency"]) <= float(m["zk_max_latency"]),
         "min <= avg <= max latency")


@check("4lw mntr/srvr counts follow the tree")
def _():
    def counts():
        m = parse_mntr(four_letter(b"mntr"))
        _, v = parse_srvr(four_letter(b"srvr"))
        return int(m["zk_znode_count"]), int(m["zk_ephemerals_count"]), int(v["Node count"])
    n0, e0, s0 = counts()
    eq(s0, n0, "srvr Node count == mntr zk_znode_count")
    main.create(p("count"))
    main.create(p("count", "a"), b"x")
    main.create(p("count", "e"), ephemeral=True)
    n1, e1, s1 = counts()
    eq(n1 - n0, 3, "zk_znode_count delta after 3 creates")
    eq(e1 - e0, 1, "zk_ephemerals_count delta after ephemeral create")
    eq(s1, n1, "srvr Node count == mntr zk_znode_count")
    main.delete(p("count"), recursive=True)
    n2, e2, _s = counts()
    eq((n2, e2), (n0, e0), "counts after delete")


@check("4lw conf clientPort")
def _():
    conf = {}
    for line in four_letter(b"conf").splitlines():
        if MODE != "standalone" and line == "membership: ":
            continue  # a member's conf heads its server.N lines with this, as ZooKeeper's does
        k, sep, v = line.partition("=")
        true(sep, "conf line is key=value: %r" % line)
        conf[k] = v
    eq(conf.get("clientPort"), str(PORT), "conf clientPort")
    for k in ("tickTime", "minSessionTimeout", "maxSessionTimeout", "maxClientCnxns"):
        true(re.match(r"^\d+$", conf.get(k, "")), "conf %s integer" % k)
    true(int(conf["minSessionTimeout"]) <= int(conf["maxSessionTimeout"]), "min <= max session timeout")


# --------------------------------------------------------------------------
# basic operations and stat bookkeeping
# --------------------------------------------------------------------------

@check("crud + exact stat fields")
def _():
    path = p("crud")
    eq(main.create(path, b"hello"), path, "create returns path")
    data, st = main.get(path)
    eq(data, b"hello", "data")
    true(isinstance(st, ZnodeStat), "stat type")
    eq((st.version, st.cversion, st.aversion, st.ephemeralOwner, st.dataLength, st.numChildren),
       (0, 0, 0, 0, 5, 0), "(version,cversion,aversion,ephemeralOwner,dataLength,numChildren)")
    eq((st.mzxid, st.pzxid), (st.czxid, st.czxid), "mzxid,pzxid == czxid on create")
    eq(st.mtime, st.ctime, "mtime == ctime on create")
    true(abs(st.ctime / 1000.0 - time.time()) < 300, "ctime is wall clock ms: %r" % st.ctime)
    st2 = main.set(path, b"hello world")
    eq((st2.version, st2.dataLength, st2.czxid), (1, 11, st.czxid), "(version,dataLength,czxid) after set")
    true(st2.mzxid > st.mzxid, "mzxid grows on set")
    eq(st2.pzxid, st.pzxid, "pzxid unchanged by set")
    true(st2.mtime >= st2.ctime, "mtime >= ctime")
    raises(BadVersionError, main.set, path, b"x", version=0)
    eq(main.set(path, b"", version=1).version, 2, "conditional set version")
    eq(main.get(path)[0], b"", "empty data")
    # null data (length -1 on the wire) is distinct from empty data
    main.create(p("nulldata"), None)
    data, nst = main.get(p("nulldata"))
    eq((data, nst.dataLength), (None, 0), "null data round trip")
    main.set(p("nulldata"), b"")
    eq(main.get(p("nulldata"))[0], b"", "empty data after set")
    main.set(p("nulldata"), None)
    eq(main.get(p("nulldata"))[0], None, "null data after set")
    main.delete(p("nulldata"))
    raises(NodeExistsError, main.create, path)
    raises(NoNodeError, main.get, p("missing"))
    raises(NoNodeError, main.create, p("missing", "child"))
    raises(NoNodeError, main.set, p("missing"), b"x")
    raises(NoNodeError, main.delete, p("missing"))
    eq(main.exists(p("missing")), None, "exists on missing node")
    # children bookkeeping on the parent
    c1 = main.create(path + "/c1")
    c2st = main.create(path + "/c2", b"zz", include_data=True)[1]
    children, pst = main.get_children(path, include_data=True)
    eq(sorted(children), ["c1", "c2"], "children")
    eq((pst.numChildren, pst.cversion, pst.version), (2, 2, 2), "(numChildren,cversion,version) of parent")
    eq(pst.pzxid, c2st.czxid, "parent pzxid == last child czxid")
    raises(NotEmptyError, main.delete, path)
    raises(BadVersionError, main.delete, c1, version=3)
    main.delete(c1, version=0)
    pst2 = main.exists(path)
    eq((pst2.numChildren, pst2.cversion), (1, 3), "(numChildren,cversion) after child delete")
    true(pst2.pzxid > c2st.czxid, "pzxid grows on child delete")
    eq(main.sync(path), path, "sync returns path")
    main.delete(path, recursive=True)
    eq(main.exists(path), None, "deleted")


@check("sequential node naming and cversion")
def _():
    base = p("seq")
    main.create(base)
    names = [main.create(base + "/n-", sequence=True) for _ in range(3)]
    eq(names, [base + "/n-0000000000", base + "/n-0000000001", base + "/n-0000000002"], "first sequence names")
    other = p("seq2")
    main.create(other)
    eq(main.create(other + "/", sequence=True), other + "/0000000000", "per-parent counter, empty prefix")

    # the suffix counts child creations; deletions bump the reported cversion
    # but not the sequence counter
    d = p("seqdel")
    main.create(d)

    def cv():
        return main.exists(d).cversion
    trace = []
    trace.append((main.create(d + "/a"), cv()))
    trace.append((main.create(d + "/s-", sequence=True), cv()))
    main.delete(d + "/a")
    trace.append(("del", cv()))
    trace.append((main.create(d + "/s-", sequence=True), cv()))
    main.delete(d + "/s-0000000001")
    main.delete(d + "/s-0000000002")
    trace.append(("del2", cv()))
    trace.append((main.create(d + "/s-", sequence=True), cv()))
    trace.append((main.create(d + "/s-", sequence=True, ephemeral=True), cv()))
    eq(trace, [(d + "/a", 1), (d + "/s-0000000001", 2), ("del", 3), (d + "/s-0000000002", 4),
               ("del2", 6), (d + "/s-0000000003", 7), (d + "/s-0000000004", 8)], "create/delete trace")
    eph = main.exists(d + "/s-0000000004")
    eq(eph.ephemeralOwner, main.client_id[0], "ephemeral sequential owner")
    raises(NoChildrenForEphemeralsError, main.create, d + "/s-0000000004/x")
    for x in (base, other, d):
        main.delete(x, recursive=True)


@check("ephemeral removed when owner stops, seen by other client")
def _():
    owner = new_client()
    path = p("eph")
    main.create(p("ephparent"))
    eq(owner.create(path, b"mine", ephemeral=True), path, "create ephemeral")
    st = main.exists(path)
    eq(st.ephemeralOwner, owner.client_id[0], "ephemeralOwner == owner's session id")
    true(owner.client_id[0] != main.client_id[0], "different sessions")
    eq(main.get(path)[0], b"mine", "data visible to other client")
    events = []
    got = threading.Event()

    def w(ev):
        events.append((ev.type, ev.path))
        got.set()
    main.exists(path, watch=w)
    child_events = []
    main.get_children(p("ephparent"), watch=lambda ev: child_events.append((ev.type, ev.path)))
    owner.create(p("ephparent", "e"), ephemeral=True)
    wait_until(lambda: child_events, "child watch on ephemeral creation")
    stop_client(owner)
    true(got.wait(TIMEOUT), "exists watch fired on session close")
    eq(events, [("DELETED", path)], "watch events")
    eq(main.exists(path), None, "ephemeral gone")
    eq(main.get_children(p("ephparent")), [], "ephemeral child gone")
    eq(child_events, [("CHILD", p("ephparent"))], "one-shot child watch fired once")
    main.delete(p("ephparent"))


@check("transactions: success result types")
def _():
    t = main.transaction()
    t.create(p("tx"), b"a")
    t.set_data(p("tx"), b"bb")
    t.check(p("tx"), 1)
    t.create(p("tx", "child"), b"c")
    t.delete(p("tx", "child"))
    res = t.commit()
    eq(len(res), 5, "result count")
    eq(type(res[0]), str, "create result type")
    eq(res[0], p("tx"), "create result")
    eq(type(res[1]), ZnodeStat, "set_data result type")
    eq((res[1].version, res[1].dataLength), (1, 2), "set_data stat")
    eq(res[2:], [True, p("tx", "child"), True], "check/create/delete results")
    eq(main.get(p("tx"))[0], b"bb", "data after txn")
    st = main.exists(p("tx"))
    eq((st.version, st.cversion, st.numChildren), (1, 2, 0), "stat after txn")
    # sequential create inside a transaction
    t = main.transaction()
    t.create(p("tx", "s-"), sequence=True)
    t.create(p("tx", "s-"), sequence=True)
    eq(t.commit(), [p("tx", "s-0000000001"), p("tx", "s-0000000002")], "sequential creates in txn")
    main.delete(p("tx"), recursive=True)


@check("transactions: failure result types, nothing applied")
def _():
    main.create(p("txf"), b"v")
    t = main.transaction()
    t.create(p("txf", "a"), b"a")
    t.check(p("txf"), 5)
    t.create(p("txf", "b"))
    res = t.commit()
    eq([type(r) for r in res], [RolledBackError, BadVersionError, RuntimeInconsistency], "failure types 1")
    eq(main.get_children(p("txf")), [], "nothing created")

    t = main.transaction()
    t.create(p("txf", "c"))
    t.create(p("txf", "c"))
    t.delete(p("txf", "missing"))
    res = t.commit()
    eq([type(r) for r in res], [RolledBackError, NodeExistsError, RuntimeInconsistency], "failure types 2")

    t = main.transaction()
    t.set_data(p("txf"), b"changed")
    t.delete(p("txf", "missing"))
    res = t.commit()
    eq([type(r) for r in res], [RolledBackError, NoNodeError], "failure types 3")
    data, st = main.get(p("txf"))
    eq((data, st.version, st.cversion), (b"v", 0, 0), "node untouched by failed txns")
    # the failed sequential creates must not consume sequence numbers
    t = main.transaction()
    t.create(p("txf", "s-"), sequence=True)
    t.check(p("txf"), 9)
    eq([type(r) for r in t.commit()], [RolledBackError, BadVersionError], "failure types 4")
    eq(main.create(p("txf", "s-"), sequence=True), p("txf", "s-0000000000"), "sequence not consumed")
    main.delete(p("txf"), recursive=True)


# --------------------------------------------------------------------------
# ACLs
# --------------------------------------------------------------------------

@check("ACL digest + add_auth")
def _():
    anon = new_client()
    path = p("acl")
    acl = make_digest_acl(USER, PASSWORD, all=True)
    eq(acl, ACL(31, Id("digest", "%s:%s" % (USER, digest(USER, PASSWORD)))), "make_digest_acl")
    anon.create(path, b"secret-data", acl=[acl])
    st = anon.exists(path)           # exists needs no permission
    eq((st.aversion, st.dataLength), (0, 11), "stat of protected node")
    raises(NoAuthError, anon.get, path)
    raises(NoAuthError, anon.get_acls, path)
    raises(NoAuthError, anon.get_children, path)
    raises(NoAuthError, anon.set, path, b"x")
    raises(NoAuthError, anon.create, path + "/child")

    wrong = new_client()
    wrong.add_auth("digest", "%s:wrong" % USER)   # digest auth is accepted, identity differs
    raises(NoAuthError, wrong.get, path)

    anon.add_auth("digest", "%s:%s" % (USER, PASSWORD))
    eq(anon.get(path)[0], b"secret-data", "data after add_auth")
    acls, st = anon.get_acls(path)
    eq(acls, [ACL(31, Id("digest", "alice:" + digest(USER, PASSWORD)))], "getAcl result")
    eq(st.aversion, 0, "aversion")
    anon.create(path + "/child")
    anon.delete(path + "/child")   # with a read-only parent ACL it could never be removed
    # change the ACL to world:anyone:r
    raises(BadVersionError, anon.set_acls, path, READ_ACL_UNSAFE, version=7)
    st2 = anon.set_acls(path, READ_ACL_UNSAFE, version=0)
    eq(st2.aversion, 1, "aversion after setAcl")
    eq(wrong.get(path)[0], b"secret-data", "world readable now")
    raises(NoAuthError, wrong.set, path, b"x")
    eq(wrong.get_acls(path)[0], [ACL(1, Id("world", "anyone"))], "read-only world ACL")

    # CREATOR_ALL_ACL: needs an authenticated identity
    nobody = new_client()
    raises(InvalidACLError, nobody.create, p("creator"), acl=CREATOR_ALL_ACL)
    anon.create(p("creator"), b"c", acl=CREATOR_ALL_ACL)
    eq(anon.get_acls(p("creator"))[0], [ACL(31, Id("digest", "alice:" + digest(USER, PASSWORD)))],
       "auth ACL expands to the digest identity")
    raises(NoAuthError, nobody.get, p("creator"))
    # the ACL of a node is independent of its parent's
    anon.create(p("creator", "kid"))
    eq(wrong.get_acls(p("creator", "kid"))[0], OPEN_ACL_UNSAFE, "child ACL default open")
    eq(wrong.get(p("creator", "kid"))[0], b"", "open child readable below protected parent")
    anon.delete(p("creator", "kid"))
    for c in (anon, wrong, nobody):
        stop_client(c)


# --------------------------------------------------------------------------
# raw one-shot watches
# --------------------------------------------------------------------------

@check("one-shot watches fire exactly once with exact events")
def _():
    path = p("w")
    log = []
    lock = threading.Lock()

    def rec(tag):
        def f(ev):
            with lock:
                log.append((tag, ev.type, ev.state, ev.path))
        return f
    eq(main.exists(path, watch=rec("exists")), None, "missing")
    main.create(path, b"0")
    wait_until(lambda: len(log) == 1, "NodeCreated")
    main.get(path, watch=rec("get"))
    main.get_children(path, watch=rec("children"))
    main.set(path, b"1")
    wait_until(lambda: len(log) == 2, "NodeDataChanged")
    main.set(path, b"2")               # no watch left: no event
    main.create(path + "/k")
    wait_until(lambda: len(log) == 3, "NodeChildrenChanged")
    main.get(path, watch=rec("get2"))
    main.exists(path + "/k", watch=rec("exists-k"))
    main.delete(path + "/k")
    wait_until(lambda: len(log) == 4, "NodeDeleted on child")
    main.delete(path)
    wait_until(lambda: len(log) == 5, "NodeDeleted")
    time.sleep(SETTLE)
    eq(log, [("exists", "CREATED", "CONNECTED", path),
             ("get", "CHANGED", "CONNECTED", path),
             ("children", "CHILD", "CONNECTED", path),
             ("exists-k", "DELETED", "CONNECTED", path + "/k"),
             ("get2", "DELETED", "CONNECTED", path)], "event log")


# --------------------------------------------------------------------------
# DataWatch / ChildrenWatch recipes
# --------------------------------------------------------------------------

@check("DataWatch sequence")
def _():
    path = p("dw")
    seen = []

    def cb(data, stat, event):
        seen.append((data, stat.version if stat else None, event.type if event else None))
    main.DataWatch(path, cb)
    wait_until(lambda: len(seen) == 1, "initial DataWatch call")
    main.create(path, b"v1")
    wait_until(lambda: len(seen) == 2, "DataWatch after create")
    main.set(path, b"v2")
    wait_until(lambda: len(seen) == 3, "DataWatch after set")
    main.set(path, b"v3")
    wait_until(lambda: len(seen) == 4, "DataWatch after second set")
    main.delete(path)
    wait_until(lambda: len(seen) == 5, "DataWatch after delete")
    main.create(path, b"again")
    wait_until(lambda: len(seen) == 6, "DataWatch after re-create")
    time.sleep(SETTLE)
    eq(seen, [(None, None, None), (b"v1", 0, "CREATED"), (b"v2", 1, "CHANGED"), (b"v3", 2, "CHANGED"),
              (None, None, "DELETED"), (b"again", 0, "CREATED")], "DataWatch observations")
    main.delete(path)


@check("ChildrenWatch sequence")
def _():
    path = p("cw")
    main.create(path)
    other = new_client()
    seen = []

    def cb(children, event):
        seen.append((sorted(children), event.type if event else None))
    main.ChildrenWatch(path, cb, send_event=True)
    wait_until(lambda: len(seen) == 1, "initial ChildrenWatch call")
    steps = [lambda: other.create(path + "/a"),
             lambda: other.create(path + "/b", b"data"),
             lambda: other.set(path + "/b", b"no child event"),
             lambda: other.delete(path + "/a"),
             lambda: other.create(path + "/c", ephemeral=True)]
    expect_len = [2, 3, 3, 4, 5]
    for step, n in zip(steps, expect_len):
        step()
        wait_until(lambda: len(seen) >= n, "ChildrenWatch reaching %d calls" % n)
    stop_client(other)                       # ephemeral c disappears
    wait_until(lambda: len(seen) >= 6, "ChildrenWatch after ephemeral removal")
    main.delete(path + "/b")
    wait_until(lambda: len(seen) >= 7, "ChildrenWatch after last delete")
    main.delete(path)                        # watch stops silently
    time.sleep(SETTLE)
    eq(seen, [([], None), (["a"], "CHILD"), (["a", "b"], "CHILD"), (["b"], "CHILD"),
              (["b", "c"], "CHILD"), (["b"], "CHILD"), ([], "CHILD")], "ChildrenWatch observations")


# --------------------------------------------------------------------------
# recipes
# --------------------------------------------------------------------------

def run_thread(fn, *args):
    t = threading.Thread(target=fn, args=args, daemon=True)
    t.start()
    return t


@check("Lock: mutual exclusion and FIFO order")
def _():
    path = p("lock")
    ca, cb, cc = new_client(), new_client(), new_client()
    la, lb, lc = ca.Lock(path, "A"), cb.Lock(path, "B"), cc.Lock(path, "C")
    state = {"inside": 0, "max": 0}
    order = []
    mu = threading.Lock()
    errors = []

    def critical(name):
        with mu:
            state["inside"] += 1
            state["max"] = max(state["max"], state["inside"])
            order.append(name)
        time.sleep(0.15)
        with mu:
            state["inside"] -= 1

    def contender(lock, name):
        try:
            if not lock.acquire(timeout=TIMEOUT * 2):
                errors.append("%s timed out" % name)
                return
            try:
                critical(name)
            finally:
                lock.release()
        except Exception as e:
            errors.append("%s: %r" % (name, e))

    true(la.acquire(timeout=TIMEOUT), "A acquires")
    probe = cb.Lock(path, "probe")
    eq(probe.acquire(blocking=False), False, "non-blocking acquire while held")
    raises(LockTimeout, probe.acquire, timeout=0.3)
    eq(la.contenders(), ["A"], "contenders after failed attempts")
    tb = run_thread(contender, lb, "B")
    wait_until(lambda: la.contenders() == ["A", "B"], "B queued")
    tc = run_thread(contender, lc, "C")
    wait_until(lambda: la.contenders() == ["A", "B", "C"], "C queued")
    time.sleep(SETTLE)
    eq(order, [], "nobody enters while A holds the lock")
    critical("A")
    la.release()
    tb.join(TIMEOUT * 2)
    tc.join(TIMEOUT * 2)
    true(not tb.is_alive() and not tc.is_alive(), "contenders finished")
    eq(errors, [], "contender errors")
    eq(order, ["A", "B", "C"], "lock order")
    eq(state["max"], 1, "max holders at once")
    eq(la.contenders(), [], "no contenders left")

    # a lock held by a session is released when that session closes
    cd = new_client()
    ld = cd.Lock(path, "D")
    true(la.acquire(timeout=TIMEOUT), "A re-acquires")
    got = []
    td = run_thread(lambda: got.append(ld.acquire(timeout=TIMEOUT * 2)))
    wait_until(lambda: ld.contenders() == ["A", "D"], "D queued")
    stop_client(ca)
    td.join(TIMEOUT * 2)
    eq(got, [True], "D acquires after A's session closed")
    eq(ld.contenders(), ["D"], "contenders after A left")
    ld.release()
    for c in (cb, cc, cd):
        stop_client(c)


@check("Election: leader changes when the first leaves")
def _():
    path = p("election")
    c1, c2 = new_client(), new_client()
    e1, e2 = c1.Election(path, "cand-1"), c2.Election(path, "cand-2")
    leaders = []
    release = threading.Event()

    def lead(name):
        leaders.append(name)
        release.wait(TIMEOUT * 3)

    def runner(e, name):
        try:
            e.run(lead, name)
        except Exception:
            pass   # cand-1's client is closed under it on purpose

    t1 = run_thread(runner, e1, "cand-1")
    wait_until(lambda: leaders == ["cand-1"], "cand-1 elected")
    t2 = run_thread(runner, e2, "cand-2")
    wait_until(lambda: e2.contenders() == ["cand-1", "cand-2"], "both contenders")
    time.sleep(SETTLE)
    eq(leaders, ["cand-1"], "still only cand-1 leads")
    stop_client(c1)                     # the leader leaves
    wait_until(lambda: leaders == ["cand-1", "cand-2"], "cand-2 elected")
    eq(e2.contenders(), ["cand-2"], "contenders after leader left")
    release.set()
    t1.join(TIMEOUT)
    t2.join(TIMEOUT)
    true(not t2.is_alive(), "cand-2 finished")
    eq(main.get_children(path), [], "election path empty")
    stop_client(c2)


@check("Counter: concurrent increments")
def _():
    path = p("counter")
    clients = [new_client() for _ in range(4)]
    eq(main.Counter(path).value, 0, "initial value")
    errors = []

    def worker(c):
        try:
            cnt = c.Counter(path)
            for _ in range(25):
                cnt += 1
        except Exception as e:
            errors.append(repr(e))
    ts = [run_thread(worker, c) for c in clients]
    for t in ts:
        t.join(TIMEOUT * 4)
    true(not any(t.is_alive() for t in ts), "workers finished")
    eq(errors, [], "worker errors")
    cnt = main.Counter(path)
    eq(cnt.value, 100, "sum of increments")
    cnt -= 10
    eq(cnt.value, 90, "after decrement")
    data, st = main.get(path)
    eq(data, b"90", "stored representation")
    eq(st.version, 101, "one successful versioned write per change")
    for c in clients:
        stop_client(c)


@check("Barrier")
def _():
    path = p("barrier")
    other = new_client()
    b_main, b_other = main.Barrier(path), other.Barrier(path)
    eq(b_other.wait(timeout=0.5), True, "wait without barrier returns immediately")
    b_main.create()
    eq(b_other.wait(timeout=0.3), False, "wait times out while barrier exists")
    result = []
    t = run_thread(lambda: result.append(b_other.wait(timeout=TIMEOUT)))
    time.sleep(SETTLE)
    eq(result, [], "waiter still blocked")
    eq(b_main.remove(), True, "remove")
    t.join(TIMEOUT)
    eq(result, [True], "waiter released")
    eq(b_main.remove(), False, "second remove")
    stop_client(other)


@check("DoubleBarrier")
def _():
    path = p("dbarrier")
    clients = [new_client() for _ in range(3)]
    log = []
    mu = threading.Lock()
    go = threading.Event()

    def rec(x):
        with mu:
            log.append(x)

    def member(i):
        db = clients[i].DoubleBarrier(path, 3, identifier="m%d" % i)
        rec(("call-enter", i))
        db.enter()
        rec(("entered", i))
        go.wait(TIMEOUT * 2)
        db.leave()
        rec(("left", i))

    t0 = run_thread(member, 0)
    t1 = run_thread(member, 1)
    wait_until(lambda: len(main.get_children(path)) == 2 if main.exists(path) else False,
               "two members registered")
    time.sleep(SETTLE)
    eq(sorted(x for x in log if x[0] == "entered"), [], "nobody entered with 2 of 3")
    t2 = run_thread(member, 2)
    wait_until(lambda: sum(1 for x in log if x[0] == "entered") == 3, "all entered")
    calls = [i for i, x in enumerate(log) if x[0] == "call-enter"]
    entered = [i for i, x in enumerate(log) if x[0] == "entered"]
    true(max(calls) < min(entered), "all enter() calls precede every entry: %r" % log)
    kids = main.get_children(path)
    true("ready" in kids, "ready node created: %r" % kids)
    eq(sorted(main.get(path + "/" + c)[0] for c in kids if c != "ready"), [b"m0", b"m1", b"m2"],
       "member node data")
    go.set()
    for t in (t0, t1, t2):
        t.join(TIMEOUT * 2)
    eq(sorted(x for x in log if x[0] == "left"), [("left", 0), ("left", 1), ("left", 2)], "all left")
    eq([c for c in main.get_children(path) if c != "ready"], [], "members removed")
    for c in clients:
        stop_client(c)


@check("Queue: FIFO within priority")
def _():
    path = p("queue")
    producer, consumer = new_client(), new_client()
    qp, qc = producer.Queue(path), consumer.Queue(path)
    for v in (b"one", b"two", b"three"):
        qp.put(v)
    qp.put(b"urgent", priority=1)
    qp.put(b"low", priority=999)
    qp.put(b"four")
    eq(len(qc), 6, "queue length")
    got = [qc.get() for _ in range(6)]
    eq(got, [b"urgent", b"one", b"two", b"three", b"four", b"low"], "dequeue order")
    eq(qc.get(), None, "empty queue get")
    eq(len(qp), 0, "queue length after drain")
    # names are priority-prefixed sequential nodes
    qp.put(b"x", priority=42)
    eq(main.get_children(path), ["entry-042-0000000006"], "queue node name")
    eq(qc.get(), b"x", "last")
    stop_client(producer)
    stop_client(consumer)


@check("LockingQueue: FIFO, locking, consume/release")
def _():
    path = p("lqueue")
    c1, c2 = new_client(), new_client()
    q1, q2 = c1.LockingQueue(path), c2.LockingQueue(path)
    q1.put_all([b"a", b"b", b"c"])
    q1.put(b"first", priority=1)
    eq(len(q2), 4, "length")
    eq(q1.get(timeout=TIMEOUT), b"first", "q1 takes highest priority")
    eq(q1.holds_lock(), True, "q1 holds lock")
    eq(q2.get(timeout=TIMEOUT), b"a", "q2 skips the locked item")
    eq(q1.consume(), True, "consume first")
    eq(q2.release(), True, "q2 releases a")
    eq(q1.get(timeout=TIMEOUT), b"a", "released item is available again, in order")
    eq(q1.consume(), True, "consume a")
    eq(q2.get(timeout=TIMEOUT), b"b", "next")
    eq(q2.consume(), True, "consume b")
    eq(q1.get(timeout=TIMEOUT), b"c", "next")
    eq(q1.consume(), True, "consume c")
    eq(len(q2), 0, "length after consume")
    eq(q2.get(timeout=0.3), None, "timed get on empty queue")
    # blocking get woken by a put from another client
    got = []
    t = run_thread(lambda: got.append(q2.get(timeout=TIMEOUT)))
    time.sleep(SETTLE)
    eq(got, [], "consumer blocked")
    q1.put(b"late")
    t.join(TIMEOUT)
    eq(got, [b"late"], "consumer woken by put")
    eq(q2.consume(), True, "consume late")
    stop_client(c1)
    stop_client(c2)


# --------------------------------------------------------------------------
# teardown
# --------------------------------------------------------------------------

@check("cleanup")
def _():
    cleanup()
    eq(main.exists(ROOT), None, "root removed")


for c in list(CLIENTS):
    stop_client(c)
_wd.cancel()
print("elapsed %.1fs" % (time.time() - SUITE_T0))
if FAILED:
    print("failed checks: %s" % ", ".join(FAILED_NAMES))
print("%d passed, %d failed" % (PASSED, FAILED))
sys.exit(1 if FAILED else 0)
