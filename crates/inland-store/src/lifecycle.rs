//! Shelf lives on S3: the bucket's lifecycle rules delete each class's objects once its
//! shelf life ends, even when no Inland process runs.
//!
//! [`bootstrap`] creates the bucket if missing and writes one expiration rule per data
//! class prefix (`inland-<class>`) plus `inland-abort-incomplete-multipart` (replacing
//! every rule the bucket had), then reads them back. [`inspect`] only reads them. Both
//! report drift: a class no rule in force expires, or expires later (data kept longer than
//! its purpose allows) or sooner than configured, a different abort rule, and any rule
//! bootstrap does not write. Rules use prefixes only: Garage has no object tags.
//! [`check_lifecycle`] is the archiver's start-up gate: it fails when a class is missing
//! or kept longer. Each check sets the `inland_storage_lifecycle_drift` gauge.

use std::fmt;
use std::time::Duration;

use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, BucketLocationConstraint,
    CreateBucketConfiguration, ExpirationStatus, LifecycleExpiration, LifecycleRule,
    LifecycleRuleFilter,
};
use tokio_util::sync::CancellationToken;

use crate::s3::{Connection, classify, connect, verify_region};
use crate::{Backend, DataClass, Error, ShelfLife, StoreConfig, metrics};

/// The id of the rule that removes abandoned multipart uploads.
pub const ABORT_RULE_ID: &str = "inland-abort-incomplete-multipart";

/// The id of the expiration rule of `class`.
pub fn rule_id(class: DataClass) -> String {
    format!("inland-{}", class.as_str())
}

/// One lifecycle rule, as far as expiry goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub id: Option<String>,
    pub enabled: bool,
    /// The key prefix it applies to; "" for every object.
    pub prefix: String,
    /// A size or tag condition limits it to some of the objects under `prefix`.
    pub narrowed: bool,
    pub expire_after_days: Option<u32>,
    /// Expiry on a fixed date (never written by bootstrap).
    pub expire_on_date: Option<String>,
    pub abort_incomplete_after_days: Option<u32>,
    /// Transitions, noncurrent-version or delete-marker actions (never written by
    /// bootstrap).
    pub other_actions: bool,
}

impl Rule {
    fn written_by_bootstrap(id: String, prefix: &str) -> Self {
        Self {
            id: Some(id),
            enabled: true,
            prefix: prefix.into(),
            narrowed: false,
            expire_after_days: None,
            expire_on_date: None,
            abort_incomplete_after_days: None,
            other_actions: false,
        }
    }

    /// Whether both rules do the same thing, whatever their ids.
    fn same_effect(&self, other: &Rule) -> bool {
        Rule {
            id: None,
            ..self.clone()
        } == Rule {
            id: None,
            ..other.clone()
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.id.as_deref().unwrap_or("(no id)"))?;
        if !self.enabled {
            write!(f, " (disabled)")?;
        }
        write!(f, ": prefix {:?}", self.prefix)?;
        if self.narrowed {
            write!(f, " (only objects matching a size or tag condition)")?;
        }
        if let Some(days) = self.expire_after_days {
            write!(f, ", expire after {days} days")?;
        }
        if let Some(date) = &self.expire_on_date {
            write!(f, ", expire on {date}")?;
        }
        if let Some(days) = self.abort_incomplete_after_days {
            write!(f, ", abort incomplete multipart uploads after {days} days")?;
        }
        if self.other_actions {
            write!(f, ", other actions (transitions or noncurrent versions)")?;
        }
        Ok(())
    }
}

/// The rules [`bootstrap`] writes.
pub fn desired_rules(shelf: &ShelfLife, abort_days: u32) -> Vec<Rule> {
    let mut rules: Vec<Rule> = DataClass::ALL
        .into_iter()
        .map(|class| Rule {
            expire_after_days: Some(shelf.days(class)),
            ..Rule::written_by_bootstrap(rule_id(class), class.prefix())
        })
        .collect();
    rules.push(Rule {
        abort_incomplete_after_days: Some(abort_days),
        ..Rule::written_by_bootstrap(ABORT_RULE_ID.into(), "")
    });
    rules
}

