//! Shelf lives on the local store: what lifecycle rules do for a bucket, a periodic sweep
//! does for `inland run`. An object whose last modification is older than its class's
//! shelf life is deleted. Objects outside every class prefix are left alone: nothing
//! says how long they may be kept, and deleting unknown data is not the sweeper's call.
//! Emptied directories are left too (a put racing their removal would fail).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use crate::{DataClass, Error, LocalStore, ObjectStore, ShelfLife, metrics};

/// Objects deleted per class by one sweep.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub deleted: BTreeMap<DataClass, u64>,
}

impl SweepReport {
    pub fn total(&self) -> u64 {
        self.deleted.values().sum()
    }
}

/// Deletes every object past its class's shelf life as of `now`.
pub async fn sweep(
    store: &LocalStore,
    shelf: &ShelfLife,
    now: SystemTime,
) -> Result<SweepReport, Error> {
    let mut report = SweepReport::default();
    for class in DataClass::ALL {
        let Some(cutoff) = now.checked_sub(shelf.of(class)) else {
            continue;
        };
        let mut deleted = 0;
        for object in store.list(class.prefix()).await? {
            if object.last_modified < cutoff {
                store.delete(&object.key).await?;
                deleted += 1;
            }
        }
        metrics::swept(class, deleted);
        report.deleted.insert(class, deleted);
    }
    Ok(report)
}

/// Sweeps now and then every `every` until cancelled; a failed sweep is logged and
/// retried at the next tick.
pub async fn run_sweeper(
    store: LocalStore,
    shelf: ShelfLife,
    every: Duration,
    cancel: CancellationToken,
) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = ticks.tick() => {}
        }
        if let Err(error) = sweep(&store, &shelf, SystemTime::now()).await {
            metrics::sweep_failed(&error);
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    const DAY: Duration = Duration::from_secs(24 * 3600);

    async fn put(store: &LocalStore, key: &str) {
        store.put(key, Bytes::from_static(b"x")).await.unwrap();
    }

    #[tokio::test]
    async fn deletes_only_objects_past_their_class_shelf_life() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        put(&store, "dataset=telemetry/date=2026-01-01/a.parquet").await;
        put(&store, "dataset=frames/date=2026-01-01/a.jpg").await;
        put(&store, "consent/a.json").await;
        put(&store, "unclassified/a").await;
        let shelf = ShelfLife::default(); // telemetry 365d, frames 30d, consent 2190d

        // Nothing is old yet.
        let report = sweep(&store, &shelf, SystemTime::now()).await.unwrap();
        assert_eq!(report.total(), 0);

        // 31 days on: only the frame is past its 30 days.
        let later = SystemTime::now() + 31 * DAY;
        let report = sweep(&store, &shelf, later).await.unwrap();
        assert_eq!(report.deleted[&DataClass::Frames], 1);
        assert_eq!(report.total(), 1);
        assert!(
            store
                .get("dataset=frames/date=2026-01-01/a.jpg")
                .await
                .is_err()
        );
        store
            .get("dataset=telemetry/date=2026-01-01/a.parquet")
            .await
            .unwrap();

        // Ten years on: every classified object is gone, the unclassified one stays.
        let report = sweep(&store, &shelf, SystemTime::now() + 3650 * DAY)
            .await
            .unwrap();
        assert_eq!(report.deleted[&DataClass::Telemetry], 1);
        assert_eq!(report.deleted[&DataClass::Consent], 1);
        let left: Vec<String> = store
            .list("")
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.key)
            .collect();
        assert_eq!(left, ["unclassified/a"]);
    }

    #[tokio::test]
    async fn a_sweep_of_an_unreadable_store_fails() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("store");
        let store = LocalStore::open(&root).unwrap();
        // A file where the store's directory should be: listing fails.
        std::fs::remove_dir(&root).unwrap();
        std::fs::write(&root, b"not a directory").unwrap();
        let err = sweep(&store, &ShelfLife::default(), SystemTime::now())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Local { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn the_sweeper_stops_when_cancelled() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        let cancel = CancellationToken::new();
        let task = tokio::spawn(run_sweeper(
            store,
            ShelfLife::default(),
            Duration::from_secs(3600),
            cancel.clone(),
        ));
        cancel.cancel();
        task.await.unwrap();
    }
}
