//! A shard's inbox from the pipeline thread: a plain mpsc queue plus a doorbell,
//! one byte on a socket pair, rung only when the shard is about to sleep. The
//! shard waits on the socket through io_uring like on any other I/O, so the
//! pipeline never wakes a glommio task from its own thread (glommio's
//! cross-thread wakes do not keep up with one per message under load).
//!
//! No lost wake-up: the shard arms the bell, then looks at the queue once more
//! before sleeping; the pipeline queues first, then rings if the bell is armed.

use std::io::{self, Write as _};
use std::os::fd::{FromRawFd, IntoRawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::mpsc::{self, TryRecvError};
use std::sync::Arc;

use futures_lite::AsyncReadExt;

use crate::message::ToShard;

/// The pipeline's end.
pub struct InboxSender {
    queue: mpsc::Sender<Vec<ToShard>>,
    armed: Arc<AtomicBool>,
    bell: UnixStream,
}

/// The shard's end, before it reaches the shard's thread.
pub struct InboxReceiver {
    queue: mpsc::Receiver<Vec<ToShard>>,
    armed: Arc<AtomicBool>,
    bell: UnixStream,
}

/// The shard's end on its executor.
pub struct ShardInbox {
    queue: mpsc::Receiver<Vec<ToShard>>,
    armed: Arc<AtomicBool>,
    bell: glommio::net::UnixStream,
}

pub fn inbox() -> io::Result<(InboxSender, InboxReceiver)> {
    let (queue_tx, queue_rx) = mpsc::channel();
    let (ring, listen) = UnixStream::pair()?;
    ring.set_nonblocking(true)?;
    let armed = Arc::new(AtomicBool::new(false));
    Ok((
        InboxSender {
            queue: queue_tx,
            armed: armed.clone(),
            bell: ring,
        },
        InboxReceiver {
            queue: queue_rx,
            armed,
            bell: listen,
        },
    ))
}

impl InboxSender {
    /// Queues a batch for the shard; false once the shard is gone.
    pub fn send(&self, batch: Vec<ToShard>) -> bool {
        let sent = self.queue.send(batch).is_ok();
        if self.armed.swap(false, SeqCst) {
            // A full socket buffer already holds a ring: nothing is lost.
            let _ = (&self.bell).write(&[1]);
        }
        sent
    }
}

impl Drop for InboxSender {
    fn drop(&mut self) {
        // Wake the shard so it sees the queue closed.
        let _ = self.bell.shutdown(std::net::Shutdown::Both);
    }
}

impl InboxReceiver {
    /// Moves the receiving end onto the calling glommio executor.
    pub fn listen(self) -> ShardInbox {
        // SAFETY: the descriptor comes from a socket we own and hand over whole
        // (into_raw_fd), so glommio's stream becomes its only owner.
        let bell = unsafe { glommio::net::UnixStream::from_raw_fd(self.bell.into_raw_fd()) };
        ShardInbox {
            queue: self.queue,
            armed: self.armed,
            bell,
        }
    }
}

impl ShardInbox {
    /// The next batch, waiting if there is none; `None` once the pipeline is gone.
    /// Call from the shard's executor.
    pub async fn recv(&mut self) -> Option<Vec<ToShard>> {
        let mut rung = [0u8; 64];
        loop {
            match self.queue.try_recv() {
                Ok(batch) => return Some(batch),
                Err(TryRecvError::Disconnected) => return None,
                Err(TryRecvError::Empty) => {}
            }
            self.armed.store(true, SeqCst);
            match self.queue.try_recv() {
                Ok(batch) => {
                    self.armed.store(false, SeqCst);
                    return Some(batch);
                }
                Err(TryRecvError::Disconnected) => return None,
                Err(TryRecvError::Empty) => {}
            }
            match self.bell.read(&mut rung).await {
                Ok(n) if n > 0 => {}
                // The pipeline is gone: drain what it left, then stop.
                _ => return self.queue.try_recv().ok(),
            }
        }
    }
}
