#!/usr/bin/env python3
"""3-member ensembles, of herd or of Apache ZooKeeper, on 127.0.0.1, .2 and .3.

    Ensemble(command, work_dir, extra_cfg="", tick_ms=2000)

starts three members (ports picked free, one zoo.cfg and myid each, with
extra_cfg appended to every zoo.cfg); command(cfg_path) gives the argv of a
member: herd(bin) or ZOOKEEPER (Debian's package, run as QuorumPeerMain).
kill(i) sends SIGKILL, start(i) starts a member again on its data directory,
settled() waits until one leads and the running others follow and returns the
leader's index, stop() kills every member still running. Every wait is bounded
by WAIT_S. bench/failover and the cross-client ensemble suites use it.

    herd_ensemble.py HERD_BIN CMD [ARG...]

starts a herd ensemble (with the container and TTL settings of the standalone
cross-client run), waits for it to settle and runs CMD with {follower} and
{hosts} in its arguments replaced by a follower's address and the 3-host
connect string, and KAZOO_SUITE_MODE=follower in its environment; CMD may
ask for members to be killed and started again (see control()). Exits with
CMD's status, after stopping every member.
"""

import itertools
import os
import signal
import socket
import shutil
import subprocess
import sys
import tempfile
import time

WAIT_S = 60
ZK_CP = "/etc/zookeeper/conf:/usr/share/java/*"


def herd(binary):
    return lambda cfg: [binary, "--config", cfg]


def ZOOKEEPER(cfg):
    return ["java", "-Xms512m", "-Xmx512m", "-cp", ZK_CP,
            "org.apache.zookeeper.server.quorum.QuorumPeerMain", cfg]


# Ports for servers started later come from below the kernel's ephemeral
# range (32768 and up), so no port-0 bind or outgoing connection meanwhile can
# take one before its server binds it; a counter keeps this process's apart.
_LOW, _SPAN = 16384, 16384
_next_port = itertools.count(os.getpid() % _SPAN)


def free_port(ip):
    for _ in range(_SPAN):
        port = _LOW + next(_next_port) % _SPAN
        with socket.socket() as s:
            try:
                s.bind((ip, port))
            except OSError:
                continue
        return port
    raise RuntimeError(f"no free port on {ip} below the ephemeral range")


def four_letter(addr, word):
    """The whole answer to a four-letter word, or "" when the member does not answer."""
    host, port = addr.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=1) as s:
            s.settimeout(2)
            s.sendall(word.encode())
            out = b""
            while True:
                b = s.recv(65536)
                if not b:
                    break
                out += b
    except OSError:
        return ""
    return out.decode(errors="replace")


def mode(addr):
    for line in four_letter(addr, "srvr").splitlines():
        if line.startswith("Mode: "):
            return line[6:].strip()
    return None


