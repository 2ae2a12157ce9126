//! The audit log: every query and export, appended to a hash chain in the store before
//! its result is handed out.
//!
//! Each process writes its own chain, `audit/log/chain=<writer>-<start>-<random>/`, one
//! JSON object per entry named by its sequence number (`00000000000000000042.json`).
//! An entry holds `prev`, the hash of the entry before it (zeros for the first), and
//! `hash`, the SHA-256 of its own canonical JSON (keys sorted, no spaces) without `hash`.
//! Changing, deleting, moving or reordering an entry breaks the chain at that entry,
//! which [`verify`] finds. Cutting entries off the end of a chain or removing a whole
//! chain leaves no broken link; the service therefore logs each entry's chain, sequence
//! number and hash, so the log collector holds a copy of every chain head.
//!
//! Appends of one process are serialized: an entry is written (durably, by the store's
//! contract) before the next is hashed against it. A failed write leaves the head where
//! it was, so the next entry takes its place and the chain stays whole.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use bytes::Bytes;
use chrono::{SecondsFormat, Utc};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use inland_store::{DataClass, ObjectStore};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::auth::{Principal, Role};
use crate::engine::Interface;
use crate::metrics;

/// Where the chains live.
pub const LOG_PREFIX: &str = "audit/log/";
/// The partition column naming an entry's chain in the `audit_log` table.
pub const CHAIN_COLUMN: &str = "chain";
const ZERO_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What was done: a query, or an export out of the country.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Query,
    Export,
}

/// One audit entry as stored (without its `hash`). An export's transfer record is
/// flattened into it, so SQL over `audit_log` sees plain columns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub chain: String,
    pub seq: u64,
    /// The hash of the previous entry of the chain; zeros for the first.
    pub prev: String,
    /// When the query finished, RFC 3339 UTC with milliseconds.
    pub at: String,
    pub kind: Kind,
    pub user: String,
    pub role: Role,
    pub interface: Interface,
    /// The SQL text as the caller sent it.
    pub sql: String,
    /// The tables the SQL names, sorted.
    pub tables: Vec<String>,
    /// Rows handed to the caller (or written by an export); absent on failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    /// `ok`, or the error's code (`invalid_input`, `permission_denied`, …).
    pub outcome: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub duration_ms: u64,
    /// The transfer record of an export.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub transfer: Option<Transfer>,
}

/// What left the country with an export, and on whose approval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transfer {
    /// Who approved the transfer, as given to `inland export --approved-by`.
    pub approved_by: String,
    /// Groups of fewer than `k` vehicles were suppressed.
    pub k: u64,
    pub groups_suppressed: u64,
    /// `csv` or `parquet`.
    pub output_format: String,
    /// The output file's name (without its directory).
    pub output_file: String,
    /// SHA-256 of the output file as written.
    pub output_sha256: String,
}

/// What the engine reports about a finished (or failed) query.
#[derive(Debug, Clone)]
pub struct Record {
    pub kind: Kind,
    pub principal: Principal,
    pub interface: Interface,
    pub sql: String,
    pub tables: Vec<String>,
    pub rows: Option<u64>,
    /// `Ok` or the error's code and message.
    pub outcome: Result<(), (inland_core::ErrorCode, String)>,
    pub duration_ms: u64,
    pub transfer: Option<Transfer>,
}

/// Where an entry landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    pub chain: String,
    pub seq: u64,
    pub hash: String,
}

struct Head {
    next_seq: u64,
    prev: String,
}

/// This process's chain.
pub struct AuditLog {
    store: Arc<dyn ObjectStore>,
    chain: String,
    head: tokio::sync::Mutex<Head>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("chain", &self.chain)
            .finish_non_exhaustive()
    }
}

impl AuditLog {
    /// Starts a new chain for `writer` (empty: the host name).
    pub fn start(store: Arc<dyn ObjectStore>, writer: &str) -> Self {
        let writer = if writer.is_empty() {
            host_name()
        } else {
            writer.to_owned()
        };
        let chain = format!(
            "{}-{}-{}",
            sanitize(&writer),
            Utc::now().format("%Y%m%dT%H%M%SZ"),
            hex::encode(rand::random::<[u8; 4]>())
        );
        Self {
            store,
            chain,
            head: tokio::sync::Mutex::new(Head {
                next_seq: 0,
                prev: ZERO_HASH.into(),
            }),
        }
    }

    pub fn chain(&self) -> &str {
        &self.chain
    }

