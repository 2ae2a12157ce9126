//! Answers a retried message id `duplicate` instead of storing it twice. A retry that
//! arrives while the first attempt is still in flight waits for its outcome: if the first
//! attempt fails, the retry becomes the one that stores the message.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use foldhash::fast::RandomState;
use inland_core::Vin;
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, DropGuard};

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
    inner: Arc<Mutex<State>>,
}

struct State {
    accepted: Accepted,
    /// Message ids being produced right now, each with a token cancelled when that
    /// attempt ends either way.
    in_flight: HashMap<Key, CancellationToken, Hasher>,
}

/// The message ids accepted lately, in two generations. Ids go into `current`; once it is
/// `window` old, or holds half the capacity, it becomes `previous` and the old `previous`
/// is forgotten. So an id is remembered for at least `window` unless half the capacity of
/// newer ids came after it, the newest ids always are, and at most `capacity` are held.
/// (A cache with expiry per entry did the same at ~7 % of the gateway's CPU, and its
/// frequency-based admission could refuse to remember a new id when full.)
struct Accepted {
    current: HashSet<Key, Hasher>,
    previous: HashSet<Key, Hasher>,
    since: Instant,
    window: Duration,
    half_capacity: usize,
}

pub enum Claim {
    /// Already accepted within the window.
    Duplicate,
    /// This caller stores the message; call [`Owner::accepted`] once it is durable.
    Owner(Owner),
}

pub struct Owner {
    key: Key,
    inner: Arc<Mutex<State>>,
    /// Whether `accepted` already took the id out of `in_flight`.
    settled: bool,
    /// Wakes the retries waiting on this attempt when the owner is dropped, after the
    /// lock is released.
    _done: DropGuard,
}

impl Deduplicator {
    pub fn new(config: &GatewayConfig) -> Self {
        let half_capacity = usize::try_from(config.dedup_capacity / 2)
            .unwrap_or(usize::MAX)
            .max(1);
        Self {
            inner: Arc::new(Mutex::new(State {
                accepted: Accepted {
                    current: generation(half_capacity),
                    previous: generation(half_capacity),
                    since: Instant::now(),
                    window: config.dedup_window,
                    half_capacity,
                },
                in_flight: HashMap::default(),
            })),
        }
    }

    pub async fn claim(&self, vin: &Vin, message_id: &str) -> Claim {
        let key: Key = format!("{}/{message_id}", vin.as_str()).into();
        loop {
            let wait = {
                let mut state = self.inner.lock().expect("dedup lock poisoned");
                // Checked under the lock that `Owner` also takes, so an attempt that just
                // finished is seen either as accepted or as still in flight, never neither.
                if state.accepted.contains(&key) {
                    return Claim::Duplicate;
                }
                match state.in_flight.get(&key) {
                    Some(done) => done.clone(),
                    None => {
                        let done = CancellationToken::new();
                        state.in_flight.insert(key.clone(), done.clone());
                        return Claim::Owner(Owner {
                            key,
                            inner: self.inner.clone(),
                            settled: false,
                            _done: done.drop_guard(),
                        });
                    }
                }
            };
            // Resolves when the owner is dropped, whatever its outcome.
            wait.cancelled().await;
        }
    }
}

/// An empty generation with room for all it will hold: it never grows, so never rehashes.
fn generation(half_capacity: usize) -> HashSet<Key, Hasher> {
    // Reserving more than a few million ids up front would only waste memory.
    HashSet::with_capacity_and_hasher(half_capacity.min(1 << 22), Hasher::default())
}

impl Accepted {
    fn contains(&self, key: &Key) -> bool {
        // `previous` holds only ids accepted before `since`: all older than the window now.
        let fresh = self.since.elapsed() < self.window;
        self.current.contains(key) || (fresh && self.previous.contains(key))
    }

    /// Remembers `key`; returns the generation it forgot, if any, to be dropped once the
    /// lock is released (freeing many ids takes a while).
    fn insert(&mut self, key: Key) -> Option<HashSet<Key, Hasher>> {
        let forgotten = (self.since.elapsed() >= self.window
            || self.current.len() >= self.half_capacity)
            .then(|| {
                self.since = Instant::now();
                let current = std::mem::replace(&mut self.current, generation(self.half_capacity));
                std::mem::replace(&mut self.previous, current)
            });
        self.current.insert(key);
        forgotten
    }
}

impl Owner {
    /// Remembers the id as accepted; in the same critical section it stops being in flight.
    pub fn accepted(mut self) {
        let forgotten = {
            let mut state = self.inner.lock().expect("dedup lock poisoned");
            state.in_flight.remove(&self.key);
            state.accepted.insert(self.key.clone())
        };
        self.settled = true;
        drop(forgotten);
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        if !self.settled {
            self.inner
                .lock()
                .expect("dedup lock poisoned")
                .in_flight
                .remove(&self.key);
        }
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

    async fn accept(dedup: &Deduplicator, id: &str) {
        let Claim::Owner(owner) = dedup.claim(&vin(), id).await else {
            panic!("{id} is new")
        };
        owner.accepted();
    }

    async fn is_duplicate(dedup: &Deduplicator, id: &str) -> bool {
        matches!(dedup.claim(&vin(), id).await, Claim::Duplicate)
    }

    #[tokio::test(start_paused = true)]
    async fn ids_are_remembered_for_the_window_then_forgotten() {
        let config = GatewayConfig {
            dedup_window: Duration::from_secs(10),
            ..GatewayConfig::default()
        };
        let dedup = Deduplicator::new(&config);
        accept(&dedup, "m1").await;
        tokio::time::advance(Duration::from_secs(9)).await;
        assert!(is_duplicate(&dedup, "m1").await, "within the window");
        // The next acceptance after the window starts a new generation.
        tokio::time::advance(Duration::from_secs(2)).await;
        accept(&dedup, "m2").await;
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(
            is_duplicate(&dedup, "m1").await,
            "its generation is not yet forgotten"
        );
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(
            !is_duplicate(&dedup, "m1").await,
            "22 s later it is forgotten"
        );
        assert!(
            is_duplicate(&dedup, "m2").await,
            "11 s old, kept in its generation"
        );
    }

    #[tokio::test]
    async fn at_most_the_capacity_is_held_and_the_newest_half_always() {
        let config = GatewayConfig {
            dedup_capacity: 4,
            ..GatewayConfig::default()
        };
        let dedup = Deduplicator::new(&config);
        for id in ["a", "b", "c", "d", "e"] {
            accept(&dedup, id).await;
        }
        // a, b filled one generation, c, d the next; e started a third.
        let remembered: Vec<bool> =
            futures::future::join_all(["a", "b", "c", "d", "e"].map(|id| is_duplicate(&dedup, id)))
                .await;
        assert_eq!(remembered, [false, false, true, true, true]);
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