class Ensemble:
    def __init__(self, command, work, extra_cfg="", tick_ms=2000):
        self.command, self.work = command, work
        ips = [f"127.0.0.{i}" for i in (1, 2, 3)]
        self.addrs = [f"{ip}:{free_port(ip)}" for ip in ips]
        servers = "".join(
            f"server.{i + 1}={ip}:{free_port(ip)}:{free_port(ip)}\n" for i, ip in enumerate(ips)
        )
        self.procs = [None] * 3
        for i, ip in enumerate(ips):
            d = self.dir(i)
            os.makedirs(d)
            with open(os.path.join(d, "myid"), "w") as f:
                f.write(f"{i + 1}\n")
            port = self.addrs[i].rsplit(":", 1)[1]
            with open(os.path.join(d, "zoo.cfg"), "w") as f:
                f.write(f"tickTime={tick_ms}\ninitLimit=10\nsyncLimit=5\ndataDir={d}\n"
                        f"clientPort={port}\nclientPortAddress={ip}\nforceSync=yes\n"
                        "maxClientCnxns=0\n4lw.commands.whitelist=*\nadmin.enableServer=false\n"
                        f"{extra_cfg}{servers}")
            self.start(i)

    def dir(self, i):
        return os.path.join(self.work, f"m{i + 1}")

    def start(self, i):
        log = open(os.path.join(self.dir(i), "server.log"), "a")
        self.procs[i] = subprocess.Popen(self.command(os.path.join(self.dir(i), "zoo.cfg")),
                                         stdout=log, stderr=subprocess.STDOUT)

    def kill(self, i):
        self.procs[i].send_signal(signal.SIGKILL)
        self.procs[i].wait()
        self.procs[i] = None

    def settled(self):
        deadline = time.time() + WAIT_S
        while time.time() < deadline:
            modes = [mode(a) if p else None for a, p in zip(self.addrs, self.procs)]
            running = [m for m, p in zip(modes, self.procs) if p]
            if running.count("leader") == 1 and set(running) <= {"leader", "follower"}:
                return modes.index("leader")
            time.sleep(0.05)
        raise AssertionError(f"ensemble not settled within {WAIT_S} s: {modes}")

    def stop(self):
        for i, p in enumerate(self.procs):
            if p:
                self.kill(i)

    def logs(self):
        out = []
        for i in range(3):
            try:
                with open(os.path.join(self.dir(i), "server.log")) as f:
                    out.append(f"--- member {i + 1}\n" + f.read()[-3000:])
            except OSError:
                pass
        return "\n".join(out)


def wait_for(what, cond):
    deadline = time.time() + WAIT_S
    while not cond():
        if time.time() > deadline:
            raise AssertionError(f"not within {WAIT_S} s: {what}")
        time.sleep(0.02)



def control(ens, proc):
    """Serve CMD's requests until it exits: a stdout line "herd_ensemble: kill
    ADDR" (or "kill leader") SIGKILLs that member and answers "ok ADDR" on CMD's
    stdin; "herd_ensemble: start ADDR" starts it again and answers "ok ADDR" once
    the ensemble has settled; "herd_ensemble: find leader" answers "ok ADDR" with
    the leader's address. Every other line is passed on to our stdout."""
    for line in proc.stdout:
        if not line.startswith("herd_ensemble: "):
            sys.stdout.write(line)
            sys.stdout.flush()
            continue
        verb, _, arg = line.strip().partition(": ")[2].partition(" ")
        if arg == "leader":
            arg = next(a for a, p in zip(ens.addrs, ens.procs) if p and mode(a) == "leader")
        i = ens.addrs.index(arg)
        if verb == "kill":
            ens.kill(i)
        elif verb == "find":
            pass
        elif verb == "start":
            ens.start(i)
            ens.settled()
        else:
            raise AssertionError(f"unknown request {line!r}")
        print(f"herd_ensemble: {verb} {arg}: done", flush=True)
        proc.stdin.write(f"ok {arg}\n")
        proc.stdin.flush()
    return proc.wait()


def main():
    binary, cmd = sys.argv[1], sys.argv[2:]
    work = tempfile.mkdtemp(prefix="herd-ensemble.")
    ens = Ensemble(herd(binary), work, "zookeeper.extendedTypesEnabled=true\n"
                   "znode.container.checkIntervalMs=1000\n")
    rc, proc = 1, None
    try:
        ens.settled()
        follower = next(a for a in ens.addrs if mode(a) == "follower")
        hosts = ",".join(ens.addrs)
        args = [a.replace("{follower}", follower).replace("{hosts}", hosts) for a in cmd]
        print(f"herd_ensemble: members {hosts}, running against follower {follower}", flush=True)
        proc = subprocess.Popen(args, env=dict(os.environ, KAZOO_SUITE_MODE="follower"),
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        rc = control(ens, proc)
    finally:
        if proc and proc.poll() is None:
            proc.kill()
            proc.wait()
        ens.stop()
        if rc != 0:
            print(ens.logs(), file=sys.stderr)
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(rc)


if __name__ == "__main__":
    main()