/// How the rules in force differ from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drift {
    /// No enabled rule expires every object of the class: they are kept forever.
    Missing {
        class: DataClass,
        configured_days: u32,
    },
    /// The class's objects are kept longer than configured.
    Longer {
        class: DataClass,
        configured_days: u32,
        in_force_days: u32,
    },
    /// The class's objects are deleted before their configured shelf life.
    Shorter {
        class: DataClass,
        configured_days: u32,
        in_force_days: u32,
    },
    /// Abandoned multipart uploads are removed at another age, or never.
    AbortIncomplete {
        configured_days: u32,
        in_force_days: Option<u32>,
    },
    /// An enabled rule bootstrap does not write (changed, or added by hand).
    Unexpected { rule: Rule },
}

impl Drift {
    /// Whether data may be kept longer than its shelf life: the archiver refuses to start.
    pub fn keeps_data_too_long(&self) -> bool {
        matches!(self, Self::Missing { .. } | Self::Longer { .. })
    }
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing {
                class,
                configured_days,
            } => write!(
                f,
                "{}: no rule in force expires it (configured {configured_days} days), so it is \
                 kept forever",
                class.as_str()
            ),
            Self::Longer {
                class,
                configured_days,
                in_force_days,
            } => write!(
                f,
                "{}: expires after {in_force_days} days, longer than the configured \
                 {configured_days} days",
                class.as_str()
            ),
            Self::Shorter {
                class,
                configured_days,
                in_force_days,
            } => write!(
                f,
                "{}: expires after {in_force_days} days, sooner than the configured \
                 {configured_days} days",
                class.as_str()
            ),
            Self::AbortIncomplete {
                configured_days,
                in_force_days,
            } => match in_force_days {
                Some(days) => write!(
                    f,
                    "incomplete multipart uploads are removed after {days} days, configured \
                     {configured_days}"
                ),
                None => write!(
                    f,
                    "incomplete multipart uploads are never removed (configured \
                     {configured_days} {})",
                    if *configured_days == 1 { "day" } else { "days" }
                ),
            },
            Self::Unexpected { rule } => write!(f, "rule not written by bootstrap: {rule}"),
        }
    }
}

/// The drift of `rules` from the configuration.
pub fn diff(shelf: &ShelfLife, abort_days: u32, rules: &[Rule]) -> Vec<Drift> {
    let live: Vec<&Rule> = rules.iter().filter(|r| r.enabled).collect();
    let mut drift = Vec::new();
    for class in DataClass::ALL {
        let configured_days = shelf.days(class);
        // The earliest expiry of a rule that covers every object of the class.
        let in_force = live
            .iter()
            .filter(|r| !r.narrowed && class.prefix().starts_with(r.prefix.as_str()))
            .filter_map(|r| r.expire_after_days)
            .min();
        match in_force {
            None => drift.push(Drift::Missing {
                class,
                configured_days,
            }),
            Some(in_force_days) if in_force_days > configured_days => drift.push(Drift::Longer {
                class,
                configured_days,
                in_force_days,
            }),
            Some(in_force_days) if in_force_days < configured_days => drift.push(Drift::Shorter {
                class,
                configured_days,
                in_force_days,
            }),
            Some(_) => {}
        }
    }
    let abort = live
        .iter()
        .filter(|r| !r.narrowed && r.prefix.is_empty())
        .filter_map(|r| r.abort_incomplete_after_days)
        .min();
    if abort != Some(abort_days) {
        drift.push(Drift::AbortIncomplete {
            configured_days: abort_days,
            in_force_days: abort,
        });
    }
    let desired = desired_rules(shelf, abort_days);
    for rule in live {
        if !desired.iter().any(|d| d.same_effect(rule)) {
            drift.push(Drift::Unexpected { rule: rule.clone() });
        }
    }
    drift
}

/// What a bootstrap or check found.
#[derive(Debug, Clone)]
pub struct Report {
    pub backend: Backend,
    /// Which store, for people: bucket, endpoint and region, or the local directory.
    pub store: String,
    /// Bootstrap created the bucket.
    pub created_bucket: bool,
    /// Bootstrap wrote the rules.
    pub applied: bool,
    /// The rules in force (read back after writing).
    pub rules: Vec<Rule>,
    pub drift: Vec<Drift>,
}

impl Report {
    /// Drift that keeps data longer than configured (see [`Drift::keeps_data_too_long`]).
    pub fn blocking(&self) -> impl Iterator<Item = &Drift> {
        self.drift.iter().filter(|d| d.keeps_data_too_long())
    }