    /// Appends `record`; returns once the entry is durable in the store.
    pub async fn append(&self, record: Record) -> Result<Appended, inland_store::Error> {
        let mut head = self.head.lock().await;
        let (outcome, error) = match record.outcome {
            Ok(()) => ("ok".to_owned(), None),
            Err((code, message)) => (code.as_str().to_owned(), Some(message)),
        };
        let entry = Entry {
            chain: self.chain.clone(),
            seq: head.next_seq,
            prev: head.prev.clone(),
            at: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
            kind: record.kind,
            user: record.principal.user,
            role: record.principal.role,
            interface: record.interface,
            sql: record.sql,
            tables: record.tables,
            rows: record.rows,
            outcome,
            error,
            duration_ms: record.duration_ms,
            transfer: record.transfer,
        };
        let (body, hash) = seal(&entry);
        let key = entry_key(&self.chain, entry.seq);
        debug_assert_eq!(DataClass::of_key(&key), Some(DataClass::Audit));
        let started = std::time::Instant::now();
        let written = self.store.put(&key, body).await;
        metrics::audit_write(started.elapsed(), written.is_ok());
        written?;
        let appended = Appended {
            chain: self.chain.clone(),
            seq: entry.seq,
            hash: hash.clone(),
        };
        head.next_seq += 1;
        head.prev = hash;
        Ok(appended)
    }
}

fn entry_key(chain: &str, seq: u64) -> String {
    format!("{LOG_PREFIX}{CHAIN_COLUMN}={chain}/{seq:020}.json")
}

/// The stored bytes of `entry` (one JSON line with its `hash`) and that hash.
fn seal(entry: &Entry) -> (Bytes, String) {
    let value = serde_json::to_value(entry).expect("an entry is plain data");
    let hash = hash_of(&value);
    let Value::Object(mut map) = value else {
        unreachable!("an entry serializes to an object")
    };
    map.insert("hash".into(), Value::String(hash.clone()));
    let mut body = canonical(&Value::Object(map));
    body.push(b'\n');
    (body.into(), hash)
}

fn hash_of(value_without_hash: &Value) -> String {
    hex::encode(Sha256::digest(canonical(value_without_hash)))
}

/// JSON with object keys sorted at every level and no whitespace: the same bytes for the
/// same content, whatever order a writer or parser keeps keys in.
fn canonical(value: &Value) -> Vec<u8> {
    fn write(value: &Value, out: &mut Vec<u8>) {
        match value {
            Value::Object(map) => {
                let sorted: BTreeMap<&String, &Value> = map.iter().collect();
                out.push(b'{');
                for (i, (key, value)) in sorted.into_iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    serde_json::to_writer(&mut *out, key).expect("writing to a Vec");
                    out.push(b':');
                    write(value, out);
                }
                out.push(b'}');
            }
            Value::Array(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write(item, out);
                }
                out.push(b']');
            }
            scalar => serde_json::to_writer(&mut *out, scalar).expect("writing to a Vec"),
        }
    }
    let mut out = Vec::with_capacity(512);
    write(value, &mut out);
    out
}

fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "inland".into())
}

/// Keeps a chain name a single, plain path segment.
fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The `audit_log` table's columns (plus the `chain` partition column).
pub fn table_schema() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
        let text = || DataType::Utf8;
        std::sync::Arc::new(Schema::new(vec![
            Field::new("seq", DataType::UInt64, false),
            Field::new("prev", text(), false),
            Field::new("hash", text(), false),
            Field::new(
                "at",
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                false,
            ),
            Field::new("kind", text(), false),
            Field::new("user", text(), false),
            Field::new("role", text(), false),
            Field::new("interface", text(), false),
            Field::new("sql", text(), false),
            Field::new(
                "tables",
                DataType::List(std::sync::Arc::new(Field::new("item", text(), true))),
                false,
            ),
            Field::new("rows", DataType::UInt64, true),
            Field::new("outcome", text(), false),
            Field::new("error", text(), true),
            Field::new("duration_ms", DataType::UInt64, false),
            Field::new("approved_by", text(), true),
            Field::new("k", DataType::UInt64, true),
            Field::new("groups_suppressed", DataType::UInt64, true),
            Field::new("output_format", text(), true),
            Field::new("output_file", text(), true),
            Field::new("output_sha256", text(), true),
        ]))
    });
    SCHEMA.clone()
}

/// The outcome of checking one chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    pub chain: String,
    /// Entries checked (up to and including a broken one).
    pub entries: u64,
    /// The first entry's sequence number; above 0 when older entries are gone (expired
    /// after the audit shelf life, or deleted).
    pub first_seq: u64,
    pub last_seq: u64,
    pub first_at: String,
    pub last_at: String,
    /// The first broken link, if any.
    pub broken: Option<BrokenLink>,
}

/// Where and how a chain is broken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenLink {
    pub key: String,
    pub problem: String,
}

