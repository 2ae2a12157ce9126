//! A vehicle's unacked uploads. At most `in_flight` are pending at once; each stays until
//! its ack arrives, and when a stream breaks the next one starts by resending all of them,
//! oldest first, under the same message ids, so the gateway answers DUPLICATE for the ones
//! it had already stored. That is what a real vehicle does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use inland_proto::ingest::v1::UploadRequest;
use prost::Message;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

pub struct Outbox {
    window: Arc<Semaphore>,
    in_flight: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    pending: HashMap<String, Pending>,
    /// The open stream's request channel; `None` between streams and once all is done.
    stream: Option<mpsc::Sender<UploadRequest>>,
    finished: bool,
}

struct Pending {
    seq: u64,
    request: UploadRequest,
    first_sent: Instant,
    _slot: OwnedSemaphorePermit,
}

/// A slot in the window, to be filled by [`Outbox::push`].
pub struct Slot(OwnedSemaphorePermit);

/// What opening a stream resent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resent {
    pub uploads: usize,
    pub bytes: usize,
}

impl Outbox {
    pub fn new(in_flight: usize) -> Self {
        Self {
            window: Arc::new(Semaphore::new(in_flight)),
            in_flight,
            inner: Mutex::default(),
        }
    }

    /// Waits until fewer than `in_flight` uploads are unacked.
    pub async fn reserve(&self) -> Slot {
        let permit = self.window.clone().acquire_owned().await;
        Slot(permit.expect("the window semaphore is never closed"))
    }

    /// Sends a new upload on the open stream (or the next one) and keeps it until acked.
    /// Returns its encoded size.
    pub fn push(&self, seq: u64, request: UploadRequest, slot: Slot) -> usize {
        let bytes = request.encoded_len();
        let mut inner = self.lock();
        if let Some(stream) = &inner.stream {
            // Cannot be full: the channel holds `in_flight` and only pending uploads are in
            // it. If the stream just closed, the upload stays pending for the next one.
            let _ = stream.try_send(request.clone());
        }
        inner.pending.insert(
            request.message_id.clone(),
            Pending {
                seq,
                request,
                first_sent: Instant::now(),
                _slot: slot.0,
            },
        );
        bytes
    }

    /// Starts a new stream: its request channel already holds every unacked upload, oldest
    /// first. New uploads follow on it.
    pub fn open_stream(&self) -> (mpsc::Receiver<UploadRequest>, Resent) {
        let (tx, rx) = mpsc::channel(self.in_flight);
        let mut inner = self.lock();
        let mut unacked: Vec<&Pending> = inner.pending.values().collect();
        unacked.sort_unstable_by_key(|p| p.seq);
        let mut resent = Resent {
            uploads: 0,
            bytes: 0,
        };
        for p in unacked {
            resent.uploads += 1;
            resent.bytes += p.request.encoded_len();
            tx.try_send(p.request.clone())
                .expect("the channel has room for the whole window");
        }
        if !(inner.finished && inner.pending.is_empty()) {
            inner.stream = Some(tx);
        }
        (rx, resent)
    }

    /// Settles the upload an ack names, freeing its slot. Returns how long ago it was first
    /// sent, or `None` for an id not pending (an ack for an earlier attempt).
    pub fn ack(&self, message_id: &str) -> Option<Duration> {
        let mut inner = self.lock();
        let pending = inner.pending.remove(message_id)?;
        inner.close_if_done();
        Some(pending.first_sent.elapsed())
    }

    /// No new uploads will come; the stream closes once the last pending one is acked.
    pub fn finish(&self) {
        let mut inner = self.lock();
        inner.finished = true;
        inner.close_if_done();
    }

    /// Finished, and every upload acked.
    pub fn done(&self) -> bool {
        let inner = self.lock();
        inner.finished && inner.pending.is_empty()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Inner {
    /// Ends the request stream (a half-close), so the gateway ends the ack stream too.
    fn close_if_done(&mut self) {
        if self.finished && self.pending.is_empty() {
            self.stream = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(id: &str) -> UploadRequest {
        UploadRequest {
            message_id: id.into(),
            ..Default::default()
        }
    }

    fn drain(rx: &mut mpsc::Receiver<UploadRequest>) -> Vec<String> {
        std::iter::from_fn(|| rx.try_recv().ok())
            .map(|r| r.message_id)
            .collect()
    }

    #[tokio::test]
    async fn the_window_bounds_unacked_uploads() {
        let outbox = Outbox::new(2);
        let (mut rx, resent) = outbox.open_stream();
        assert_eq!(resent.uploads, 0);
        for seq in 0..2 {
            let slot = outbox.reserve().await;
            outbox.push(seq, request(&format!("v-{seq}")), slot);
        }
        assert_eq!(drain(&mut rx), ["v-0", "v-1"]);
        let full = tokio::time::timeout(Duration::from_millis(20), outbox.reserve()).await;
        assert!(full.is_err(), "a third upload waits for an ack");
        assert!(outbox.ack("v-1").is_some());
        assert!(outbox.ack("v-1").is_none(), "acked once");
        let slot = tokio::time::timeout(Duration::from_secs(1), outbox.reserve())
            .await
            .expect("an ack frees a slot");
        outbox.push(2, request("v-2"), slot);
        assert_eq!(drain(&mut rx), ["v-2"]);
    }

    #[tokio::test]
    async fn a_new_stream_resends_unacked_uploads_oldest_first_under_the_same_ids() {
        let outbox = Outbox::new(8);
        let (first, _) = outbox.open_stream();
        for seq in 0..5 {
            let slot = outbox.reserve().await;
            outbox.push(seq, request(&format!("v-{seq}")), slot);
        }
        outbox.ack("v-1");
        outbox.ack("v-3");
        drop(first); // the stream broke

        // Sent while no stream is open: kept for the next one.
        let slot = outbox.reserve().await;
        outbox.push(5, request("v-5"), slot);
        let (mut second, resent) = outbox.open_stream();
        assert_eq!(resent.uploads, 4);
        assert_eq!(drain(&mut second), ["v-0", "v-2", "v-4", "v-5"]);
        let slot = outbox.reserve().await;
        outbox.push(6, request("v-6"), slot);
        assert_eq!(
            drain(&mut second),
            ["v-6"],
            "new uploads follow the resent ones"
        );
    }

    #[tokio::test]
    async fn the_stream_closes_once_finished_and_all_acked() {
        let outbox = Outbox::new(4);
        let (mut rx, _) = outbox.open_stream();
        let slot = outbox.reserve().await;
        outbox.push(0, request("v-0"), slot);
        outbox.finish();
        assert!(!outbox.done());
        assert_eq!(rx.recv().await.unwrap().message_id, "v-0");
        outbox.ack("v-0");
        assert!(outbox.done());
        assert!(rx.recv().await.is_none(), "the request stream ended");
    }
}
