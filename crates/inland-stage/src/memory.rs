//! The in-process bus for `inland run` and tests: Kafka's at-least-once semantics in memory.
//!
//! - Topics have a fixed number of partitions; a record goes to the partition of its key's
//!   hash (FNV-1a, stable across runs), records with an empty key round-robin.
//! - Consumer groups keep committed offsets; a new group starts at the oldest retained
//!   record. Members of a group split a topic's partitions statically: partition `p` goes
//!   to the `p % n`-th of the `n` members, ordered by joining time. A member joining or
//!   leaving (dropping its consumer) reassigns, and a newly owned partition is read from the
//!   group's committed offset, so records consumed but not committed are delivered again.
//! - Memory is bounded: a partition holds at most `max_records` records and `max_bytes`
//!   bytes (one larger record is still admitted into an empty partition). Room is made by
//!   dropping the oldest records that every group subscribed to the topic has committed
//!   (on a compacted topic, only those superseded by a later record with the same key).
//!   When no room can be made, the producer waits for a commit (backpressure); nothing is
//!   ever dropped that a group has not committed. A topic no group reads keeps its newest
//!   records up to the bounds.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use futures::FutureExt;
use tokio::sync::Notify;

use crate::{
    Consumed, Consumer, Delivered, Delivery, Error, Position, Producer, Record, TopicSpec, metrics,
};

/// Bounds of every partition of the bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MemoryBusConfig {
    pub max_records: usize,
    pub max_bytes: usize,
}

impl Default for MemoryBusConfig {
    fn default() -> Self {
        Self {
            max_records: 10_000,
            max_bytes: 64 << 20,
        }
    }
}

/// The in-process bus; clones share the same topics and groups. It is also the
/// [`Producer`] for its topics: `send` resolves once the record is appended.
#[derive(Clone)]
pub struct MemoryBus {
    shared: Arc<Shared>,
}

struct Shared {
    config: MemoryBusConfig,
    state: Mutex<State>,
    /// Woken on every append and membership change: consumers re-check their partitions.
    appended: Notify,
    /// Woken on every commit: waiting producers re-check for room.
    committed: Notify,
}

#[derive(Default)]
struct State {
    topics: HashMap<String, Topic>,
    groups: HashMap<String, Group>,
    next_member: u64,
}

struct Topic {
    compacted: bool,
    partitions: Vec<Log>,
    next_unkeyed: usize,
}

#[derive(Default)]
struct Log {
    /// Offset the next appended record gets.
    next: i64,
    /// Retained records by ascending offset; compaction may leave gaps.
    entries: VecDeque<Entry>,
    bytes: usize,
}

struct Entry {
    offset: i64,
    size: usize,
    record: Record,
}

#[derive(Default)]
struct Group {
    /// Member id → subscribed topics; ids grow with joining time.
    members: HashMap<u64, Vec<String>>,
    /// Bumped on every join and leave so members recompute their assignment.
    generation: u64,
    /// Next offset to read per (topic, partition).
    committed: HashMap<(String, i32), i64>,
}

impl MemoryBus {
    pub fn new(config: MemoryBusConfig) -> Self {
        Self {
            shared: Arc::new(Shared {
                config,
                state: Mutex::new(State::default()),
                appended: Notify::new(),
                committed: Notify::new(),
            }),
        }
    }

    /// Creates the topics that do not exist yet; an existing topic is left as it is. Only
    /// `partitions` and `compacted` apply: time-based retention is replaced by the bus's
    /// bounds (see the module docs).
    pub fn ensure_topics(&self, specs: &[TopicSpec]) -> Result<(), Error> {
        if let Some(bad) = specs.iter().find(|s| s.partitions < 1) {
            return Err(Error::Config(format!(
                "topic {} needs at least one partition",
                bad.name
            )));
        }
        let mut state = self.shared.lock();
        for spec in specs {
            state
                .topics
                .entry(spec.name.clone())
                .or_insert_with(|| Topic {
                    compacted: spec.compacted,
                    partitions: (0..spec.partitions).map(|_| Log::default()).collect(),
                    next_unkeyed: 0,
                });
        }
        Ok(())
    }

