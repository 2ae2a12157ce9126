//! The vehicle's W3C trace context (`traceparent` call metadata), which parents the
//! gateway's upload spans, and the fallback root when there is none.

use rand::Rng;
use tonic::metadata::MetadataMap;

/// The caller's `traceparent` when it is well-formed: the parent of its upload spans.
pub fn incoming(metadata: &MetadataMap) -> Option<String> {
    metadata
        .get(inland_stage::trace::TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_valid(v))
        .map(str::to_owned)
}

/// A new root context, for the record header when neither the caller nor an exported
/// span provides one: downstream stages then still share one trace id.
pub fn new_root() -> String {
    let mut rng = rand::rng();
    let trace: u128 = rng.random_range(1..=u128::MAX);
    let span: u64 = rng.random_range(1..=u64::MAX);
    format!("00-{trace:032x}-{span:016x}-01")
}

/// version-traceid-parentid-flags, lower-case hex, ids not all zero.
fn is_valid(v: &str) -> bool {
    let parts: Vec<&str> = v.split('-').collect();
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    parts.len() == 4
        && hex(parts[0], 2)
        && parts[0] != "ff"
        && hex(parts[1], 32)
        && parts[1].bytes().any(|b| b != b'0')
        && hex(parts[2], 16)
        && parts[2].bytes().any(|b| b != b'0')
        && hex(parts[3], 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_a_valid_parent_and_ignores_a_bad_one() {
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let mut md = MetadataMap::new();
        md.insert("traceparent", parent.parse().unwrap());
        assert_eq!(incoming(&md).as_deref(), Some(parent));
        md.insert(
            "traceparent",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01"
                .parse()
                .unwrap(),
        );
        assert_eq!(incoming(&md), None);
        assert_eq!(incoming(&MetadataMap::new()), None);
        assert!(is_valid(&new_root()));
    }
}
