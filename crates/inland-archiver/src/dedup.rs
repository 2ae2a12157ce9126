//! Recently archived (record id, purpose) pairs of one partition, to drop the copies an
//! at-least-once pipeline redelivers. Bounded: the oldest pair is forgotten first.

use std::collections::{HashSet, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};

/// A record id (128-bit hex) and a hash of the purpose: 24 bytes instead of two strings.
type Id = (u128, u64);

pub(crate) struct RecentIds {
    capacity: usize,
    seen: HashSet<Id>,
    order: VecDeque<Id>,
}

impl RecentIds {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            seen: HashSet::new(),
            order: VecDeque::new(),
        }
    }

    /// Remembers the pair; false if it was already remembered (a duplicate). A record id
    /// that is not hex (the anonymizer's check makes that impossible) is never a duplicate.
    pub(crate) fn insert(&mut self, record_id: &str, purpose: &str) -> bool {
        let Ok(id) = u128::from_str_radix(record_id, 16) else {
            return true;
        };
        // DefaultHasher::new() has fixed keys: the same purpose always hashes the same.
        let mut hasher = DefaultHasher::new();
        purpose.hash(&mut hasher);
        let key = (id, hasher.finish());
        if self.capacity == 0 || !self.seen.insert(key) {
            return self.capacity == 0;
        }
        self.order.push_back(key);
        if self.order.len() > self.capacity
            && let Some(old) = self.order.pop_front()
        {
            self.seen.remove(&old);
        }
        true
    }

    pub(crate) fn clear(&mut self) {
        self.seen.clear();
        self.order.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "0123456789abcdef0123456789abcdef";
    const B: &str = "fedcba9876543210fedcba9876543210";

    #[test]
    fn duplicates_are_found_per_purpose_within_the_capacity() {
        let mut ids = RecentIds::new(2);
        assert!(ids.insert(A, "p"));
        assert!(!ids.insert(A, "p"));
        assert!(ids.insert(A, "q"), "another purpose of the same upload");
        // A/p is the oldest and is forgotten when B/p comes in.
        assert!(ids.insert(B, "p"));
        assert!(ids.insert(A, "p"));
        ids.clear();
        assert!(ids.insert(B, "p"));
        let mut off = RecentIds::new(0);
        assert!(off.insert(A, "p") && off.insert(A, "p"));
    }
}