    /// Joins `group` as a new member reading `topics`. Dropping the consumer leaves the
    /// group; its uncommitted records go to the remaining or next members.
    pub fn consumer(&self, group: &str, topics: &[&str]) -> Result<MemoryConsumer, Error> {
        let mut state = self.shared.lock();
        if let Some(missing) = topics.iter().find(|t| !state.topics.contains_key(**t)) {
            return Err(Error::UnknownTopic(missing.to_string()));
        }
        let member = state.next_member;
        state.next_member += 1;
        let State {
            topics: all,
            groups,
            ..
        } = &mut *state;
        let g = groups.entry(group.to_owned()).or_default();
        for &name in topics {
            for (p, log) in all[name].partitions.iter().enumerate() {
                g.committed
                    .entry((name.to_owned(), p as i32))
                    .or_insert_with(|| log.start());
            }
        }
        g.members
            .insert(member, topics.iter().map(|t| t.to_string()).collect());
        g.generation += 1;
        drop(state);
        self.shared.appended.notify_waiters();
        Ok(MemoryConsumer {
            shared: self.shared.clone(),
            group: group.to_owned(),
            member,
            cursor: Mutex::new(Cursor::default()),
        })
    }

    /// Records ever appended to `topic` (the sum of its partitions' end offsets), or None
    /// for an unknown topic: what `inland run` reports as the pipeline's progress.
    pub fn records_appended(&self, topic: &str) -> Option<i64> {
        let state = self.shared.lock();
        Some(
            state
                .topics
                .get(topic)?
                .partitions
                .iter()
                .map(|log| log.next)
                .sum(),
        )
    }

    #[cfg(test)]
    pub(crate) fn committed(&self, group: &str, topic: &str, partition: i32) -> Option<i64> {
        let state = self.shared.lock();
        state
            .groups
            .get(group)?
            .committed
            .get(&(topic.to_owned(), partition))
            .copied()
    }

    #[cfg(test)]
    pub(crate) fn retained(&self, topic: &str, partition: usize) -> Vec<i64> {
        let state = self.shared.lock();
        state.topics[topic].partitions[partition]
            .entries
            .iter()
            .map(|e| e.offset)
            .collect()
    }

    /// Appends if there is room (making room if allowed); otherwise returns `None`.
    fn try_append(
        &self,
        topic: &str,
        partition: usize,
        record: &Record,
        size: usize,
    ) -> Option<Delivered> {
        let mut state = self.shared.lock();
        let low = state.released_below(topic, partition);
        let limits = self.shared.config;
        let t = state.topics.get_mut(topic)?;
        let compacted = t.compacted;
        let log = &mut t.partitions[partition];
        let evicted = log.make_room(&record.key, size, low, compacted, limits);
        if evicted > 0 {
            metrics::bus_evicted(topic, evicted);
        }
        if !log.has_room(size, limits) {
            return None;
        }
        let offset = log.next;
        log.next += 1;
        log.bytes += size;
        log.entries.push_back(Entry {
            offset,
            size,
            record: record.clone(),
        });
        Some(Delivered {
            partition: partition as i32,
            offset,
        })
    }
}

impl Default for MemoryBus {
    fn default() -> Self {
        Self::new(MemoryBusConfig::default())
    }
}

#[async_trait::async_trait]
impl Producer for MemoryBus {
    async fn enqueue(&self, topic: &str, record: Record) -> Result<Delivery, Error> {
        let partition = {
            let mut state = self.shared.lock();
            let t = state
                .topics
                .get_mut(topic)
                .ok_or_else(|| Error::UnknownTopic(topic.to_owned()))?;
            t.partition_for(&record.key)
        };
        let size = record_size(&record);
        let mut waited = false;
        loop {
            // Registered before the check, so a commit in between still wakes us.
            let room = self.shared.committed.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            if let Some(delivered) = self.try_append(topic, partition, &record, size) {
                self.shared.appended.notify_waiters();
                return Ok(futures::future::ready(Ok(delivered)).boxed());
            }
            if !waited {
                metrics::bus_backpressure(topic, partition as i32);
                waited = true;
            }
            room.await;
        }
    }
}

/// A member of a consumer group on a [`MemoryBus`].
pub struct MemoryConsumer {
    shared: Arc<Shared>,
    group: String,
    member: u64,
    cursor: Mutex<Cursor>,
}

/// This member's view of its assignment.
#[derive(Default)]
struct Cursor {
    generation: u64,
    /// Assigned partitions with the next offset to read.
    positions: Vec<((String, i32), i64)>,
    /// Where the round-robin over the assigned partitions resumes, for fairness.
    next: usize,
}

