//! Shared by the unit tests that read the repository's fixtures (models, datasets and the
//! references in tests/data/).

use std::path::PathBuf;

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
