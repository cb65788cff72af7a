//! A connection's bounded outbound queue: many senders (the core, the ping timer), one receiver
//! (the connection's writer task).
//!
//! Why not `tokio::sync::mpsc`: its channel reserves a 32-slot block plus cache-padded state up
//! front, ~1.7 KiB per connection even when idle, which at 10k+ idle connections is most of the
//! relay's memory. This one is a mutex-guarded `VecDeque` that holds nothing while empty, and
//! lets a sender wait for room ([`Sender::ready`]), which the reader uses for backpressure.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Notify;

/// Why [`Sender::try_send`] did not queue.
#[derive(Debug, PartialEq, Eq)]
pub enum TrySendError {
    Full,
    Closed,
}

struct State<T> {
    /// Delivered before anything queued: see [`Sender::jump`].
    first: Option<T>,
    items: VecDeque<T>,
    senders: usize,
    receiver_alive: bool,
}

struct Shared<T> {
    capacity: usize,
    state: Mutex<State<T>>,
    /// Something was queued, or the last sender left.
    readable: Notify,
    /// Room was made, or the receiver left.
    writable: Notify,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // A panic while holding this lock leaves the queue consistent: take it anyway.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub struct Sender<T>(Arc<Shared<T>>);
pub struct Receiver<T>(Arc<Shared<T>>);

/// A queue holding at most `capacity` items.
pub fn bounded<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        capacity: capacity.max(1),
        state: Mutex::new(State {
            first: None,
            items: VecDeque::new(),
            senders: 1,
            receiver_alive: true,
        }),
        readable: Notify::new(),
        writable: Notify::new(),
    });
    (Sender(Arc::clone(&shared)), Receiver(shared))
}

impl<T> Sender<T> {
    pub fn try_send(&self, item: T) -> Result<(), TrySendError> {
        let mut state = self.0.lock();
        if !state.receiver_alive {
            return Err(TrySendError::Closed);
        }
        if state.items.len() >= self.0.capacity {
            return Err(TrySendError::Full);
        }
        state.items.push_back(item);
        drop(state);
        self.0.readable.notify_one();
        Ok(())
    }

    /// Puts `item` ahead of everything queued (replacing an earlier such item), even when full.
    pub fn jump(&self, item: T) {
        self.0.lock().first = Some(item);
        self.0.readable.notify_one();
    }

    /// Waits until the queue has room; `Err` once the receiver is gone.
    pub async fn ready(&self) -> Result<(), TrySendError> {
        loop {
            {
                let state = self.0.lock();
                if !state.receiver_alive {
                    return Err(TrySendError::Closed);
                }
                if state.items.len() < self.0.capacity {
                    return Ok(());
                }
            }
            // notify_one keeps a permit if nobody waits yet, so a wake-up between the check
            // above and this await is not lost.
            self.0.writable.notified().await;
        }
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.0.lock().senders += 1;
        Sender(Arc::clone(&self.0))
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let last = {
            let mut state = self.0.lock();
            state.senders -= 1;
            state.senders == 0
        };
        if last {
            self.0.readable.notify_one();
        }
    }
}

impl<T> Receiver<T> {
    /// The next item; `None` once the queue is empty and every sender is gone. Cancel-safe.
    pub async fn recv(&mut self) -> Option<T> {
        loop {
            {
                let mut state = self.0.lock();
                if let Some(item) = state.first.take() {
                    return Some(item);
                }
                if let Some(item) = state.items.pop_front() {
                    // Give the memory back when drained: most connections are idle most of the time.
                    if state.items.is_empty() {
                        state.items = VecDeque::new();
                    }
                    drop(state);
                    self.0.writable.notify_one();
                    return Some(item);
                }
                if state.senders == 0 {
                    return None;
                }
            }
            self.0.readable.notified().await;
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.0.lock().receiver_alive = false;
        self.0.writable.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn delivers_in_order_and_refuses_beyond_capacity() {
        let (tx, mut rx) = bounded(2);
        assert_eq!(tx.try_send(1), Ok(()));
        assert_eq!(tx.try_send(2), Ok(()));
        assert_eq!(tx.try_send(3), Err(TrySendError::Full));
        assert_eq!(rx.recv().await, Some(1));
        assert_eq!(tx.try_send(3), Ok(()));
        assert_eq!(rx.recv().await, Some(2));
        assert_eq!(rx.recv().await, Some(3));
    }

    #[tokio::test]
    async fn ends_when_every_sender_is_gone_after_draining() {
        let (tx, mut rx) = bounded(4);
        let other = tx.clone();
        tx.try_send("a").unwrap();
        drop(tx);
        other.try_send("b").unwrap();
        drop(other);
        assert_eq!(rx.recv().await, Some("a"));
        assert_eq!(rx.recv().await, Some("b"));
        assert_eq!(rx.recv().await, None);
    }

    #[tokio::test]
    async fn a_waiting_receiver_wakes_for_a_send_from_another_task() {
        let (tx, mut rx) = bounded(1);
        let waiter = tokio::spawn(async move { rx.recv().await });
        tokio::task::yield_now().await;
        tx.try_send(7).unwrap();
        assert_eq!(waiter.await.unwrap(), Some(7));
    }

    #[tokio::test]
    async fn ready_waits_for_room_and_fails_once_the_receiver_is_gone() {
        let (tx, mut rx) = bounded(1);
        tx.try_send(1).unwrap();
        let tx = Arc::new(tx);
        let waiting = tokio::spawn({
            let tx = Arc::clone(&tx);
            async move { tx.ready().await }
        });
        tokio::task::yield_now().await;
        assert!(
            !waiting.is_finished(),
            "ready() must wait while the queue is full"
        );
        assert_eq!(rx.recv().await, Some(1));
        assert_eq!(waiting.await.unwrap(), Ok(()));
        tx.try_send(2).unwrap();
        drop(rx);
        assert_eq!(tx.ready().await, Err(TrySendError::Closed));
        assert_eq!(tx.try_send(3), Err(TrySendError::Closed));
    }

    #[tokio::test]
    async fn a_jumping_item_comes_first_even_when_full() {
        let (tx, mut rx) = bounded(1);
        tx.try_send("queued").unwrap();
        tx.jump("urgent");
        drop(tx);
        assert_eq!(rx.recv().await, Some("urgent"));
        assert_eq!(rx.recv().await, Some("queued"));
        assert_eq!(rx.recv().await, None);
    }

    #[tokio::test]
    async fn a_burst_does_not_keep_its_memory() {
        let (tx, mut rx) = bounded(256);
        for i in 0..200 {
            tx.try_send(i).unwrap();
        }
        for _ in 0..200 {
            rx.recv().await;
        }
        assert_eq!(tx.0.lock().items.capacity(), 0);
    }
}
