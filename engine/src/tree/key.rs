//! Skip-list keys: a node's path as `parent + "\0" + name` (the root's key is
//! empty). Paths cannot contain NUL and NUL sorts before every other character,
//! so the children of a node are one contiguous key range, in name order.
//!
//! A [`Key`] is a thin pointer to one allocation holding the length and the
//! bytes: 8 bytes inside every skip-list node instead of a `Box<str>`'s 16.

use std::alloc::{self, Layout};
use std::borrow::Borrow;
use std::cell::RefCell;
use std::cmp::Ordering;
use std::ptr::NonNull;

use crate::path;

/// An immutable key string behind a thin pointer.
pub struct Key(NonNull<u32>);

// SAFETY: a key is never changed after it is built and owns its allocation.
unsafe impl Send for Key {}
unsafe impl Sync for Key {}

fn layout(len: usize) -> Layout {
    Layout::from_size_align(4 + len, 4).expect("path lengths fit a layout")
}

impl Key {
    /// The key of `path`, allocated at its exact length.
    pub fn of(path: &str) -> Key {
        with_key(path, |k| {
            let len = u32::try_from(k.len()).expect("paths are shorter than 4 GiB");
            let layout = layout(k.len());
            // SAFETY: the layout is non-zero; the length goes into the first 4
            // bytes and the key's bytes into the `len` after them.
            unsafe {
                let Some(at) = NonNull::new(alloc::alloc(layout).cast::<u32>()) else {
                    alloc::handle_alloc_error(layout)
                };
                at.as_ptr().write(len);
                std::ptr::copy_nonoverlapping(k.as_ptr(), at.as_ptr().add(1).cast(), k.len());
                Key(at)
            }
        })
    }

    pub fn as_str(&self) -> &str {
        // SAFETY: `of` wrote a length and that many bytes of a `str`.
        unsafe {
            let len = self.0.as_ptr().read() as usize;
            let bytes = std::slice::from_raw_parts(self.0.as_ptr().add(1).cast::<u8>(), len);
            std::str::from_utf8_unchecked(bytes)
        }
    }
}

impl Drop for Key {
    fn drop(&mut self) {
        let len = self.as_str().len();
        // SAFETY: allocated by `of` with this layout; this is its only owner.
        unsafe { alloc::dealloc(self.0.as_ptr().cast(), layout(len)) }
    }
}

impl Borrow<str> for Key {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Key {}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Key) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Ordered as the strings are, as `Borrow<str>` requires.
impl Ord for Key {
    fn cmp(&self, other: &Key) -> Ordering {
        self.as_str().cmp(other.as_str())
    }
}

thread_local! {
    /// Scratch buffer for building keys, so lookups do not allocate.
    static KEY: RefCell<String> = const { RefCell::new(String::new()) };
}

fn write_key(path: &str, out: &mut String) {
    out.clear();
    if path != "/" {
        out.push_str(path::parent(path));
        out.push('\0');
        out.push_str(path::name(path));
    }
}

/// The path a key stands for (the inverse of `write_key`).
pub fn path_of_key(key: &str, out: &mut String) {
    out.clear();
    match key.split_once('\0') {
        None => out.push('/'),
        Some(("/", name)) => {
            out.push('/');
            out.push_str(name);
        }
        Some((parent, name)) => {
            out.push_str(parent);
            out.push('/');
            out.push_str(name);
        }
    }
}

/// Runs `f` on `path`'s key, built in a thread-local buffer (no allocation).
pub fn with_key<R>(path: &str, f: impl FnOnce(&str) -> R) -> R {
    KEY.with(|k| {
        let mut k = k.borrow_mut();
        write_key(path, &mut k);
        f(&k)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_hold_the_parent_then_the_name_and_order_as_strings() {
        let mut keys: Vec<Key> = ["/a/b", "/", "/a", "/a-", "/zookeeper/quota"]
            .into_iter()
            .map(Key::of)
            .collect();
        keys.sort();
        let strs: Vec<&str> = keys.iter().map(Key::as_str).collect();
        assert_eq!(strs, ["", "/\0a", "/\0a-", "/a\0b", "/zookeeper\0quota"]);
        let mut path = String::new();
        for (key, want) in keys
            .iter()
            .zip(["/", "/a", "/a-", "/a/b", "/zookeeper/quota"])
        {
            path_of_key(key.as_str(), &mut path);
            assert_eq!(path, want);
        }
    }
}
