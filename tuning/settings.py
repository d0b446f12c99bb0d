"""The Linux settings that matter for herd's latency and throughput: one table
read by `check` (report), `apply` (set, and undo) and `measure` (before/after
with herd-bench). README.md explains each one at length.

A setting is a file under /proc/sys or /sys (or a glob of them, one per CPU or
device), the value herd wants there, why, and whether it can be set at
runtime. Values in sysfs files that list choices (`always [madvise] never`)
are read as the bracketed one. A setting whose file is absent does not apply
to this machine (no cpufreq in a VM, no haltpoll outside KVM) and is reported
so, never guessed.
"""

import glob
import os
import platform
import re


class Setting:
    def __init__(self, name, paths, want, why, runtime=True, ok=None):
        self.name = name
        self.paths = paths          # a glob, or a function of dataLogDir giving one
        self.want = want            # the value apply writes
        self.why = why
        self.runtime = runtime      # apply writes it
        self.ok = ok or (lambda v: v == want)   # whether a current value is fine

    def files(self, data_log_dir="."):
        pattern = self.paths(data_log_dir) if callable(self.paths) else self.paths
        return sorted(glob.glob(pattern)) if pattern else []


def read(path):
    """A setting file's value: the chosen entry of a `a [b] c` list, else its text."""
    with open(path) as f:
        text = f.read().strip()
    chosen = re.search(r"\[([^\]]+)\]", text)
    return chosen.group(1) if chosen else text


def write(path, value):
    with open(path, "w") as f:
        f.write(str(value))


def at_least(n):
    return lambda v: v.lstrip("-").isdigit() and int(v) >= n


def at_most(n):
    return lambda v: v.lstrip("-").isdigit() and int(v) <= n


def block_device(directory):
    """The sysfs queue directory of the disk holding `directory` (its whole disk,
    not the partition), or None (tmpfs, overlay without a device)."""
    try:
        st = os.stat(directory)
    except OSError:
        return None
    dev = f"/sys/dev/block/{os.major(st.st_dev)}:{os.minor(st.st_dev)}"
    if not os.path.exists(dev):
        return None
    real = os.path.realpath(dev)
    if os.path.exists(os.path.join(real, "partition")):
        real = os.path.dirname(real)
    return os.path.join(real, "queue")


def scheduler_file(d):
    q = block_device(d)
    return os.path.join(q, "scheduler") if q else None


SETTINGS = [
    Setting("cpu frequency governor", "/sys/devices/system/cpu/cpu*/cpufreq/scaling_governor",
            "performance",
            "a core clocked down takes longer to answer the first requests of a burst"),
    Setting("halt polling before a vCPU sleeps (ns)",
            "/sys/module/haltpoll/parameters/guest_halt_poll_ns", "200000",
            "in a KVM guest, an idle vCPU that polls a little before halting wakes for the "
            "next request without a round trip through the hypervisor",
            ok=at_least(50000)),
    Setting("transparent huge pages", "/sys/kernel/mm/transparent_hugepage/enabled", "madvise",
            "'always' lets khugepaged compact and collapse pages under the tree and the "
            "connection buffers, stalling shard threads; herd does not ask for huge pages",
            ok=lambda v: v in ("madvise", "never")),
    Setting("transparent huge page defrag", "/sys/kernel/mm/transparent_hugepage/defrag",
            "madvise", "direct compaction on a page fault stalls the faulting thread for "
            "milliseconds", ok=lambda v: v in ("madvise", "defer+madvise", "defer", "never")),
    Setting("vm.swappiness", "/proc/sys/vm/swappiness", "1",
            "the tree must stay in memory: a swapped-out znode turns a read into a disk read",
            ok=at_most(10)),
    Setting("vm.zone_reclaim_mode", "/proc/sys/vm/zone_reclaim_mode", "0",
            "reclaiming a node's page cache before using another node's memory adds latency"),
    Setting("kernel.numa_balancing", "/proc/sys/kernel/numa_balancing", "0",
            "NUMA balancing unmaps pages to sample access, a page fault on a shard thread "
            "each time; shards are pinned already"),
    Setting("net.core.somaxconn", "/proc/sys/net/core/somaxconn", "4096",
            "after a fail-over every client reconnects at once; a short accept queue drops "
            "SYNs and costs a retransmit (1 s or more)", ok=at_least(4096)),
    Setting("net.ipv4.tcp_max_syn_backlog", "/proc/sys/net/ipv4/tcp_max_syn_backlog", "4096",
            "the half-open queue for the same reconnect storm", ok=at_least(4096)),
    Setting("net.ipv4.tcp_slow_start_after_idle", "/proc/sys/net/ipv4/tcp_slow_start_after_idle",
            "0", "an idle follower link or client connection restarts from a small window, "
            "slowing the first burst of proposals or replies after a pause"),
    Setting("net.core.rmem_max", "/proc/sys/net/core/rmem_max", "16777216",
            "lets a member's quorum socket grow its buffer for a snapshot sent by SNAP",
            ok=at_least(4194304)),
    Setting("net.core.wmem_max", "/proc/sys/net/core/wmem_max", "16777216",
            "the sending side of the same", ok=at_least(4194304)),
    Setting("net.core.busy_read (µs)", "/proc/sys/net/core/busy_read", "0",
            "busy polling a NIC queue trades a core's time for latency; worth it only on "
            "cores herd does not use and a NIC with NAPI (it does nothing on loopback); "
            "apply leaves it to you", runtime=False, ok=lambda v: True),
    Setting("I/O scheduler of the dataLogDir disk", scheduler_file, "none",
            "on an SSD or NVMe device the scheduler only adds queueing in front of the "
            "log's fdatasync; keep mq-deadline on a spinning disk",
            ok=lambda v: v in ("none", "mq-deadline")),
    Setting("isolcpus / nohz_full on the kernel command line", None, "",
            "herd's shards as the only thing on their cores: boot with isolcpus= and "
            "nohz_full= naming them, then taskset herd onto them", runtime=False),
]


def boot_cpu_isolation():
    with open("/proc/cmdline") as f:
        words = f.read().split()
    found = [w for w in words if w.split("=")[0] in ("isolcpus", "nohz_full", "rcu_nocbs")]
    return " ".join(found) or "none"


def refuse_unless_linux():
    if platform.system() != "Linux":
        raise SystemExit(f"herd's tuning kit reads Linux's /proc and /sys; this is "
                         f"{platform.system()}: nothing to check or change here")
