//! [`ConsentView`]: every subject's current consent, in memory, kept up to date from
//! `inland.consent.v1` by a follower task (see `follow.rs`). Checks per upload read a
//! compact index sharded by VIN: one shard's read lock (rarely contended: uploads of
//! different vehicles mostly take different shards) and one lookup of a 17-byte key,
//! without allocating.

use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use bytes::Bytes;
use foldhash::fast::RandomState;
use inland_core::Vin;
use inland_proto::consent::v1::{Category, ConsentEvent, ConsentState};
use tokio::sync::mpsc;
use tokio_util::sync::DropGuard;

use crate::event::{decode_event, empty_state, subject_of};
use crate::state::{Grants, apply};
use crate::{SubjectId, metrics};

/// Conflicts waiting for a ledger to restate them.
const CONFLICTS_QUEUED: usize = 1024;
/// Shards of the check index (a power of two).
const SHARDS: usize = 64;

/// A VIN's 17 ASCII bytes: compared in place, no pointer to follow.
type VinKey = [u8; 17];
type Shard = RwLock<HashMap<VinKey, Checks, RandomState>>;

/// The current consent of every subject on the consent topic. Clones share one view; the
/// follower stops when the last clone is dropped.
#[derive(Clone)]
pub struct ConsentView {
    inner: Arc<Inner>,
    _follower: Option<Arc<DropGuard>>,
}

struct Inner {
    topic: String,
    keep_history: bool,
    vehicles: RwLock<HashMap<Box<str>, Vehicle>>,
    /// What checks read, derived from `vehicles` under its write lock on every change.
    index: Box<[Shard]>,
    hasher: RandomState,
    /// Subjects with at least one event read.
    subjects: AtomicUsize,
    /// Subjects whose latest event states something else than the fold of their events
    /// (two changes made concurrently from the same state); a ledger takes the receiver
    /// and restates them. Bounded: a view no ledger writes through drops them when full.
    conflicts: mpsc::Sender<SubjectId>,
    restate: Mutex<Option<mpsc::Receiver<SubjectId>>>,
}

/// A vehicle's grants and its driver profiles', as checks read them.
#[derive(Default)]
struct Checks {
    vehicle: Grants,
    profiles: Vec<(Box<str>, Grants)>,
}

#[derive(Default)]
struct Vehicle {
    own: Entry,
    profiles: BTreeMap<Box<str>, Entry>,
}

#[derive(Default)]
struct Entry {
    /// The fold of the events read from the topic; `None` until the first one.
    consumed: Option<ConsentState>,
    /// This process's own changes not read back from the topic yet. Withdrawals count from
    /// the moment they are sent, grants once durable (`visible`).
    pending: Vec<Pending>,
    /// `consumed` with the visible pending changes applied: what every answer uses.
    effective: Option<ConsentState>,
    grants: Grants,
    /// Encoded events as read, oldest first (when the view keeps history).
    history: Vec<Bytes>,
}

struct Pending {
    event: ConsentEvent,
    visible: bool,
}

/// What reading one record did, for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadOutcome {
    Applied,
    /// The event's state differs from the fold: written from a stale state.
    Conflict,
    /// Not a consent event: its subject (when the key names one) is denied everything
    /// until a valid event arrives, since it may have been a withdrawal.
    Undecodable,
}

impl ConsentView {
    /// An empty view of `topic`, fed by [`Self::read`]; the follower wraps it.
    pub(crate) fn empty(topic: &str, keep_history: bool) -> Self {
        let (conflicts, restate) = mpsc::channel(CONFLICTS_QUEUED);
        Self {
            inner: Arc::new(Inner {
                topic: topic.to_owned(),
                keep_history,
                vehicles: RwLock::new(HashMap::new()),
                index: (0..SHARDS).map(|_| Shard::default()).collect(),
                hasher: RandomState::default(),
                subjects: AtomicUsize::new(0),
                conflicts,
                restate: Mutex::new(Some(restate)),
            }),
            _follower: None,
        }
    }

    pub(crate) fn with_follower(mut self, guard: DropGuard) -> Self {
        self._follower = Some(Arc::new(guard));
        self
    }

