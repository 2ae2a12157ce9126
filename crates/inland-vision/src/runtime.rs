//! ONNX Runtime, loaded once per process from the shared library that
//! scripts/fetch-models.sh takes from the PyPI onnxruntime wheel.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use ort::environment::Environment;
use ort::logging::LogLevel;
use ort::session::Session;
use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};

use crate::{Error, onnx};

/// ONNX Runtime allows one library and one environment per process.
static RUNTIME: OnceLock<Mutex<Option<(PathBuf, Environment)>>> = OnceLock::new();

pub(crate) fn environment(dylib: &Path) -> Result<Environment, Error> {
    let cell = RUNTIME.get_or_init(|| Mutex::new(None));
    let mut guard = cell.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((loaded, env)) = guard.as_ref() {
        if loaded != dylib {
            return Err(Error::Runtime {
                path: dylib.to_path_buf(),
                reason: format!(
                    "this process already runs ONNX Runtime from {}",
                    loaded.display()
                ),
            });
        }
        return Ok(env.clone());
    }
    let runtime_error = |reason: String| Error::Runtime {
        path: dylib.to_path_buf(),
        reason,
    };
    if !dylib.is_file() {
        return Err(runtime_error("no such file".into()));
    }
    let env = ort::init_from(dylib)
        .map_err(|e| runtime_error(e.to_string()))?
        .with_name("inland-vision")
        .with_telemetry(false)
        .build()
        .map_err(|e| runtime_error(e.to_string()))?;
    *guard = Some((dylib.to_path_buf(), env.clone()));
    Ok(env)
}

/// Reads, prepares (see [`onnx::prepare`]) and loads a model for CPU inference.
pub(crate) fn session(
    env: &Environment,
    path: &Path,
    intra_threads: usize,
) -> Result<Session, Error> {
    let model_error = |reason: String| Error::Model {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| model_error(e.to_string()))?;
    let prepared =
        onnx::prepare(&bytes).map_err(|e| model_error(format!("not an ONNX model: {e}")))?;
    let step = |e: ort::Error<SessionBuilder>| model_error(e.to_string());
    Session::builder(env)
        .map_err(|e| model_error(e.to_string()))?
        .with_optimization_level(GraphOptimizationLevel::All)
        .map_err(step)?
        .with_intra_threads(intra_threads)
        .map_err(step)?
        .with_inter_threads(1)
        .map_err(step)?
        // Workers share cores; spinning threads would burn the time of the others.
        .with_intra_op_spinning(false)
        .map_err(step)?
        .with_log_level(LogLevel::Error)
        .map_err(step)?
        .commit_from_memory(&prepared)
        .map_err(|e| model_error(e.to_string()))
}
