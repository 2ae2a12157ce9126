//! Fixtures of the unit tests: a synthetic archive in a temporary local store.

use std::sync::Arc;

use inland_store::LocalStore;

use crate::archive::Archive;
use crate::auth::{self, Principal, Role};
use crate::config::QueryConfig;
use crate::engine::Engine;
use crate::synth::{self, Spec, Written};

pub(crate) struct Fixture {
    pub dir: tempfile::TempDir,
    pub archive: Archive,
    pub written: Written,
}

/// The small synthetic archive, written once per test.
pub(crate) async fn archive() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(dir.path()).unwrap();
    let written = synth::write(&store, &Spec::small()).await.unwrap();
    let archive = Archive::local(dir.path()).unwrap();
    Fixture {
        dir,
        archive,
        written,
    }
}

pub(crate) fn engine(fixture: &Fixture, config: &QueryConfig) -> Arc<Engine> {
    Arc::new(Engine::new(&fixture.archive, config).unwrap())
}

pub(crate) fn who(role: Role) -> Principal {
    Principal {
        user: format!("test-{role}"),
        role,
    }
}

/// A token list (TOML) with one token per role: analyst `ana`, auditor `otto`, admin
/// `root`; and their tokens in that order.
pub(crate) fn token_list() -> (String, [String; 3]) {
    let mut text = String::new();
    let tokens = [
        ("ana", Role::Analyst),
        ("otto", Role::Auditor),
        ("root", Role::Admin),
    ]
    .map(|(user, role)| {
        let (token, entry) = auth::generate(user, role);
        text.push_str(&entry.to_toml());
        token
    });
    (text, tokens)
}

/// [`token_list`] written to `dir/tokens.toml`: its path and the tokens.
pub(crate) fn token_file(dir: &std::path::Path) -> (std::path::PathBuf, [String; 3]) {
    let (text, tokens) = token_list();
    let path = dir.join("tokens.toml");
    std::fs::write(&path, text).unwrap();
    (path, tokens)
}
