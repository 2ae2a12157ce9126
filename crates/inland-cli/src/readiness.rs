//! `/readyz`: whether this process should receive work. A service marks itself serving
//! once it has started; each dependency it needs (the broker, the store, lifecycle rules in
//! force) is probed in the background, and the process is ready only while all of them
//! answer. Kubernetes then routes nothing to a pod that could not do the work.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;

use crate::metrics;

/// How often each dependency is probed: about the readiness probe's period.
const PROBE_PERIOD: Duration = Duration::from_secs(5);

#[derive(Clone, Default)]
pub struct Readiness(Arc<Inner>);

#[derive(Default)]
struct Inner {
    serving: AtomicBool,
    dependencies: Mutex<Vec<Arc<Dependency>>>,
}

struct Dependency {
    name: &'static str,
    /// Why it is not usable; `None` while it answers.
    problem: Mutex<Option<String>>,
}

impl Readiness {
    /// Marks the service as serving (or, at shutdown, no longer taking work).
    pub fn set(&self, serving: bool) {
        self.0.serving.store(serving, Ordering::Relaxed);
    }

    /// Probes `name` now and then every [`PROBE_PERIOD`] for the life of the process; the
    /// process is unready until the first probe succeeds and whenever one fails.
    pub fn watch<P, F>(&self, name: &'static str, probe: P)
    where
        P: Fn() -> F + Send + Sync + 'static,
        F: Future<Output = Result<(), String>> + Send,
    {
        let dependency = Arc::new(Dependency {
            name,
            problem: Mutex::new(Some("not checked yet".into())),
        });
        self.0.dependencies.lock().unwrap().push(dependency.clone());
        tokio::spawn(async move {
            let mut every = tokio::time::interval(PROBE_PERIOD);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                let outcome = probe().await.err();
                let mut problem = dependency.problem.lock().unwrap();
                match (&*problem, &outcome) {
                    (Some(_), None) => metrics::dependency_up(name),
                    (None, Some(why)) => metrics::dependency_down(name, why),
                    _ => {}
                }
                *problem = outcome;
            }
        });
    }

    pub(crate) fn status(&self) -> (StatusCode, String) {
        if !self.0.serving.load(Ordering::Relaxed) {
            return (StatusCode::SERVICE_UNAVAILABLE, "not serving\n".into());
        }
        let down: String = self
            .0
            .dependencies
            .lock()
            .unwrap()
            .iter()
            .filter_map(|d| {
                let problem = d.problem.lock().unwrap();
                problem.as_ref().map(|why| format!("{}: {why}\n", d.name))
            })
            .collect();
        if down.is_empty() {
            (StatusCode::OK, "ready\n".into())
        } else {
            (StatusCode::SERVICE_UNAVAILABLE, down)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn ready_only_while_serving_and_every_dependency_answers() {
        let ready = Readiness::default();
        let broker_up = Arc::new(AtomicBool::new(true));
        let up = broker_up.clone();
        ready.watch("kafka", move || {
            let up = up.load(Ordering::Relaxed);
            async move {
                if up {
                    Ok(())
                } else {
                    Err("no broker answered".into())
                }
            }
        });
        assert_eq!(
            ready.status().0,
            StatusCode::SERVICE_UNAVAILABLE,
            "not serving yet"
        );
        ready.set(true);
        assert_eq!(ready.status().1, "kafka: not checked yet\n");
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(ready.status(), (StatusCode::OK, "ready\n".into()));

        broker_up.store(false, Ordering::Relaxed);
        tokio::time::sleep(PROBE_PERIOD).await;
        assert_eq!(
            ready.status(),
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "kafka: no broker answered\n".into()
            )
        );
        broker_up.store(true, Ordering::Relaxed);
        tokio::time::sleep(PROBE_PERIOD).await;
        assert_eq!(ready.status().0, StatusCode::OK);
        ready.set(false);
        assert_eq!(
            ready.status().0,
            StatusCode::SERVICE_UNAVAILABLE,
            "draining"
        );
    }
}
