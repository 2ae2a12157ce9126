//! Pseudonym keys and the [`Pseudonymizer`]: VIN → `HMAC-SHA256(key, "inland/vin/v1" ||
//! VIN)`, the first 128 bits in lower-case hex.
//!
//! Keys live in a TOML file that stays in the country (`anonymizer.key_file`), one
//! `[[keys]]` table per epoch:
//!
//! ```toml
//! [[keys]]
//! epoch = 1
//! not_before = "1970-01-01T00:00:00Z"   # RFC 3339
//! secret = "…"                          # base64 of exactly 32 random bytes
//! ```
//!
//! The key in force for a record is the one with the latest `not_before` at or before the
//! record's `recorded_at`, so replaying a record gives the same pseudonym whenever it is
//! processed. Rotating means adding an epoch whose `not_before` lies ahead ([`rotate`]) and
//! restarting the anonymizer before that instant; records recorded from then on get new
//! pseudonyms that cannot be linked to the old ones without both keys. Deleting an old
//! epoch's secret makes its pseudonyms unlinkable for good (records recorded before the
//! first remaining epoch are then dead-lettered).
//!
//! Secrets never reach a log, an error or a `Debug` output.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use inland_core::Vin;
use inland_proto::Timestamp;
use serde::Deserialize;
use sha2::Sha256;

use crate::Error;

/// Domain separation: the same key never yields the same bytes for two uses.
const VIN_DOMAIN: &[u8] = b"inland/vin/v1";
const RECORD_DOMAIN: &[u8] = b"inland/record/v1";
/// Secrets are exactly this long: HMAC-SHA256's full strength, and no guessable short ones.
pub const SECRET_LEN: usize = 32;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFileToml {
    keys: Vec<KeyEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyEntry {
    epoch: u32,
    not_before: String,
    secret: String,
}

/// One epoch's key, ready to use: the HMAC state after absorbing the key, cloned per use.
#[derive(Clone)]
pub struct Key {
    epoch: u32,
    not_before_ns: i128,
    mac: Hmac<Sha256>,
}

impl Key {
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// The vehicle's pseudonym under this key: 32 lower-case hex digits.
    pub fn pseudonym(&self, vin: &Vin) -> String {
        self.hash(&[VIN_DOMAIN, vin.as_str().as_bytes()])
    }

    /// A stable id for one upload that reveals neither the VIN nor the vehicle-chosen
    /// message id (which may embed either), for de-duplicating redeliveries downstream.
    pub fn record_id(&self, vin: &Vin, message_id: &str) -> String {
        // The VIN has a fixed length, so the concatenation is unambiguous.
        self.hash(&[
            RECORD_DOMAIN,
            vin.as_str().as_bytes(),
            message_id.as_bytes(),
        ])
    }

    fn hash(&self, parts: &[&[u8]]) -> String {
        let mut mac = self.mac.clone();
        for part in parts {
            mac.update(part);
        }
        // Into a buffer: `hex::encode` collects chars one by one, ~0.25 µs more per record.
        let mut hex = [0; 32];
        hex::encode_to_slice(&mac.finalize().into_bytes()[..16], &mut hex)
            .expect("16 bytes fill 32 hex digits");
        String::from_utf8(hex.to_vec()).expect("hex digits are ASCII")
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("epoch", &self.epoch)
            .field("not_before_ns", &self.not_before_ns)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// Every key epoch of a key file, sorted by `not_before`.
#[derive(Debug, Clone)]
pub struct Pseudonymizer {
    keys: Vec<Key>,
}

impl Pseudonymizer {
    /// Reads and validates a key file; see the module docs for its format.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::KeyFileRead {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Validates key file contents; `path` only names the file in errors. Refuses a file
    /// without keys, a secret that is not base64 of exactly 32 bytes, and two epochs with
    /// the same number or the same `not_before`.
    pub fn parse(text: &str, path: &Path) -> Result<Self, Error> {
        let bad = |problem: String| Error::KeyFile {
            path: path.to_owned(),
            problem,
        };
        // The parser's own message may quote the offending text, which may be a secret:
        // name the line only.
        let file: KeyFileToml = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].lines().count().max(1));
            bad(format!(
                "not a key file (error near line {}): each [[keys]] table needs exactly \
                 epoch = <integer>, not_before = \"<RFC 3339 time>\" and secret = \"<base64 \
                 of {SECRET_LEN} bytes>\"",
                line.map_or_else(|| "?".to_owned(), |l| l.to_string())
            ))
        })?;
        if file.keys.is_empty() {
            return Err(bad("no [[keys]] in the file".into()));
        }
        let mut keys = Vec::with_capacity(file.keys.len());
        for entry in file.keys {
            let epoch = entry.epoch;
            let not_before = humantime::parse_rfc3339_weak(&entry.not_before).map_err(|_| {
                bad(format!(
                    "epoch {epoch}: not_before is not an RFC 3339 time (like 2026-01-01T00:00:00Z)"
                ))
            })?;
            let secret = BASE64
                .decode(entry.secret.trim())
                .map_err(|_| bad(format!("epoch {epoch}: the secret is not valid base64")))?;
            if secret.len() != SECRET_LEN {
                return Err(bad(format!(
                    "epoch {epoch}: the secret is {} bytes, it must be exactly {SECRET_LEN} \
                     random bytes",
                    secret.len()
                )));
            }
            let mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&secret)
                .expect("HMAC takes keys of any length");
            keys.push(Key {
                epoch,
                not_before_ns: system_nanos(not_before),
                mac,
            });
        }
        keys.sort_by_key(|k| k.not_before_ns);
        for pair in keys.windows(2) {
            if pair[0].not_before_ns == pair[1].not_before_ns {
                return Err(bad(format!(
                    "epochs {} and {} start at the same not_before: which is in force would \
                     be ambiguous",
                    pair[0].epoch, pair[1].epoch
                )));
            }
        }
        let mut epochs: Vec<u32> = keys.iter().map(|k| k.epoch).collect();
        epochs.sort_unstable();
        if let Some(pair) = epochs.windows(2).find(|p| p[0] == p[1]) {
            return Err(bad(format!("epoch {} appears twice", pair[0])));
        }
        Ok(Self { keys })
    }

    /// The key in force at `recorded_at`, or `None` when it precedes every epoch.
    pub fn key_at(&self, recorded_at: &Timestamp) -> Option<&Key> {
        let at = timestamp_nanos(recorded_at);
        let after = self.keys.partition_point(|k| k.not_before_ns <= at);
        after.checked_sub(1).map(|i| &self.keys[i])
    }

    /// The vehicle's pseudonym under every epoch, by epoch: what an erasure request names.
    pub fn pseudonyms(&self, vin: &Vin) -> Vec<(u32, String)> {
        self.keys
            .iter()
            .map(|k| (k.epoch, k.pseudonym(vin)))
            .collect()
    }

    /// The epochs in the file, in the order they come into force.
    pub fn epochs(&self) -> Vec<u32> {
        self.keys.iter().map(|k| k.epoch).collect()
    }
}