    fn local() -> Self {
        Self {
            backend: Backend::Local,
            store: "local directory: `inland run` deletes objects past their shelf life with \
                    its sweeper; no lifecycle rules to manage"
                .into(),
            created_bucket: false,
            applied: false,
            rules: Vec::new(),
            drift: Vec::new(),
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "store: {}", self.store)?;
        if self.created_bucket {
            writeln!(f, "created the bucket")?;
        }
        if self.applied {
            writeln!(f, "applied the lifecycle rules")?;
        }
        if self.backend == Backend::S3 {
            if self.rules.is_empty() {
                writeln!(f, "rules in force: none")?;
            } else {
                writeln!(f, "rules in force:")?;
                for rule in &self.rules {
                    writeln!(f, "  {rule}")?;
                }
            }
        }
        if self.drift.is_empty() {
            writeln!(f, "drift: none")
        } else {
            writeln!(f, "drift ({}):", self.drift.len())?;
            for drift in &self.drift {
                writeln!(f, "  - {drift}")?;
            }
            Ok(())
        }
    }
}

/// Creates the bucket if missing (in the configured region, after the region lock
/// checks), writes the rules, reads them back and reports drift.
pub async fn bootstrap(config: &StoreConfig) -> Result<Report, Error> {
    config.check()?;
    if config.backend == Backend::Local {
        return Ok(Report::local());
    }
    let conn = connect(&config.s3)?;
    let created_bucket = match verify_region(&conn).await {
        Ok(()) => false,
        Err(Error::NoSuchBucket { .. }) => {
            create_bucket(&conn).await?;
            verify_region(&conn).await?;
            true
        }
        Err(e) => return Err(e),
    };
    let abort_days = abort_days(config);
    let rules = desired_rules(&config.shelf_life, abort_days)
        .iter()
        .map(to_sdk)
        .collect::<Result<Vec<_>, _>>()?;
    conn.client
        .put_bucket_lifecycle_configuration()
        .bucket(&conn.bucket)
        .lifecycle_configuration(
            BucketLifecycleConfiguration::builder()
                .set_rules(Some(rules))
                .build()
                .map_err(|e| Error::Config(format!("lifecycle rules: {e}")))?,
        )
        .send()
        .await
        .map_err(|e| classify("PutBucketLifecycleConfiguration", &conn, "", e))?;
    let mut report = read_back(config, &conn).await?;
    report.created_bucket = created_bucket;
    report.applied = true;
    Ok(report)
}

/// Reads the rules in force and reports drift, changing nothing.
pub async fn inspect(config: &StoreConfig) -> Result<Report, Error> {
    config.check()?;
    if config.backend == Backend::Local {
        return Ok(Report::local());
    }
    let conn = connect(&config.s3)?;
    verify_region(&conn).await?;
    read_back(config, &conn).await
}

/// The archiver's start-up gate: like [`inspect`], but an error when a class is kept
/// longer than its shelf life (or forever).
pub async fn check_lifecycle(config: &StoreConfig) -> Result<Report, Error> {
    let report = inspect(config).await?;
    let findings: Vec<String> = report.blocking().map(ToString::to_string).collect();
    if findings.is_empty() {
        Ok(report)
    } else {
        Err(Error::LifecycleDrift {
            bucket: config.s3.bucket.clone(),
            findings: findings.join("; "),
        })
    }
}

/// Re-inspects every `every` until cancelled, keeping the drift gauge current for the
/// alert; a failed check is logged and retried at the next tick.
pub async fn watch(config: StoreConfig, every: Duration, cancel: CancellationToken) {
    let mut ticks = tokio::time::interval(every);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = ticks.tick() => {}
        }
        if let Err(error) = inspect(&config).await {
            metrics::lifecycle_check_failed(&error);
        }
    }
}

fn abort_days(config: &StoreConfig) -> u32 {
    let secs = config.s3.abort_incomplete_multipart_after.as_secs();
    u32::try_from(secs / (24 * 3600)).unwrap_or(u32::MAX)
}

async fn create_bucket(conn: &Connection) -> Result<(), Error> {
    conn.client
        .create_bucket()
        .bucket(&conn.bucket)
        .create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(conn.region.as_str()))
                .build(),
        )
        .send()
        .await
        .map_err(|e| classify("CreateBucket", conn, "", e))?;
    tracing::info!(bucket = %conn.bucket, region = %conn.region, "created the archive bucket");
    Ok(())
}

