//! Which CPUs threads run on: the mask the process was started with, which
//! shards are pinned within, and which threads started from a pinned shard
//! get back, so that background work (a snapshot) is not tied to one core.

/// The CPUs this thread may run on, in order: its affinity mask, which
/// `taskset`, `numactl` or a cgroup's cpuset sets. Shards are pinned among
/// these only; CPU numbers from 0 would escape the mask (or fail in a cpuset).
pub fn allowed() -> Vec<usize> {
    // SAFETY: an all-zero cpu_set_t is a valid empty set; sched_getaffinity
    // writes at most the size it is given, and CPU_ISSET reads within it.
    let mask = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        (libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) == 0)
            .then_some(set)
    };
    let cpus: Vec<usize> = mask.map_or_else(Vec::new, |set| {
        (0..libc::CPU_SETSIZE as usize)
            // SAFETY: cpu is below CPU_SETSIZE, within the set.
            .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
            .collect()
    });
    if cpus.is_empty() {
        (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect()
    } else {
        cpus
    }
}

/// Lets the calling thread run on any of `cpus` (ignored if that fails: the
/// thread then keeps its creator's mask).
pub fn allow(cpus: &[usize]) {
    // SAFETY: an all-zero cpu_set_t is a valid empty set; CPU_SET writes
    // within it for cpus below CPU_SETSIZE; sched_setaffinity reads the size
    // it is given.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &cpu in cpus.iter().filter(|&&c| c < libc::CPU_SETSIZE as usize) {
            libc::CPU_SET(cpu, &mut set);
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}
