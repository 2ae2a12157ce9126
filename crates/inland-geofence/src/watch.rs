use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::{Error, ZoneSet, metrics};

/// Keeps the zones of one file in force and current.
///
/// A background thread re-reads the file every interval and swaps in the new zones when
/// its contents changed and are valid. Comparing contents rather than the modification
/// time catches every edit, including two within the clock's resolution and a file
/// replaced by rename; zone files are small, so re-reading costs little. A file that fails
/// to read or validate is refused: the error is logged once (until it changes) and the
/// zones loaded before stay in force. Readers never wait: [`ZoneWatcher::zones`] is a
/// lock-free pointer load.
pub struct ZoneWatcher {
    shared: Arc<Shared>,
    // Dropping the sender wakes the thread and ends it.
    stop: Option<mpsc::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

/// What a reload did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reload {
    /// Same contents as the zones in force.
    Unchanged,
    /// New zones are in force.
    Loaded,
}

struct Shared {
    path: PathBuf,
    current: ArcSwap<ZoneSet>,
    state: Mutex<State>,
}

struct State {
    /// Contents of the file the zones in force came from.
    loaded: Vec<u8>,
    /// The last refusal logged, so a file that stays bad is reported once.
    refused: Option<String>,
}

impl ZoneWatcher {
    /// Loads the zone file and starts watching it, re-reading it every `every` (at least
    /// 10 ms). Fails when the file cannot be read or is invalid: the geofence must not run
    /// without its zones.
    pub fn start(path: impl Into<PathBuf>, every: Duration) -> Result<Self, Error> {
        let path = path.into();
        let every = every.max(Duration::from_millis(10));
        let loaded = read(&path)?;
        let zones = ZoneSet::from_geojson_bytes(&loaded)?;
        metrics::zones_loaded(&path, zones.summary());
        let shared = Arc::new(Shared {
            path,
            current: ArcSwap::from_pointee(zones),
            state: Mutex::new(State {
                loaded,
                refused: None,
            }),
        });
        let (stop, stopped) = mpsc::channel::<()>();
        let watched = Arc::clone(&shared);
        let thread = thread::Builder::new()
            .name("zone-watcher".into())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                    // Refusals are logged and counted inside; the old zones stay.
                    let _ = watched.reload();
                }
            })
            .map_err(Error::Spawn)?;
        Ok(Self {
            shared,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The zones in force now. Take it once per batch and decide the whole batch with it.
    pub fn zones(&self) -> Arc<ZoneSet> {
        self.shared.current.load_full()
    }

    /// Re-reads the file now (say on SIGHUP) instead of waiting for the next poll.
    /// On error the zones in force stay.
    pub fn reload(&self) -> Result<Reload, Error> {
        self.shared.reload()
    }

    pub fn path(&self) -> &Path {
        &self.shared.path
    }
}

impl Drop for ZoneWatcher {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            // A panic in the watcher thread has already been reported; nothing to add.
            let _ = thread.join();
        }
    }
}

impl Shared {
    fn reload(&self) -> Result<Reload, Error> {
        // Held throughout, so concurrent reloads cannot swap in an older file last.
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let outcome = self.swap_if_changed(&mut state);
        match &outcome {
            Ok(_) => state.refused = None,
            Err(e) => {
                let message = e.to_string();
                if state.refused.as_ref() != Some(&message) {
                    metrics::zones_refused(&self.path, e);
                    state.refused = Some(message);
                }
            }
        }
        outcome
    }

    fn swap_if_changed(&self, state: &mut State) -> Result<Reload, Error> {
        let contents = read(&self.path)?;
        if contents == state.loaded {
            return Ok(Reload::Unchanged);
        }
        let zones = ZoneSet::from_geojson_bytes(&contents)?;
        metrics::zones_loaded(&self.path, zones.summary());
        self.current.store(Arc::new(zones));
        state.loaded = contents;
        Ok(Reload::Loaded)
    }
}

fn read(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::Verdict;

    fn zone_file(ids: &[&str]) -> String {
        let features: Vec<String> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let lon = 116.0 + i as f64 * 0.1;
                format!(
                    r#"{{"type":"Feature","properties":{{"id":"{id}","category":"military","buffer_m":50}},
                    "geometry":{{"type":"Polygon","coordinates":[[[{lon},39.0],[{lon2},39.0],[{lon2},39.01],[{lon},39.01],[{lon},39.0]]]}}}}"#,
                    lon2 = lon + 0.01
                )
            })
            .collect();
        format!(
            r#"{{"type":"FeatureCollection","features":[{}]}}"#,
            features.join(",")
        )
    }

    fn ids(w: &ZoneWatcher) -> Vec<String> {
        w.zones()
            .zones()
            .iter()
            .map(|z| z.id().to_owned())
            .collect()
    }

    #[test]
    fn reloads_on_change_and_refuses_a_bad_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("zones.geojson");
        std::fs::write(&path, zone_file(&["a"])).unwrap();
        // A long interval: this test drives reloads by hand.
        let w = ZoneWatcher::start(&path, Duration::from_secs(3600)).unwrap();
        assert_eq!(ids(&w), ["a"]);
        assert_eq!(w.reload().unwrap(), Reload::Unchanged);

        std::fs::write(&path, zone_file(&["a", "b"])).unwrap();
        assert_eq!(w.reload().unwrap(), Reload::Loaded);
        assert_eq!(ids(&w), ["a", "b"]);
        let held = w.zones();

        std::fs::write(&path, zone_file(&["a", "a"])).unwrap();
        let err = w.reload().unwrap_err().to_string();
        assert!(err.contains("duplicate id"), "{err}");
        assert_eq!(ids(&w), ["a", "b"], "old zones stay in force");
        assert!(w.reload().is_err(), "still refused on the next poll");

        std::fs::remove_file(&path).unwrap();
        assert!(matches!(w.reload(), Err(Error::Read { .. })));
        assert_eq!(ids(&w), ["a", "b"]);
        // Zones taken before a reload stay usable, whatever happens to the file.
        assert!(matches!(held.check(39.005, 116.105), Verdict::Drop { .. }));
    }

    #[test]
    fn the_background_thread_picks_up_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("zones.geojson");
        std::fs::write(&path, zone_file(&["a"])).unwrap();
        let w = ZoneWatcher::start(&path, Duration::from_millis(20)).unwrap();
        // Replace by rename, as deploy tools do.
        let tmp = dir.path().join("zones.tmp");
        std::fs::write(&tmp, zone_file(&["x", "y", "z"])).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while ids(&w).len() != 3 {
            assert!(Instant::now() < deadline, "reload not seen within 10 s");
            thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(ids(&w), ["x", "y", "z"]);
        std::fs::write(&path, "{ not json").unwrap();
        thread::sleep(Duration::from_millis(200));
        assert_eq!(ids(&w), ["x", "y", "z"], "a bad file is refused");
    }

    #[test]
    fn starting_needs_a_valid_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("zones.geojson");
        let missing = ZoneWatcher::start(&path, Duration::from_secs(1))
            .err()
            .unwrap();
        assert_eq!(missing.code(), inland_core::ErrorCode::NotFound);
        std::fs::write(&path, "[]").unwrap();
        let bad = ZoneWatcher::start(&path, Duration::from_secs(1))
            .err()
            .unwrap();
        assert_eq!(bad.code(), inland_core::ErrorCode::InvalidInput);
    }
}
