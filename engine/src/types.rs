//! Identifiers shared by every layer.

/// A transaction id: `epoch << 32 | counter`. Totally orders all writes.
pub type Zxid = i64;

/// A session id as ZooKeeper assigns it (server id in the top byte).
pub type SessionId = i64;

/// Milliseconds since the Unix epoch, as ZooKeeper stores ctime and mtime.
pub type TimeMs = i64;

/// Current wall-clock time in milliseconds.
pub fn now_ms() -> TimeMs {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
