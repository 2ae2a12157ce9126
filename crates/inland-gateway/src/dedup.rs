//! Answers a retried message id `duplicate` instead of storing it twice. A retry that
//! arrives while the first attempt is still in flight waits for its outcome: if the first
//! attempt fails, the retry becomes the one that stores the message.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use foldhash::fast::RandomState;
use inland_core::Vin;
use moka::sync::Cache;
use tokio::sync::watch;

use crate::GatewayConfig;

/// "VIN/message id": one allocation per remembered message.
type Key = Arc<str>;

/// Every upload hashes its key four times; with the standard library's SipHash, hashing
/// (mostly of these keys) was ~7 % of the gateway's CPU under load. foldhash is seeded per
/// process (as in the consent view), so a vehicle choosing message ids cannot aim them at
/// one bucket without the seed.
type Hasher = RandomState;

#[derive(Clone)]
pub struct Deduplicator {
    inner: Arc<Inner>,
}

struct Inner {
    accepted: Cache<Key, (), Hasher>,
    /// Message ids being produced right now, with a channel whose sender is dropped when
    /// that attempt ends either way.
    in_flight: Mutex<HashMap<Key, watch::Receiver<()>, Hasher>>,
}

pub enum Claim {
    /// Already accepted within the window.
    Duplicate,
    /// This caller stores the message; call [`Owner::accepted`] once it is durable.
    Owner(Owner),
}

pub struct Owner {
    key: Key,
    inner: Arc<Inner>,
    _done: watch::Sender<()>,
}

impl Deduplicator {
    pub fn new(config: &GatewayConfig) -> Self {
        let accepted = Cache::builder()
            .max_capacity(config.dedup_capacity)
            .time_to_live(config.dedup_window)
            .build_with_hasher(Hasher::default());
        Self {
            inner: Arc::new(Inner {
                accepted,
                in_flight: Mutex::new(HashMap::default()),
            }),
        }
    }

    pub async fn claim(&self, vin: &Vin, message_id: &str) -> Claim {
        let key: Key = format!("{}/{message_id}", vin.as_str()).into();
        loop {
            let mut wait = {
                let mut in_flight = self.inner.in_flight.lock().expect("dedup lock poisoned");
                // Checked under the lock that `Owner` also takes, so an attempt that just
                // finished is seen either as accepted or as still in flight, never neither.
                if self.inner.accepted.contains_key(&key) {
                    return Claim::Duplicate;
                }
                match in_flight.get(&key) {
                    Some(rx) => rx.clone(),
                    None => {
                        let (tx, rx) = watch::channel(());
                        in_flight.insert(key.clone(), rx);
                        return Claim::Owner(Owner {
                            key,
                            inner: self.inner.clone(),
                            _done: tx,
                        });
                    }
                }
            };
            // Resolves when the owner's sender is dropped, whatever its outcome.
            let _ = wait.changed().await;
        }
    }
}

impl Owner {
    pub fn accepted(self) {
        let _in_flight = self.inner.in_flight.lock().expect("dedup lock poisoned");
        self.inner.accepted.insert(self.key.clone(), ());
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        self.inner
            .in_flight
            .lock()
            .expect("dedup lock poisoned")
            .remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn vin() -> Vin {
        Vin::parse("LSVAU2180N2183294").unwrap()
    }

    #[tokio::test]
    async fn accepted_message_is_a_duplicate_afterwards() {
        let dedup = Deduplicator::new(&GatewayConfig::default());
        let Claim::Owner(owner) = dedup.claim(&vin(), "m1").await else {
            panic!("first claim owns")
        };
        owner.accepted();
        assert!(matches!(dedup.claim(&vin(), "m1").await, Claim::Duplicate));
        assert!(matches!(dedup.claim(&vin(), "m2").await, Claim::Owner(_)));
        let other = Vin::parse("WVWZZZ1JZXW000001").unwrap();
        assert!(
            matches!(dedup.claim(&other, "m1").await, Claim::Owner(_)),
            "ids are per vehicle"
        );
    }

    #[tokio::test]
    async fn failed_attempt_lets_the_waiting_retry_store_it() {
        let dedup = Deduplicator::new(&GatewayConfig::default());
        let Claim::Owner(first) = dedup.claim(&vin(), "m1").await else {
            panic!()
        };
        let d = dedup.clone();
        let retry =
            tokio::spawn(async move { matches!(d.claim(&vin(), "m1").await, Claim::Owner(_)) });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            !retry.is_finished(),
            "the retry waits while the first attempt is in flight"
        );
        drop(first); // failed: never accepted
        assert!(retry.await.unwrap(), "the retry now owns the message");
    }

    #[tokio::test]
    async fn waiting_retry_of_a_successful_attempt_is_a_duplicate() {
        let dedup = Deduplicator::new(&GatewayConfig::default());
        let Claim::Owner(first) = dedup.claim(&vin(), "m1").await else {
            panic!()
        };
        let d = dedup.clone();
        let retry =
            tokio::spawn(async move { matches!(d.claim(&vin(), "m1").await, Claim::Duplicate) });
        tokio::time::sleep(Duration::from_millis(20)).await;
        first.accepted();
        assert!(retry.await.unwrap());
    }
}
