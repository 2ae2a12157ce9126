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
    // Once per upload: random bytes written as hex in place (formatting a u128 was ~1.5 %
    // of the gateway's CPU).
    let mut ids = [0u8; 24];
    rand::rng().fill(&mut ids);
    let (trace, span) = ids.split_at_mut(16);
    for id in [trace, span] {
        // An all-zero id is invalid; one in 2^64 draws.
        if id.iter().all(|&b| b == 0) {
            id[0] = 1;
        }
    }
    let mut text = *b"00-00000000000000000000000000000000-0000000000000000-01";
    hex::encode_to_slice(&ids[..16], &mut text[3..35]).expect("32 digits for 16 bytes");
    hex::encode_to_slice(&ids[16..], &mut text[36..52]).expect("16 digits for 8 bytes");
    String::from_utf8(text.to_vec()).expect("hex digits and dashes")
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