/// Creates a key file with one epoch in force since 1970 and a fresh random secret, for
/// development and first installs. Refuses to overwrite an existing file (that would
/// change every pseudonym). On Unix the file is readable by its owner only.
pub fn generate(path: &Path) -> Result<(), Error> {
    write_new(
        path,
        &format!(
            "# Inland pseudonym keys: keep this file in the country, readable by the \
             anonymizer only.\n# Rotate with a new [[keys]] epoch whose not_before lies \
             ahead; see inland-anonymizer's keys module.\n{}",
            entry(1, UNIX_EPOCH)
        ),
    )
}

/// Appends a new epoch with a fresh secret, in force from `not_before`, which must come
/// after every existing epoch. Returns the new epoch's number. Restart the anonymizer
/// before `not_before` so it is used from then on.
pub fn rotate(path: &Path, not_before: SystemTime) -> Result<u32, Error> {
    let current = Pseudonymizer::load(path)?;
    let start = system_nanos(not_before);
    if current
        .keys
        .last()
        .is_some_and(|k| k.not_before_ns >= start)
    {
        return Err(Error::KeyFile {
            path: path.to_owned(),
            problem: "a new epoch must start after the latest one".into(),
        });
    }
    let epoch = current.keys.iter().map(|k| k.epoch).max().unwrap_or(0) + 1;
    let write_err = |source| Error::KeyFileWrite {
        path: path.to_owned(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(write_err)?;
    file.write_all(format!("\n{}", entry(epoch, not_before)).as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(write_err)?;
    Ok(epoch)
}

fn entry(epoch: u32, not_before: SystemTime) -> String {
    let mut secret = [0u8; SECRET_LEN];
    rand::Rng::fill(&mut rand::rng(), &mut secret);
    format!(
        "[[keys]]\nepoch = {epoch}\nnot_before = \"{}\"\nsecret = \"{}\"\n",
        humantime::format_rfc3339(not_before),
        BASE64.encode(secret)
    )
}

fn write_new(path: &Path, contents: &str) -> Result<(), Error> {
    let write_err = |source| Error::KeyFileWrite {
        path: PathBuf::from(path),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(write_err)?;
    file.write_all(contents.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(write_err)
}

fn system_nanos(t: SystemTime) -> i128 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(after) => after.as_nanos() as i128,
        Err(before) => -(before.duration().as_nanos() as i128),
    }
}

/// Nanoseconds since the Unix epoch; no overflow for any `Timestamp`.
pub(crate) fn timestamp_nanos(t: &Timestamp) -> i128 {
    i128::from(t.seconds) * 1_000_000_000 + i128::from(t.nanos)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const VIN: &str = "LSVAU2180N2183294";
    const SECRET_A: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const SECRET_B: &str = "//79/Pv6+fj39vX08/Lx8O/u7ezr6uno5+bl5OPi4eA=";

    fn parse(text: &str) -> Result<Pseudonymizer, Error> {
        Pseudonymizer::parse(text, Path::new("keys.toml"))
    }

    fn two_epochs() -> Pseudonymizer {
        parse(&format!(
            "[[keys]]\nepoch = 2\nnot_before = \"2026-01-01T00:00:00Z\"\nsecret = \"{SECRET_B}\"\n\
             [[keys]]\nepoch = 1\nnot_before = \"2020-01-01T00:00:00Z\"\nsecret = \"{SECRET_A}\"\n"
        ))
        .unwrap()
    }

    fn at(rfc3339: &str) -> Timestamp {
        humantime::parse_rfc3339(rfc3339).unwrap().into()
    }

    #[test]
    fn the_key_in_force_follows_recorded_at() {
        let keys = two_epochs();
        assert_eq!(keys.epochs(), [1, 2]);
        assert!(keys.key_at(&at("2019-12-31T23:59:59Z")).is_none());
        let epoch = |t| keys.key_at(&at(t)).unwrap().epoch();
        assert_eq!(epoch("2020-01-01T00:00:00Z"), 1);
        assert_eq!(epoch("2025-12-31T23:59:59.999999999Z"), 1);
        assert_eq!(epoch("2026-01-01T00:00:00Z"), 2);
        assert_eq!(epoch("2100-01-01T00:00:00Z"), 2);
    }

    #[test]
    fn pseudonyms_are_hmac_sha256_truncated_and_differ_across_epochs() {
        let keys = two_epochs();
        let vin = Vin::parse(VIN).unwrap();
        let old = keys.key_at(&at("2024-06-01T00:00:00Z")).unwrap();
        let new = keys.key_at(&at("2026-06-01T00:00:00Z")).unwrap();
        let p = old.pseudonym(&vin);
        // Recomputed independently: the first 16 bytes of HMAC-SHA256, hex.
        let mut mac =
            <Hmac<Sha256> as KeyInit>::new_from_slice(&BASE64.decode(SECRET_A).unwrap()).unwrap();
        mac.update(b"inland/vin/v1LSVAU2180N2183294");
        let expected: String = mac.finalize().into_bytes()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(p, expected);
        assert_eq!(p.len(), 32);
        assert_eq!(old.pseudonym(&vin), p, "stable");
        assert_ne!(new.pseudonym(&vin), p);
        assert_ne!(old.record_id(&vin, "m-1"), old.record_id(&vin, "m-2"));
        assert_ne!(old.record_id(&vin, "m-1"), p);
        assert_eq!(
            keys.pseudonyms(&vin),
            [(1, p), (2, new.pseudonym(&vin))],
            "one per epoch, for erasure"
        );
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let keys = two_epochs();
        let debug = format!("{keys:?}");
        assert!(debug.contains("<redacted>"), "{debug}");
        for secret in [SECRET_A, SECRET_B] {
            let bytes = BASE64.decode(secret).unwrap();
            assert!(!debug.contains(secret));
            assert!(
                !debug.contains(&format!("{:?}", &bytes[..4])[1..8]),
                "{debug}"
            );
        }
    }

    #[test]
    fn bad_key_files_are_refused_with_a_reason_and_without_the_secret() {
        let short = BASE64.encode([7u8; 16]);
        let cases = [
            ("", "not a key file"),
            ("keys = []", "no [[keys]]"),
            (
                &*format!(
                    "[[keys]]\nepoch = 1\nnot_before = \"2020-01-01T00:00:00Z\"\nsecret = \"{short}\"\n"
                ),
                "is 16 bytes",
            ),
            (
                "[[keys]]\nepoch = 1\nnot_before = \"2020-01-01T00:00:00Z\"\nsecret = \"not base64!\"\n",
                "not valid base64",
            ),
            (
                &*format!(
                    "[[keys]]\nepoch = 1\nnot_before = \"yesterday\"\nsecret = \"{SECRET_A}\"\n"
                ),
                "RFC 3339",
            ),
            (
                &*format!(
                    "[[keys]]\nepoch = 1\nnot_before = \"2020-01-01T00:00:00Z\"\nsecret = \"{SECRET_A}\"\n\
                     [[keys]]\nepoch = 1\nnot_before = \"2021-01-01T00:00:00Z\"\nsecret = \"{SECRET_B}\"\n"
                ),
                "epoch 1 appears twice",
            ),
            (
                &*format!(
                    "[[keys]]\nepoch = 1\nnot_before = \"2020-01-01T00:00:00Z\"\nsecret = \"{SECRET_A}\"\n\
                     [[keys]]\nepoch = 2\nnot_before = \"2020-01-01T00:00:00Z\"\nsecret = \"{SECRET_B}\"\n"
                ),
                "same not_before",
            ),
            // A secret in the wrong field: the parser's message would quote it.
            (
                &*format!(
                    "[[keys]]\nepoch = \"{SECRET_A}\"\nnot_before = \"2020-01-01T00:00:00Z\"\nsecret = \"{SECRET_A}\"\n"
                ),
                "near line 2",
            ),
        ];
        for (text, expected) in cases {
            let err = parse(text).unwrap_err();
            let message = err.to_string();
            assert!(message.contains(expected), "{message}");
            assert!(message.contains("keys.toml"), "{message}");
            assert!(
                !message.contains(SECRET_A) && !message.contains(&short),
                "{message}"
            );
            assert_eq!(err.code(), inland_core::ErrorCode::InvalidInput);
        }
        let missing = Pseudonymizer::load(Path::new("/nonexistent/keys.toml")).unwrap_err();
        assert_eq!(missing.code(), inland_core::ErrorCode::NotFound);
    }

    #[test]
    fn generate_then_rotate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.toml");
        generate(&path).unwrap();
        assert!(generate(&path).is_err(), "never overwrites a key file");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "owner only: {mode:o}");
        }
        let vin = Vin::parse(VIN).unwrap();
        let now = SystemTime::now();
        let before = Pseudonymizer::load(&path).unwrap();
        let p1 = before.key_at(&now.into()).unwrap().pseudonym(&vin);

        let soon = now + Duration::from_secs(3600);
        assert_eq!(rotate(&path, soon).unwrap(), 2);
        assert!(rotate(&path, now).is_err(), "must start after the latest");
        let after = Pseudonymizer::load(&path).unwrap();
        assert_eq!(after.epochs(), [1, 2]);
        // Records recorded before the rotation keep their pseudonym; later ones get another.
        assert_eq!(after.key_at(&now.into()).unwrap().pseudonym(&vin), p1);
        let later = after
            .key_at(&(soon + Duration::from_secs(1)).into())
            .unwrap();
        assert_eq!(later.epoch(), 2);
        assert_ne!(later.pseudonym(&vin), p1);
        // Two generated files have different secrets.
        let other = dir.path().join("other.toml");
        generate(&other).unwrap();
        let other = Pseudonymizer::load(&other).unwrap();
        assert_ne!(other.key_at(&now.into()).unwrap().pseudonym(&vin), p1);
    }
}
