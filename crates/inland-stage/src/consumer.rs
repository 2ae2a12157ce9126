use crate::{Error, Record};

/// A record read from a topic, with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumed {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub record: Record,
}

impl Consumed {
    /// The position that, once committed, marks this record and every earlier one of its
    /// partition as done.
    pub fn position(&self) -> Position {
        Position {
            topic: self.topic.clone(),
            partition: self.partition,
            offset: self.offset,
        }
    }
}

/// The last done record of a partition. Committing it means the group resumes at
/// `offset + 1` (Kafka's committed offset is the next one to read).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Position {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// Reads records as a member of a consumer group, from the group's committed offsets.
/// Records received but not committed are delivered again to whichever member of the group
/// owns their partition next (after a crash, a restart or a rebalance).
#[async_trait::async_trait]
pub trait Consumer: Send + Sync + 'static {
    /// The next record of the partitions assigned to this member; waits until one arrives.
    /// Cancel safe: dropping the future before it resolves loses no record.
    async fn recv(&self) -> Result<Consumed, Error>;

    /// Commits each position: the group will resume after it. Callers commit a position
    /// only once its record and every earlier one are done, so committing one whose
    /// partition has meanwhile moved to another member states a fact and is harmless.
    async fn commit(&self, positions: &[Position]) -> Result<(), Error>;
}
