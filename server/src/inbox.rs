//! An inbox on a shard's executor for messages from other threads: a plain
//! mpsc queue plus a doorbell, one byte on a socket pair, rung only when the
//! shard is about to sleep. The shard waits on the socket through io_uring like
//! on any other I/O, so no other thread wakes a glommio task (glommio's
//! cross-thread wakes do not keep up with one per message under load).
//!
//! Each shard has one for what the pipeline sends it; the pipeline has one
//! for what other threads send it when it runs on a shard (standalone), and
//! receives the queue alone, blocking, when it has a thread of its own.
//!
//! No lost wake-up: the shard arms the bell, then looks at the queue once more
//! before sleeping; a sender queues first, then rings if the bell is armed.

use std::io::{self, Write as _};
use std::os::fd::{FromRawFd, IntoRawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::mpsc::{self, TryRecvError};
use std::sync::Arc;

use futures_lite::AsyncReadExt;

use crate::message::ToShard;

/// The senders' end; clones share one bell.
pub struct InboxSender<T> {
    queue: mpsc::Sender<T>,
    bell: Arc<Bell>,
}

/// The bell's ringing end, shut when the last sender is gone.
struct Bell {
    armed: Arc<AtomicBool>,
    ring: UnixStream,
}

/// The receiving end, before it reaches the shard's thread.
pub struct InboxReceiver<T> {
    queue: mpsc::Receiver<T>,
    armed: Arc<AtomicBool>,
    bell: UnixStream,
}

/// The receiving end on a shard's executor.
pub struct ShardInbox<T> {
    queue: mpsc::Receiver<T>,
    armed: Arc<AtomicBool>,
    bell: glommio::net::UnixStream,
}

/// A shard's inbox from the pipeline.
pub type ToShardSender = InboxSender<Vec<ToShard>>;

pub fn inbox<T>() -> io::Result<(InboxSender<T>, InboxReceiver<T>)> {
    let (queue_tx, queue_rx) = mpsc::channel();
    let (ring, listen) = UnixStream::pair()?;
    ring.set_nonblocking(true)?;
    let armed = Arc::new(AtomicBool::new(false));
    Ok((
        InboxSender {
            queue: queue_tx,
            bell: Arc::new(Bell {
                armed: armed.clone(),
                ring,
            }),
        },
        InboxReceiver {
            queue: queue_rx,
            armed,
            bell: listen,
        },
    ))
}

impl<T> Clone for InboxSender<T> {
    fn clone(&self) -> Self {
        InboxSender {
            queue: self.queue.clone(),
            bell: self.bell.clone(),
        }
    }
}

impl<T> InboxSender<T> {
    /// Queues a message; false once the receiver is gone.
    pub fn send(&self, msg: T) -> bool {
        let sent = self.queue.send(msg).is_ok();
        if self.bell.armed.swap(false, SeqCst) {
            // A full socket buffer already holds a ring: nothing is lost.
            let _ = (&self.bell.ring).write(&[1]);
        }
        sent
    }
}

impl Drop for Bell {
    fn drop(&mut self) {
        // Wake the receiver so it sees the queue closed.
        let _ = self.ring.shutdown(std::net::Shutdown::Both);
    }
}

impl<T> InboxReceiver<T> {
    /// Moves the receiving end onto the calling glommio executor.
    pub fn listen(self) -> ShardInbox<T> {
        // SAFETY: the descriptor comes from a socket we own and hand over whole
        // (into_raw_fd), so glommio's stream becomes its only owner.
        let bell = unsafe { glommio::net::UnixStream::from_raw_fd(self.bell.into_raw_fd()) };
        ShardInbox {
            queue: self.queue,
            armed: self.armed,
            bell,
        }
    }

    /// The queue alone, for a receiver with a thread of its own that blocks
    /// on it (the bell is never armed, so never rung).
    pub fn blocking(self) -> mpsc::Receiver<T> {
        self.queue
    }
}

impl<T> ShardInbox<T> {
    /// A message already queued, if any.
    pub fn try_recv(&mut self) -> Option<T> {
        self.queue.try_recv().ok()
    }

    /// The next message, waiting if there is none; `None` once every sender
    /// is gone. Call from the shard's executor.
    pub async fn recv(&mut self) -> Option<T> {
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
                // The senders are gone: drain what they left, then stop.
                _ => return self.queue.try_recv().ok(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `f` on a glommio executor of its own.
    fn on_executor<F: std::future::Future<Output = ()> + 'static>(
        f: impl FnOnce() -> F + Send + 'static,
    ) {
        glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .spawn(move || async move { f().await })
            .expect("an executor starts")
            .join()
            .expect("the executor's future ends");
    }

    /// A sender's clone going away closes nothing: the receiver, asleep
    /// on the bell, still hears the other clone, and sees the queue closed
    /// only after the last one is gone.
    #[test]
    fn the_bell_is_shut_only_by_the_last_sender() {
        let (first, receiver) = inbox::<u32>().expect("a socket pair");
        let second = first.clone();
        let (armed_tx, armed_rx) = mpsc::channel::<()>();
        let senders = std::thread::spawn(move || {
            armed_rx.recv().expect("the receiver waits");
            drop(first);
            // Give the receiver time to fall asleep on the bell (had the
            // dropped clone shut it, that wait would end with nothing).
            std::thread::sleep(std::time::Duration::from_millis(50));
            assert!(second.send(7));
            armed_rx.recv().expect("the receiver waits once more");
            drop(second);
        });
        on_executor(move || async move {
            let mut inbox = receiver.listen();
            assert_eq!(inbox.try_recv(), None);
            armed_tx.send(()).expect("the senders wait");
            assert_eq!(inbox.recv().await, Some(7));
            armed_tx.send(()).expect("the senders wait");
            assert_eq!(inbox.recv().await, None);
        });
        senders.join().expect("the senders' thread ends");
    }
}
