//! The intent of the batch a partition is writing: its first and last offsets, stored
//! before any of its objects (see the crate docs for why replays need it).

use bytes::Bytes;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Manifest {
    pub(crate) first: i64,
    pub(crate) last: i64,
}

impl Manifest {
    pub(crate) fn to_bytes(self) -> Bytes {
        serde_json::to_vec(&self)
            .expect("two integers serialize")
            .into()
    }

    /// `None` for an object that is not a manifest (then no replay boundary is known, and
    /// the batch after a restart is cut by size and time like any other).
    pub(crate) fn parse(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice::<Self>(bytes)
            .ok()
            .filter(|m| m.first <= m.last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_garbage() {
        let m = Manifest {
            first: 100,
            last: 199,
        };
        assert_eq!(&m.to_bytes()[..], br#"{"first":100,"last":199}"#);
        assert_eq!(Manifest::parse(&m.to_bytes()), Some(m));
        assert_eq!(Manifest::parse(br#"{"first":2,"last":1}"#), None);
        assert_eq!(Manifest::parse(b"not json"), None);
    }
}