async fn read_back(config: &StoreConfig, conn: &Connection) -> Result<Report, Error> {
    let rules = match conn
        .client
        .get_bucket_lifecycle_configuration()
        .bucket(&conn.bucket)
        .send()
        .await
    {
        Ok(out) => out.rules().iter().map(from_sdk).collect(),
        Err(e) => match e.as_service_error().and_then(|s| {
            aws_sdk_s3::error::ProvideErrorMetadata::code(s)
                .map(|c| c == "NoSuchLifecycleConfiguration")
        }) {
            Some(true) => Vec::new(),
            _ => return Err(classify("GetBucketLifecycleConfiguration", conn, "", e)),
        },
    };
    let drift = diff(&config.shelf_life, abort_days(config), &rules);
    metrics::lifecycle_checked(&conn.bucket, drift.len());
    Ok(Report {
        backend: Backend::S3,
        store: format!(
            "bucket {:?} at {}, region {}",
            conn.bucket, conn.endpoint, conn.region
        ),
        created_bucket: false,
        applied: false,
        rules,
        drift,
    })
}

fn to_sdk(rule: &Rule) -> Result<LifecycleRule, Error> {
    let mut builder = LifecycleRule::builder()
        .set_id(rule.id.clone())
        .status(ExpirationStatus::Enabled)
        .filter(LifecycleRuleFilter::builder().prefix(&rule.prefix).build());
    if let Some(days) = rule.expire_after_days {
        builder = builder.expiration(LifecycleExpiration::builder().days(days as i32).build());
    }
    if let Some(days) = rule.abort_incomplete_after_days {
        builder = builder.abort_incomplete_multipart_upload(
            AbortIncompleteMultipartUpload::builder()
                .days_after_initiation(days as i32)
                .build(),
        );
    }
    builder
        .build()
        .map_err(|e| Error::Config(format!("lifecycle rule: {e}")))
}