/// Walks every chain under [`LOG_PREFIX`] and reports, per chain, the first broken link.
pub async fn verify(store: &dyn ObjectStore) -> Result<Vec<ChainReport>, inland_store::Error> {
    let mut chains: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for meta in store.list(LOG_PREFIX).await? {
        let chain = meta.key[LOG_PREFIX.len()..]
            .split('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        chains.entry(chain).or_default().push(meta.key);
    }
    let mut reports = Vec::with_capacity(chains.len());
    for (dir, keys) in chains {
        reports.push(verify_chain(store, &dir, keys).await?);
    }
    Ok(reports)
}

async fn verify_chain(
    store: &dyn ObjectStore,
    dir: &str,
    keys: Vec<String>,
) -> Result<ChainReport, inland_store::Error> {
    let chain = dir
        .strip_prefix(&format!("{CHAIN_COLUMN}="))
        .unwrap_or(dir)
        .to_owned();
    let mut report = ChainReport {
        chain: chain.clone(),
        entries: 0,
        first_seq: 0,
        last_seq: 0,
        first_at: String::new(),
        last_at: String::new(),
        broken: None,
    };
    let mut previous: Option<(u64, String)> = None;
    for key in keys {
        report.entries += 1;
        let body = store.get(&key).await?;
        let checked = check_entry(&chain, &key, &body, previous.as_ref());
        match checked {
            Ok((entry, hash)) => {
                if previous.is_none() {
                    report.first_seq = entry.seq;
                    report.first_at.clone_from(&entry.at);
                }
                report.last_seq = entry.seq;
                report.last_at.clone_from(&entry.at);
                previous = Some((entry.seq, hash));
            }
            Err(problem) => {
                report.broken = Some(BrokenLink { key, problem });
                break;
            }
        }
    }
    Ok(report)
}

/// Checks one entry against its key, its own hash and its predecessor.
fn check_entry(
    chain: &str,
    key: &str,
    body: &[u8],
    previous: Option<&(u64, String)>,
) -> Result<(Entry, String), String> {
    let Ok(Value::Object(mut map)) = serde_json::from_slice::<Value>(body) else {
        return Err("not a JSON object: the entry was overwritten".into());
    };
    let Some(Value::String(stored)) = map.remove("hash") else {
        return Err("has no hash: the entry was overwritten".into());
    };
    let value = Value::Object(map);
    if hash_of(&value) != stored {
        return Err("its hash does not match its content: the entry was modified".into());
    }
    let entry: Entry = serde_json::from_value(value)
        .map_err(|e| format!("not an audit entry ({e}): the entry was overwritten"))?;
    if entry.chain != chain {
        return Err(format!(
            "belongs to chain {}: it was moved here from another chain",
            entry.chain
        ));
    }
    if key != entry_key(chain, entry.seq) {
        return Err(format!(
            "holds entry {} under another entry's name: entries were moved or reordered",
            entry.seq
        ));
    }
    match previous {
        None if entry.seq == 0 && entry.prev != ZERO_HASH => {
            Err("the first entry does not start from the zero hash".into())
        }
        Some((seq, _)) if entry.seq != seq + 1 => Err(format!(
            "entries {} to {} are missing: they were deleted",
            seq + 1,
            entry.seq - 1
        )),
        Some((seq, hash)) if &entry.prev != hash => Err(format!(
            "its prev does not match the hash of entry {seq}: an entry was replaced or reordered"
        )),
        _ => Ok((entry, stored)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use inland_core::ErrorCode;
    use inland_store::LocalStore;

    fn record(sql: &str) -> Record {
        Record {
            kind: Kind::Query,
            principal: Principal {
                user: "ana".into(),
                role: Role::Analyst,
            },
            interface: Interface::Http,
            sql: sql.into(),
            tables: vec!["telemetry".into()],
            rows: Some(3),
            outcome: Ok(()),
            duration_ms: 5,
            transfer: None,
        }
    }

    async fn chain_of(n: usize) -> (tempfile::TempDir, Arc<LocalStore>, AuditLog, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(LocalStore::open(dir.path()).unwrap());
        let log = AuditLog::start(store.clone(), "test-writer");
        let mut keys = Vec::new();
        for i in 0..n {
            let appended = log.append(record(&format!("SELECT {i}"))).await.unwrap();
            assert_eq!(appended.seq, i as u64);
            keys.push(entry_key(&appended.chain, appended.seq));
        }
        (dir, store, log, keys)
    }

    async fn only_report(store: &LocalStore) -> ChainReport {
        let mut reports = verify(store).await.unwrap();
        assert_eq!(reports.len(), 1);
        reports.pop().unwrap()
    }

    #[tokio::test]
    async fn an_untouched_chain_verifies_and_links_every_entry() {
        let (_dir, store, log, keys) = chain_of(4).await;
        let report = only_report(&store).await;
        assert_eq!(report.broken, None);
        assert_eq!(
            (report.entries, report.first_seq, report.last_seq),
            (4, 0, 3)
        );
        assert!(log.chain().starts_with("test-writer-"));
        let first: Value = serde_json::from_slice(&store.get(&keys[0]).await.unwrap()).unwrap();
        let second: Value = serde_json::from_slice(&store.get(&keys[1]).await.unwrap()).unwrap();
        assert_eq!(first["prev"], ZERO_HASH);
        assert_eq!(second["prev"], first["hash"]);
        assert_eq!(second["sql"], "SELECT 1");
        assert!(chrono::DateTime::parse_from_rfc3339(first["at"].as_str().unwrap()).is_ok());
    }

    #[tokio::test]
    async fn a_modified_entry_is_found() {
        let (_dir, store, _log, keys) = chain_of(3).await;
        let body = store.get(&keys[1]).await.unwrap();
        let forged = String::from_utf8(body.to_vec())
            .unwrap()
            .replace("\"rows\":3", "\"rows\":0");
        store.put(&keys[1], forged.into()).await.unwrap();
        let report = only_report(&store).await;
        let broken = report.broken.unwrap();
        assert_eq!(broken.key, keys[1]);
        assert!(
            broken.problem.contains("was modified"),
            "{}",
            broken.problem
        );
    }

    #[tokio::test]
    async fn a_deleted_entry_is_found() {
        let (_dir, store, _log, keys) = chain_of(4).await;
        store.delete(&keys[1]).await.unwrap();
        let broken = only_report(&store).await.broken.unwrap();
        assert_eq!(broken.key, keys[2]);
        assert!(
            broken.problem.contains("entries 1 to 1 are missing"),
            "{}",
            broken.problem
        );
    }

    #[tokio::test]
    async fn reordered_entries_are_found() {
        let (_dir, store, _log, keys) = chain_of(4).await;
        let (one, two) = (
            store.get(&keys[1]).await.unwrap(),
            store.get(&keys[2]).await.unwrap(),
        );
        store.put(&keys[1], two).await.unwrap();
        store.put(&keys[2], one).await.unwrap();
        let broken = only_report(&store).await.broken.unwrap();
        assert_eq!(broken.key, keys[1]);
        assert!(broken.problem.contains("reordered"), "{}", broken.problem);
    }

    #[tokio::test]
    async fn a_rehashed_replacement_still_breaks_the_next_link() {
        // The forger recomputes the entry's own hash; its successor's prev still names
        // the original.
        let (_dir, store, _log, keys) = chain_of(3).await;
        let body = store.get(&keys[1]).await.unwrap();
        let mut entry: Entry = {
            let Value::Object(mut map) = serde_json::from_slice::<Value>(&body).unwrap() else {
                unreachable!()
            };
            map.remove("hash");
            serde_json::from_value(Value::Object(map)).unwrap()
        };
        entry.sql = "SELECT 'innocent'".into();
        store.put(&keys[1], seal(&entry).0).await.unwrap();
        let broken = only_report(&store).await.broken.unwrap();
        assert_eq!(broken.key, keys[2]);
        assert!(
            broken.problem.contains("prev does not match"),
            "{}",
            broken.problem
        );
    }

    #[tokio::test]
    async fn expired_leading_entries_are_reported_not_broken() {
        let (_dir, store, _log, keys) = chain_of(3).await;
        store.delete(&keys[0]).await.unwrap();
        let report = only_report(&store).await;
        assert_eq!(report.broken, None);
        assert_eq!(report.first_seq, 1);
    }

    #[tokio::test]
    async fn failures_are_recorded_with_their_code_and_chains_are_per_process() {
        let (_dir, store, _log, _) = chain_of(1).await;
        let other = AuditLog::start(store.clone(), "");
        let mut failed = record("SELEC 1");
        failed.rows = None;
        failed.outcome = Err((ErrorCode::InvalidInput, "syntax".into()));
        let appended = other.append(failed).await.unwrap();
        let body = store.get(&entry_key(&appended.chain, 0)).await.unwrap();
        let value: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(value["outcome"], "invalid_input");
        assert_eq!(value["error"], "syntax");
        assert!(value.get("rows").is_none());
        let reports = verify(store.as_ref()).await.unwrap();
        assert_eq!(reports.len(), 2);
        assert!(reports.iter().all(|r| r.broken.is_none()));
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let value: Value =
            serde_json::from_str(r#"{"b":1,"a":{"d":[1,{"z":0,"y":"é"}],"c":null}}"#).unwrap();
        assert_eq!(
            String::from_utf8(canonical(&value)).unwrap(),
            r#"{"a":{"c":null,"d":[1,{"y":"é","z":0}]},"b":1}"#
        );
    }
}