impl MemoryConsumer {
    fn try_recv(&self) -> Option<Consumed> {
        let state = self.shared.lock();
        let mut cursor = self.cursor.lock().unwrap_or_else(|e| e.into_inner());
        let group = &state.groups[&self.group];
        if cursor.generation != group.generation {
            cursor.reassign(&state, group, self.member);
        }
        let n = cursor.positions.len();
        for i in 0..n {
            let slot = (cursor.next + i) % n;
            let ((topic, partition), position) = &mut cursor.positions[slot];
            let log = &state.topics[topic.as_str()].partitions[*partition as usize];
            if let Some(entry) = log.first_at_or_after(*position) {
                *position = entry.offset + 1;
                let consumed = Consumed {
                    topic: topic.clone(),
                    partition: *partition,
                    offset: entry.offset,
                    record: entry.record.clone(),
                };
                cursor.next = (slot + 1) % n;
                return Some(consumed);
            }
        }
        None
    }
}

#[async_trait::async_trait]
impl Consumer for MemoryConsumer {
    async fn recv(&self) -> Result<Consumed, Error> {
        loop {
            // Registered before the check, so an append in between still wakes us.
            let appended = self.shared.appended.notified();
            tokio::pin!(appended);
            appended.as_mut().enable();
            if let Some(consumed) = self.try_recv() {
                return Ok(consumed);
            }
            appended.await;
        }
    }

    async fn commit(&self, positions: &[Position]) -> Result<(), Error> {
        let mut state = self.shared.lock();
        let group = state
            .groups
            .get_mut(&self.group)
            .expect("a live member's group exists");
        for p in positions {
            let committed = group
                .committed
                .get_mut(&(p.topic.clone(), p.partition))
                .ok_or_else(|| Error::UnknownTopic(p.topic.clone()))?;
            // Monotonic: an older member's late commit never rewinds the group.
            *committed = (*committed).max(p.offset + 1);
        }
        drop(state);
        self.shared.committed.notify_waiters();
        Ok(())
    }
}

impl Drop for MemoryConsumer {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        if let Some(group) = state.groups.get_mut(&self.group) {
            group.members.remove(&self.member);
            group.generation += 1;
        }
        drop(state);
        self.shared.appended.notify_waiters();
    }
}

