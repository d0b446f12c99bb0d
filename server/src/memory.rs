//! Handing freed memory back to the operating system after a large, short-lived
//! allocation: a snapshot being encoded, the tree being rebuilt at start-up.
//!
//! The `herd` binary allocates with mimalloc, which returns freed pages lazily,
//! as later allocations pass by; an idle server would otherwise keep a
//! snapshot's worth of scratch memory resident.

/// Returns every page mimalloc holds but no longer hands out. Costs a walk of
/// the allocator's free lists: call it after bulk work, never per request.
pub fn release_freed() {
    // SAFETY: mi_collect only gives up memory no live allocation uses, from any
    // thread; with another global allocator it finds nothing to release.
    unsafe { libmimalloc_sys::mi_collect(true) }
}
