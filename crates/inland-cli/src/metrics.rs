//! The binary's own metrics and their log lines (each service crate has its own).

/// 1 while a dependency (`kafka`, `store`, `lifecycle`) answers its readiness probe.
pub const DEPENDENCY_UP: &str = "inland_dependency_up";

pub(crate) fn dependency_up(name: &'static str) {
    metrics::gauge!(DEPENDENCY_UP, "dependency" => name).set(1.0);
    tracing::info!(dependency = name, "dependency reachable: ready for work");
}

pub(crate) fn dependency_down(name: &'static str, why: &str) {
    metrics::gauge!(DEPENDENCY_UP, "dependency" => name).set(0.0);
    tracing::warn!(
        dependency = name,
        problem = why,
        "dependency unreachable: not ready"
    );
}
