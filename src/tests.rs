//! Shared by the unit tests that read the repository's fixtures (models, datasets and the
//! references in tests/data/).

use std::path::PathBuf;
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use serde::de::DeserializeOwned;

/// The repository.
pub(crate) fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A JSON file of the repository (`rel` to its root) as `T`.
pub(crate) fn load_json<T: DeserializeOwned>(rel: &str) -> T {
    let p = root().join(rel);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The kernels' thread team is one per process: the tests of `kernels::threads` need it to
/// themselves ([`team_alone`]), the tests that run parallel kernels on it share it ([`team`]).
static TEAM: RwLock<()> = RwLock::new(());

/// Held by a test that runs the kernels on their thread team.
pub(crate) fn team() -> RwLockReadGuard<'static, ()> {
    TEAM.read().unwrap_or_else(PoisonError::into_inner)
}

/// Held by a test that needs the team free whenever it starts a section.
pub(crate) fn team_alone() -> RwLockWriteGuard<'static, ()> {
    TEAM.write().unwrap_or_else(PoisonError::into_inner)
}