    /// The same view without a share in keeping the follower alive: what the follower
    /// itself holds.
    pub(crate) fn detached(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            _follower: None,
        }
    }

    /// The topic this view follows; a ledger appends to it.
    pub fn topic(&self) -> &str {
        &self.inner.topic
    }

    /// Whether the vehicle (and, when given, the driver profile too) consented to
    /// `category` for `purpose`, or with `None` for at least one purpose. Default deny: an
    /// unknown subject has consented to nothing.
    pub fn allows(
        &self,
        vin: &Vin,
        driver_profile: Option<&str>,
        category: Category,
        purpose: Option<&str>,
    ) -> bool {
        let key = vin_key(vin);
        let shard = self.shard(&key).read().unwrap_or_else(|e| e.into_inner());
        let Some(checks) = shard.get(&key) else {
            return false;
        };
        if !checks.vehicle.allows(category, purpose) {
            return false;
        }
        match driver_profile {
            None => true,
            Some(p) => checks
                .profiles
                .iter()
                .any(|(id, grants)| &**id == p && grants.allows(category, purpose)),
        }
    }

    /// The purposes the vehicle (and, when given, the driver profile too) granted
    /// `category` for, in the order the vehicle granted them; none for an unknown subject.
    pub fn purposes(
        &self,
        vin: &Vin,
        driver_profile: Option<&str>,
        category: Category,
    ) -> Vec<String> {
        let key = vin_key(vin);
        let shard = self.shard(&key).read().unwrap_or_else(|e| e.into_inner());
        let Some(checks) = shard.get(&key) else {
            return Vec::new();
        };
        let profile = match driver_profile {
            None => None,
            Some(p) => match checks.profiles.iter().find(|(id, _)| &**id == p) {
                Some((_, grants)) => Some(grants),
                None => return Vec::new(),
            },
        };
        checks
            .vehicle
            .purposes(category)
            .filter(|purpose| profile.is_none_or(|g| g.allows(category, Some(purpose))))
            .map(str::to_owned)
            .collect()
    }

    /// The subject's current consent; nothing granted for a subject never seen.
    pub fn state(&self, subject: &SubjectId) -> ConsentState {
        let vehicles = self.read_map();
        vehicles
            .get(subject.vin.as_str())
            .and_then(|v| match &subject.driver_profile {
                None => Some(&v.own),
                Some(p) => v.profiles.get(p),
            })
            .and_then(|e| e.effective.clone())
            .unwrap_or_else(|| empty_state(subject))
    }

    /// The current consent of every driver profile the vehicle has, by profile id.
    pub fn driver_profiles(&self, vin: &Vin) -> Vec<ConsentState> {
        let vehicles = self.read_map();
        vehicles.get(vin.as_str()).map_or_else(Vec::new, |v| {
            v.profiles
                .values()
                .filter_map(|e| e.effective.clone())
                .collect()
        })
    }

    /// The events this view has read for the subject (and its driver profiles when asked),
    /// oldest first. Empty when the view keeps no history. The topic is compacted, so
    /// events superseded before this view started may be missing: the complete history is
    /// the archive's `consent_events` dataset ([`crate::decode_event`] reads its payloads).
    pub fn history(&self, subject: &SubjectId, include_driver_profiles: bool) -> Vec<ConsentEvent> {
        let vehicles = self.read_map();
        let Some(vehicle) = vehicles.get(subject.vin.as_str()) else {
            return Vec::new();
        };
        let entries: Vec<&Entry> = match &subject.driver_profile {
            Some(p) => vehicle.profiles.get(p).into_iter().collect(),
            None if include_driver_profiles => std::iter::once(&vehicle.own)
                .chain(vehicle.profiles.values())
                .collect(),
            None => vec![&vehicle.own],
        };
        let mut events: Vec<ConsentEvent> = entries
            .iter()
            .flat_map(|e| &e.history)
            .filter_map(|bytes| decode_event(bytes).ok())
            .collect();
        // Each subject's events are in topic order; subjects are interleaved by time.
        if entries.len() > 1 {
            events.sort_by_key(|e| e.occurred_at.map(|t| (t.seconds, t.nanos)));
        }
        events
    }

    /// How many subjects the view has read events of.
    pub fn subjects(&self) -> usize {
        self.inner.subjects.load(Ordering::Relaxed)
    }

    /// Reads one record of the topic, in offset order per subject.
    pub(crate) fn read(&self, key: &[u8], payload: &Bytes) -> ReadOutcome {
        let event = match decode_event(payload) {
            Ok(event) if SubjectId::from_key(key).is_some_and(|k| k == subject_of(&event)) => event,
            _ => {
                if let Some(subject) = SubjectId::from_key(key) {
                    self.mutate(&subject, |entry| {
                        if entry.consumed.is_none() {
                            self.inner.subjects.fetch_add(1, Ordering::Relaxed);
                        }
                        entry.consumed = Some(empty_state(&subject));
                    });
                }
                return ReadOutcome::Undecodable;
            }
        };
        let subject = subject_of(&event);
        let embedded = event
            .state
            .as_ref()
            .expect("decode_event checked the state");
        let outcome = self.mutate(&subject, |entry| {
            entry.pending.retain(|p| p.event.event_id != event.event_id);
            if self.inner.keep_history {
                entry.history.push(payload.clone());
            }
            match &mut entry.consumed {
                // The first event seen (the topic may be compacted): its state is the state.
                None => {
                    self.inner.subjects.fetch_add(1, Ordering::Relaxed);
                    entry.consumed = Some(embedded.clone());
                    ReadOutcome::Applied
                }
                Some(state) => {
                    apply(state, &event);
                    if state == embedded {
                        ReadOutcome::Applied
                    } else {
                        ReadOutcome::Conflict
                    }
                }
            }
        });
        if outcome == ReadOutcome::Conflict {
            self.report_conflict(subject);
        }
        outcome
    }

    /// Counts an own change before it is read back from the topic; `visible` makes it count
    /// for answers at once.
    pub(crate) fn add_pending(&self, event: &ConsentEvent, visible: bool) {
        self.mutate(&subject_of(event), |entry| {
            entry.pending.push(Pending {
                event: event.clone(),
                visible,
            });
        });
    }

    /// Makes an own pending change count (it is durable now), unless it was read back.
    pub(crate) fn reveal_pending(&self, event: &ConsentEvent) {
        self.update_pending(event, |pending, i| pending[i].visible = true);
    }

    /// Forgets an own change that never became durable.
    pub(crate) fn drop_pending(&self, event: &ConsentEvent) {
        self.update_pending(event, |pending, i| {
            pending.remove(i);
        });
    }

    fn update_pending(&self, event: &ConsentEvent, update: impl FnOnce(&mut Vec<Pending>, usize)) {
        self.mutate(&subject_of(event), |entry| {
            if let Some(i) = entry
                .pending
                .iter()
                .position(|p| p.event.event_id == event.event_id)
            {
                update(&mut entry.pending, i);
            }
        });
    }

    /// Changes the subject's entry, then recomputes what answers and checks read, all
    /// under the map's write lock so that changes of one vehicle reach the index in order.
    fn mutate<R>(&self, subject: &SubjectId, change: impl FnOnce(&mut Entry) -> R) -> R {
        let mut vehicles = self.write_map();
        let vehicle = vehicles.entry(subject.vin.as_str().into()).or_default();
        let entry = match &subject.driver_profile {
            None => &mut vehicle.own,
            Some(p) => vehicle.profiles.entry(p.clone()).or_default(),
        };
        let result = change(entry);
        entry.refresh();
        let checks = Checks {
            vehicle: vehicle.own.grants.clone(),
            profiles: vehicle
                .profiles
                .iter()
                .map(|(id, e)| (id.clone(), e.grants.clone()))
                .collect(),
        };
        let key = vin_key(&subject.vin);
        self.shard(&key)
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, checks);
        result
    }

    fn shard(&self, key: &VinKey) -> &Shard {
        // The top bits: the shard's own map buckets by the low ones.
        let hash = self.inner.hasher.hash_one(key);
        &self.inner.index[(hash >> (64 - SHARDS.trailing_zeros())) as usize]
    }

    /// The subjects to restate, for the one ledger that takes them.
    pub(crate) fn take_conflicts(&self) -> Option<mpsc::Receiver<SubjectId>> {
        self.inner
            .restate
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    fn report_conflict(&self, subject: SubjectId) {
        metrics::conflict();
        let _ = self.inner.conflicts.try_send(subject);
    }

    // Every mutation completes under the lock, so a poisoned lock still holds a
    // consistent map.
    fn read_map(&self) -> RwLockReadGuard<'_, HashMap<Box<str>, Vehicle>> {
        self.inner
            .vehicles
            .read()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn write_map(&self) -> RwLockWriteGuard<'_, HashMap<Box<str>, Vehicle>> {
        self.inner
            .vehicles
            .write()
            .unwrap_or_else(|e| e.into_inner())
    }
}

fn vin_key(vin: &Vin) -> VinKey {
    vin.as_str()
        .as_bytes()
        .try_into()
        .expect("a VIN is 17 ASCII characters")
}

impl Entry {
    /// Recomputes what answers read after `consumed` or `pending` changed.
    fn refresh(&mut self) {
        let visible = self.pending.iter().filter(|p| p.visible);
        let mut effective = self.consumed.clone();
        for p in visible {
            let state = effective.get_or_insert_with(|| empty_state(&subject_of(&p.event)));
            apply(state, &p.event);
        }
        self.grants = effective.as_ref().map(Grants::of).unwrap_or_default();
        self.effective = effective;
    }
}