impl Cursor {
    /// Static assignment: partition `p` of a topic goes to the `p % n`-th of the `n` members
    /// subscribed to it, by joining order. Kept partitions keep their read position; newly
    /// owned ones start at the group's committed offset.
    fn reassign(&mut self, state: &State, group: &Group, me: u64) {
        let mine = &group.members[&me];
        let mut positions = Vec::new();
        for topic in mine {
            let readers: BTreeSet<u64> = group
                .members
                .iter()
                .filter(|(_, topics)| topics.contains(topic))
                .map(|(id, _)| *id)
                .collect();
            let rank = readers
                .iter()
                .position(|id| *id == me)
                .expect("a member reads its own topics");
            for p in 0..state.topics[topic.as_str()].partitions.len() {
                if p % readers.len() != rank {
                    continue;
                }
                let key = (topic.clone(), p as i32);
                let kept = self
                    .positions
                    .iter()
                    .find(|(k, _)| *k == key)
                    .map(|(_, o)| *o);
                let offset = kept.unwrap_or(group.committed[&key]);
                positions.push((key, offset));
            }
        }
        self.positions = positions;
        self.next = 0;
        self.generation = group.generation;
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent across a panic (every mutation completes under the
        // lock), so a poisoned lock is still safe to use.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl State {
    /// Records of this partition below the returned offset are committed by every group
    /// reading the topic, so dropping them loses nothing a group still needs.
    fn released_below(&self, topic: &str, partition: usize) -> i64 {
        let key = (topic.to_owned(), partition as i32);
        self.groups
            .values()
            .filter_map(|g| g.committed.get(&key).copied())
            .min()
            .unwrap_or(i64::MAX)
    }
}

impl Topic {
    fn partition_for(&mut self, key: &Bytes) -> usize {
        let n = self.partitions.len();
        if key.is_empty() {
            self.next_unkeyed = (self.next_unkeyed + 1) % n;
            return self.next_unkeyed;
        }
        fnv1a(key) as usize % n
    }
}

impl Log {
    /// The oldest retained offset (or the next one when empty): where a new group starts.
    fn start(&self) -> i64 {
        self.entries.front().map_or(self.next, |e| e.offset)
    }

    fn has_room(&self, size: usize, limits: MemoryBusConfig) -> bool {
        self.entries.is_empty()
            || (self.entries.len() < limits.max_records && self.bytes + size <= limits.max_bytes)
    }

    /// Drops released records until a record of `key` and `size` bytes fits; returns how
    /// many it dropped. On a compacted topic the incoming record supersedes its key too.
    fn make_room(
        &mut self,
        key: &Bytes,
        size: usize,
        released_below: i64,
        compacted: bool,
        limits: MemoryBusConfig,
    ) -> usize {
        if self.has_room(size, limits) {
            return 0;
        }
        let before = self.entries.len();
        if compacted {
            let mut later_keys = HashSet::from([key.clone()]);
            let mut keep = VecDeque::with_capacity(self.entries.len());
            for entry in self.entries.drain(..).rev() {
                let superseded = !later_keys.insert(entry.record.key.clone());
                if superseded && entry.offset < released_below {
                    self.bytes -= entry.size;
                } else {
                    keep.push_front(entry);
                }
            }
            self.entries = keep;
        } else {
            while !self.has_room(size, limits) {
                match self.entries.front() {
                    Some(e) if e.offset < released_below => {
                        self.bytes -= e.size;
                        self.entries.pop_front();
                    }
                    _ => break,
                }
            }
        }
        before - self.entries.len()
    }

    fn first_at_or_after(&self, offset: i64) -> Option<&Entry> {
        if offset >= self.next {
            return None;
        }
        let i = self.entries.partition_point(|e| e.offset < offset);
        self.entries.get(i)
    }
}

fn record_size(record: &Record) -> usize {
    record.key.len()
        + record.payload.len()
        + record
            .headers
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum::<usize>()
}

/// 32-bit FNV-1a: stable across processes and releases, unlike `std`'s hasher.
fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::time::Duration;

    use super::*;

    fn bus(max_records: usize) -> MemoryBus {
        MemoryBus::new(MemoryBusConfig {
            max_records,
            max_bytes: 1 << 20,
        })
    }

    fn topic(name: &str, partitions: i32, compacted: bool) -> TopicSpec {
        TopicSpec {
            name: name.to_owned(),
            partitions,
            retention_ms: 3_600_000,
            compacted,
        }
    }

    fn record(key: &str, payload: &str) -> Record {
        Record {
            key: Bytes::copy_from_slice(key.as_bytes()),
            payload: Bytes::copy_from_slice(payload.as_bytes()),
            ..Record::default()
        }
    }

    async fn recv(consumer: &MemoryConsumer) -> Consumed {
        tokio::time::timeout(Duration::from_secs(5), consumer.recv())
            .await
            .expect("a record within 5 s")
            .unwrap()
    }

    async fn nothing_more(consumer: &MemoryConsumer) {
        let more = tokio::time::timeout(Duration::from_millis(50), consumer.recv()).await;
        assert!(more.is_err(), "unexpected record {more:?}");
    }

    #[tokio::test]
    async fn same_key_always_lands_in_the_same_partition() {
        let bus = bus(1000);
        bus.ensure_topics(&[topic("t", 4, false)]).unwrap();
        let mut partitions: BTreeMap<String, BTreeSet<i32>> = BTreeMap::new();
        for i in 0..200 {
            let key = format!("vin-{}", i % 20);
            let delivered = bus.send("t", record(&key, "x")).await.unwrap();
            partitions
                .entry(key)
                .or_default()
                .insert(delivered.partition);
        }
        assert!(partitions.values().all(|p| p.len() == 1), "{partitions:?}");
        assert_eq!(bus.records_appended("t"), Some(200));
        assert_eq!(bus.records_appended("nope"), None);
        let used: BTreeSet<i32> = partitions.values().flatten().copied().collect();
        assert!(
            used.len() > 1,
            "20 keys all hashed to one partition: {used:?}"
        );

        // And consumers see each record where the producer was told it landed.
        let consumer = bus.consumer("g", &["t"]).unwrap();
        for _ in 0..200 {
            let c = recv(&consumer).await;
            let key = std::str::from_utf8(&c.record.key).unwrap();
            assert_eq!(partitions[key], BTreeSet::from([c.partition]));
        }
    }

    #[tokio::test]
    async fn groups_resume_from_their_own_committed_offsets() {
        let bus = bus(1000);
        bus.ensure_topics(&[topic("t", 1, false)]).unwrap();
        for i in 0..10 {
            bus.send("t", record("k", &i.to_string())).await.unwrap();
        }
        let a = bus.consumer("a", &["t"]).unwrap();
        for expected in 0..5 {
            assert_eq!(recv(&a).await.offset, expected);
        }
        a.commit(&[Position {
            topic: "t".into(),
            partition: 0,
            offset: 4,
        }])
        .await
        .unwrap();
        drop(a);
        assert_eq!(bus.committed("a", "t", 0), Some(5));

        let a = bus.consumer("a", &["t"]).unwrap();
        assert_eq!(recv(&a).await.offset, 5);
        // Another group is independent and starts at the beginning.
        let b = bus.consumer("b", &["t"]).unwrap();
        assert_eq!(recv(&b).await.offset, 0);
    }

    #[tokio::test]
    async fn uncommitted_records_are_delivered_again_after_the_consumer_goes() {
        let bus = bus(1000);
        bus.ensure_topics(&[topic("t", 1, false)]).unwrap();
        for i in 0..6 {
            bus.send("t", record("k", &i.to_string())).await.unwrap();
        }
        let first = bus.consumer("g", &["t"]).unwrap();
        let mut seen = Vec::new();
        for _ in 0..6 {
            seen.push(recv(&first).await);
        }
        first.commit(&[seen[2].position()]).await.unwrap();
        drop(first); // a crash: 3..6 were consumed but never committed

        let second = bus.consumer("g", &["t"]).unwrap();
        for expected in &seen[3..] {
            assert_eq!(&recv(&second).await, expected);
        }
        nothing_more(&second).await;
    }

    #[tokio::test]
    async fn members_split_partitions_and_take_over_a_leaving_members_share() {
        let bus = bus(1000);
        bus.ensure_topics(&[topic("t", 4, false)]).unwrap();
        let first = bus.consumer("g", &["t"]).unwrap();
        let second = bus.consumer("g", &["t"]).unwrap();
        for i in 0..40 {
            bus.send("t", record(&format!("k{i}"), "x")).await.unwrap();
        }
        let mut first_partitions = BTreeSet::new();
        let mut second_records = Vec::new();
        for _ in 0..20 {
            first_partitions.insert(recv(&first).await.partition);
        }
        nothing_more(&first).await;
        while let Ok(Ok(c)) = tokio::time::timeout(Duration::from_millis(50), second.recv()).await {
            second_records.push(c);
        }
        assert_eq!(first_partitions, BTreeSet::from([0, 2]));
        assert_eq!(second_records.len(), 20);
        assert!(second_records.iter().all(|c| c.partition % 2 == 1));

        // The second member commits only its first record of each partition, then leaves.
        let firsts: Vec<Position> = [1, 3]
            .iter()
            .map(|p| {
                second_records
                    .iter()
                    .find(|c| c.partition == *p)
                    .unwrap()
                    .position()
            })
            .collect();
        second.commit(&firsts).await.unwrap();
        drop(second);
        let mut taken_over = Vec::new();
        for _ in 0..18 {
            taken_over.push(recv(&first).await);
        }
        nothing_more(&first).await;
        let mut expected: Vec<_> = second_records
            .into_iter()
            .filter(|c| !firsts.contains(&c.position()))
            .collect();
        expected.sort_by_key(|c| (c.partition, c.offset));
        taken_over.sort_by_key(|c| (c.partition, c.offset));
        assert_eq!(taken_over, expected);
    }

    #[tokio::test]
    async fn a_full_partition_makes_the_producer_wait_instead_of_dropping() {
        let bus = bus(3);
        bus.ensure_topics(&[topic("t", 1, false)]).unwrap();
        let consumer = bus.consumer("g", &["t"]).unwrap();
        for i in 0..3 {
            bus.send("t", record("k", &i.to_string())).await.unwrap();
        }
        let producer = bus.clone();
        let fourth = tokio::spawn(async move { producer.send("t", record("k", "3")).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !fourth.is_finished(),
            "the producer must wait while the group has not committed"
        );

        // Consuming alone frees nothing; committing does.
        let first = recv(&consumer).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!fourth.is_finished());
        consumer.commit(&[first.position()]).await.unwrap();
        let delivered = tokio::time::timeout(Duration::from_secs(5), fourth)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(delivered.offset, 3);
        assert_eq!(bus.retained("t", 0), vec![1, 2, 3]);
        for expected in 1..4 {
            assert_eq!(recv(&consumer).await.offset, expected);
        }
    }

    #[tokio::test]
    async fn retention_drops_only_what_every_group_committed() {
        let bus = bus(4);
        bus.ensure_topics(&[topic("t", 1, false), topic("unread", 1, false)])
            .unwrap();
        let fast = bus.consumer("fast", &["t"]).unwrap();
        let slow = bus.consumer("slow", &["t"]).unwrap();
        for i in 0..4 {
            bus.send("t", record("k", &i.to_string())).await.unwrap();
        }
        for _ in 0..4 {
            recv(&fast).await;
        }
        for _ in 0..3 {
            recv(&slow).await;
        }
        fast.commit(&[Position {
            topic: "t".into(),
            partition: 0,
            offset: 3,
        }])
        .await
        .unwrap();
        slow.commit(&[Position {
            topic: "t".into(),
            partition: 0,
            offset: 1,
        }])
        .await
        .unwrap();
        for i in 4..6 {
            bus.send("t", record("k", &i.to_string())).await.unwrap();
        }
        // Offsets 0 and 1 were committed by both groups; 2 and 3 are still needed by `slow`.
        assert_eq!(bus.retained("t", 0), vec![2, 3, 4, 5]);
        assert_eq!(
            recv(&slow).await.offset,
            3,
            "slow reads on from its own position"
        );

        // A topic no group reads keeps its newest records and never blocks.
        for i in 0..10 {
            bus.send("unread", record("k", &i.to_string()))
                .await
                .unwrap();
        }
        assert_eq!(bus.retained("unread", 0), vec![6, 7, 8, 9]);
    }

    #[tokio::test]
    async fn the_byte_bound_also_applies() {
        let bus = MemoryBus::new(MemoryBusConfig {
            max_records: 1000,
            max_bytes: 100,
        });
        bus.ensure_topics(&[topic("t", 1, false)]).unwrap();
        for _ in 0..5 {
            bus.send("t", record("k", &"x".repeat(39))).await.unwrap();
        }
        // 40 bytes each: at most two fit in 100 bytes.
        assert_eq!(bus.retained("t", 0), vec![3, 4]);
        // A record larger than the bound still enters an emptied partition.
        bus.send("t", record("k", &"x".repeat(500))).await.unwrap();
        assert_eq!(bus.retained("t", 0), vec![5]);
    }

    #[tokio::test]
    async fn a_compacted_topic_keeps_the_latest_record_per_key() {
        let bus = bus(3);
        bus.ensure_topics(&[topic("consent", 1, true)]).unwrap();
        for (key, value) in [("a", "1"), ("b", "1"), ("a", "2"), ("b", "2"), ("c", "1")] {
            bus.send("consent", record(key, value)).await.unwrap();
        }
        assert_eq!(bus.retained("consent", 0), vec![2, 3, 4]);
        let reader = bus.consumer("late", &["consent"]).unwrap();
        let mut seen = Vec::new();
        for _ in 0..3 {
            let c = recv(&reader).await;
            seen.push((c.record.key, c.record.payload));
        }
        let expected = [("a", "2"), ("b", "2"), ("c", "1")];
        assert_eq!(
            seen,
            expected.map(|(k, v)| (Bytes::from(k), Bytes::from(v)))
        );
        reader
            .commit(&[Position {
                topic: "consent".into(),
                partition: 0,
                offset: 4,
            }])
            .await
            .unwrap();

        // A new key beyond the bound waits rather than evicting another key's latest record…
        let producer = bus.clone();
        let new_key = tokio::spawn(async move { producer.send("consent", record("d", "1")).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!new_key.is_finished());
        new_key.abort();
        // …while a newer record for a known key replaces its committed predecessor.
        let delivered = tokio::time::timeout(
            Duration::from_secs(5),
            bus.send("consent", record("a", "3")),
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(delivered.offset, 5);
        assert_eq!(bus.retained("consent", 0), vec![3, 4, 5]);
    }

    #[tokio::test]
    async fn recv_waits_for_the_next_append() {
        let bus = bus(10);
        bus.ensure_topics(&[topic("t", 2, false)]).unwrap();
        let consumer = bus.consumer("g", &["t"]).unwrap();
        let waiting = tokio::spawn(async move { recv(&consumer).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished());
        bus.send("t", record("k", "late")).await.unwrap();
        assert_eq!(waiting.await.unwrap().record.payload, Bytes::from("late"));
    }

    #[tokio::test]
    async fn unknown_topics_are_refused() {
        let bus = bus(10);
        assert!(
            matches!(bus.send("nope", record("k", "x")).await, Err(Error::UnknownTopic(t)) if t == "nope")
        );
        assert!(matches!(
            bus.consumer("g", &["nope"]),
            Err(Error::UnknownTopic(_))
        ));
        assert!(matches!(
            bus.ensure_topics(&[topic("t", 0, false)]),
            Err(Error::Config(_))
        ));
    }
}