fn from_sdk(rule: &LifecycleRule) -> Rule {
    let filter = rule.filter();
    let and = filter.and_then(|f| f.and());
    #[allow(deprecated)] // the rule-level Prefix of old configurations still counts
    let prefix = filter
        .and_then(|f| f.prefix())
        .or_else(|| and.and_then(|a| a.prefix()))
        .or_else(|| rule.prefix())
        .unwrap_or_default();
    let narrowed = filter.is_some_and(|f| {
        f.tag().is_some()
            || f.object_size_greater_than().is_some()
            || f.object_size_less_than().is_some()
    }) || and.is_some_and(|a| {
        !a.tags().is_empty()
            || a.object_size_greater_than().is_some()
            || a.object_size_less_than().is_some()
    });
    let days = |d: Option<i32>| d.map(|d| d.max(0) as u32);
    let expiration = rule.expiration();
    Rule {
        id: rule.id().map(str::to_owned),
        enabled: *rule.status() == ExpirationStatus::Enabled,
        prefix: prefix.to_owned(),
        narrowed,
        expire_after_days: days(expiration.and_then(|e| e.days())),
        expire_on_date: expiration.and_then(|e| e.date()).map(|d| d.to_string()),
        abort_incomplete_after_days: days(
            rule.abort_incomplete_multipart_upload()
                .and_then(|a| a.days_after_initiation()),
        ),
        other_actions: !rule.transitions().is_empty()
            || !rule.noncurrent_version_transitions().is_empty()
            || rule.noncurrent_version_expiration().is_some()
            || expiration.and_then(|e| e.expired_object_delete_marker()) == Some(true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shelf() -> ShelfLife {
        ShelfLife::default()
    }

    fn rule(id: &str, prefix: &str, days: u32) -> Rule {
        Rule {
            expire_after_days: Some(days),
            ..Rule::written_by_bootstrap(id.into(), prefix)
        }
    }

    #[test]
    fn the_desired_rules_show_no_drift() {
        let rules = desired_rules(&shelf(), 1);
        assert_eq!(rules.len(), DataClass::ALL.len() + 1);
        assert_eq!(diff(&shelf(), 1, &rules), []);
        // Ids do not matter, effects do.
        let renamed: Vec<Rule> = rules
            .into_iter()
            .map(|r| Rule {
                id: Some("x".into()),
                ..r
            })
            .collect();
        assert_eq!(diff(&shelf(), 1, &renamed), []);
    }

    #[test]
    fn no_rules_at_all_is_missing_everything() {
        let drift = diff(&shelf(), 1, &[]);
        let missing = drift.iter().filter(|d| d.keeps_data_too_long()).count();
        assert_eq!(missing, DataClass::ALL.len());
        assert!(drift.contains(&Drift::AbortIncomplete {
            configured_days: 1,
            in_force_days: None
        }));
    }

    #[test]
    fn a_longer_rule_is_blocking_drift_and_unexpected() {
        let mut rules = desired_rules(&shelf(), 1);
        rules[0].expire_after_days = Some(400);
        let drift = diff(&shelf(), 1, &rules);
        assert_eq!(
            drift[0],
            Drift::Longer {
                class: DataClass::Telemetry,
                configured_days: 365,
                in_force_days: 400
            }
        );
        assert!(drift[0].keeps_data_too_long());
        assert!(
            matches!(&drift[1], Drift::Unexpected { rule } if rule.id.as_deref() == Some("inland-telemetry"))
        );
        assert_eq!(drift.len(), 2);
        assert!(
            drift[0]
                .to_string()
                .contains("400 days, longer than the configured 365")
        );
    }

    #[test]
    fn disabled_and_narrowed_rules_do_not_count_as_expiry() {
        let mut rules = desired_rules(&shelf(), 1);
        rules[1].enabled = false; // frames
        rules[2].narrowed = true; // frame_index
        let drift = diff(&shelf(), 1, &rules);
        assert!(drift.contains(&Drift::Missing {
            class: DataClass::Frames,
            configured_days: 30
        }));
        assert!(drift.contains(&Drift::Missing {
            class: DataClass::FrameIndex,
            configured_days: 30
        }));
        // The narrowed rule is not one of ours; the disabled one has no effect.
        assert_eq!(
            drift
                .iter()
                .filter(|d| matches!(d, Drift::Unexpected { .. }))
                .count(),
            1
        );
    }

    #[test]
    fn a_broader_shorter_rule_shortens_and_is_reported() {
        let mut rules = desired_rules(&shelf(), 1);
        // Everything under dataset= after 7 days: shorter for the three datasets.
        rules.push(rule("cleanup", "dataset=", 7));
        let drift = diff(&shelf(), 1, &rules);
        let shorter: Vec<_> = drift
            .iter()
            .filter_map(|d| match d {
                Drift::Shorter { class, .. } => Some(*class),
                _ => None,
            })
            .collect();
        assert_eq!(
            shorter,
            [
                DataClass::Telemetry,
                DataClass::Frames,
                DataClass::FrameIndex
            ]
        );
        assert!(!drift.iter().any(Drift::keeps_data_too_long));
        assert!(drift.iter().any(
            |d| matches!(d, Drift::Unexpected { rule } if rule.id.as_deref() == Some("cleanup"))
        ));
    }

    #[test]
    fn a_shorter_covering_rule_hides_a_longer_one_but_both_are_listed() {
        // The earliest expiry wins, as S3 applies it.
        let rules = vec![rule("a", "dataset=telemetry/", 500), rule("b", "", 365)];
        let drift = diff(&shelf(), 1, &rules);
        assert!(!drift.iter().any(|d| matches!(
            d,
            Drift::Longer {
                class: DataClass::Telemetry,
                ..
            }
        )));
        assert!(drift.iter().any(|d| matches!(
            d,
            Drift::Shorter {
                class: DataClass::Consent,
                ..
            }
        )));
    }

    #[test]
    fn sdk_rules_round_trip() {
        for rule in desired_rules(&shelf(), 2) {
            assert_eq!(from_sdk(&to_sdk(&rule).unwrap()), rule);
        }
    }

    #[test]
    fn the_report_lists_rules_and_drift() {
        let report = Report {
            backend: Backend::S3,
            store: "bucket \"inland\"".into(),
            created_bucket: true,
            applied: true,
            rules: vec![rule("inland-telemetry", "dataset=telemetry/", 365)],
            drift: diff(
                &shelf(),
                1,
                &[rule("inland-telemetry", "dataset=telemetry/", 365)],
            ),
        };
        let text = report.to_string();
        assert!(
            text.contains("created the bucket\napplied the lifecycle rules\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "  inland-telemetry: prefix \"dataset=telemetry/\", expire after 365 days\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("drift (5):\n  - frames: no rule in force expires it"),
            "{text}"
        );
        assert_eq!(report.blocking().count(), 4);
        assert!(Report::local().to_string().ends_with("drift: none\n"));
    }
}
