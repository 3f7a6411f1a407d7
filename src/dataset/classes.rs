//! Class lists: read from `classes.txt` / `names.txt` / labelme's `labels.txt` / a
//! `data.yaml`, collected from the labels themselves, and written as `classes.txt` and
//! `data.yaml`; plus the check that every label is in the list.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::atomic::{self, Existing};
use crate::error::{Error, Result};

/// labelme's `labels.txt` starts with these; they mark ignored regions and the background,
/// not object classes, so a YOLO class id must never be given to them.
pub const LABELME_RESERVED: [&str; 2] = ["__ignore__", "_background_"];

/// Reads a class list. In a text file the labelme reserved names are dropped; a name listed
/// twice is an error (its two ids would be one class).
pub fn read(path: &Path) -> Result<Vec<String>> {
    let names = crate::meta::read_names_file(path)?;
    let names: Vec<String> = names.into_iter().filter(|n| !LABELME_RESERVED.contains(&n.as_str())).collect();
    let mut seen = BTreeMap::new();
    for (i, n) in names.iter().enumerate() {
        if let Some(first) = seen.insert(n.as_str(), i) {
            return Err(Error::format(path, format!("class {n:?} is listed twice (ids {first} and {i})")));
        }
    }
    if names.is_empty() {
        return Err(Error::format(path, "no class names in it"));
    }
    Ok(names)
}

/// The class list of a YOLO dataset when none is given: `data.yaml` or `classes.txt` in the
/// folder or its parent (so both `ds/` and `ds/labels/` find `ds/data.yaml`).
pub fn find_beside(src: &Path) -> Option<PathBuf> {
    let dir = if src.is_file() { src.parent().unwrap_or(Path::new(".")) } else { src };
    let mut dirs = vec![dir.to_path_buf()];
    if let Some(p) = crate::paths::absolute(dir).parent() {
        dirs.push(p.to_path_buf());
    }
    dirs.iter().flat_map(|d| ["data.yaml", "data.yml", "classes.txt"].map(|f| d.join(f))).find(|p| p.is_file())
}

/// All distinct labels, sorted (byte order, so the ids do not depend on the locale).
pub fn collect<'a>(labels: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    labels.into_iter().collect::<BTreeSet<_>>().into_iter().map(String::from).collect()
}

/// `classes.txt`: one name per line, line i is class i (the LabelImg / Ultralytics convention).
pub fn classes_txt(names: &[String]) -> String {
    names.iter().map(|n| format!("{n}\n")).collect()
}

/// The `names:` block of an Ultralytics dataset yaml. Names are written as double-quoted
/// JSON strings, which YAML reads back unchanged (`yes`, `1`, `tv/monitor`, `o'clock`).
pub fn yaml_names(names: &[String]) -> String {
    let mut s = format!("nc: {}\nnames:\n", names.len());
    for (i, n) in names.iter().enumerate() {
        s.push_str(&format!("  {i}: {}\n", serde_json::Value::String(n.clone())));
    }
    s
}

/// Writes a small text file unless an identical one is there already (re-running a command
/// must not fail on the class list it wrote itself). Returns whether it wrote.
pub fn write_if_changed(path: &Path, text: &str, existing: Existing) -> Result<bool> {
    if let Ok(old) = crate::input::read_text(path, crate::input::TEXT_LIMIT) {
        if old == text {
            return Ok(false);
        }
    }
    crate::paths::ensure_parent(path)?;
    atomic::write(path, text.as_bytes(), existing)?;
    Ok(true)
}

/// Labels that are not in the class list, with how often and where each first occurs.
#[derive(Debug, Default)]
pub struct Unknown {
    pub labels: BTreeMap<String, (usize, PathBuf)>,
}

impl Unknown {
    pub fn add(&mut self, label: &str, path: &Path) {
        let e = self.labels.entry(label.to_string()).or_insert((0, path.to_path_buf()));
        e.0 += 1;
    }

    /// The error that stops a run before anything is written.
    pub fn error(&self, list: &str) -> Error {
        let mut parts: Vec<String> = self
            .labels
            .iter()
            .take(20)
            .map(|(l, (n, p))| format!("{l:?} ({n} box{}, first in {})", if *n == 1 { "" } else { "es" }, p.display()))
            .collect();
        if self.labels.len() > 20 {
            parts.push(format!("and {} more", self.labels.len() - 20));
        }
        Error::Invalid(format!(
            "{} label{} not in {list}: {}; add {} to the list or pass --skip-unknown to leave those boxes out (nothing was written)",
            self.labels.len(),
            if self.labels.len() == 1 { " is" } else { "s are" },
            parts.join(", "),
            if self.labels.len() == 1 { "it" } else { "them" },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labelme_labels_txt_drops_reserved_names() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("labels.txt");
        std::fs::write(&p, "__ignore__\n_background_\ncat\n\ntv/monitor\n").unwrap();
        assert_eq!(read(&p).unwrap(), vec!["cat", "tv/monitor"]);
        std::fs::write(&p, "cat\ndog\ncat\n").unwrap();
        let e = read(&p).unwrap_err().to_string();
        assert!(e.contains("\"cat\" is listed twice (ids 0 and 2)"), "{e}");
    }

    #[test]
    fn yaml_names_read_back_unchanged() {
        let names: Vec<String> = ["yes", "1", "o'clock", "tv/monitor", "a: b", "null"].map(String::from).to_vec();
        let text = yaml_names(&names);
        assert_eq!(crate::meta::names_from_yaml(&text).unwrap(), names);
        assert!(text.starts_with("nc: 6\nnames:\n  0: \"yes\"\n"), "{text}");
    }

    #[test]
    fn collected_classes_are_sorted_bytewise() {
        assert_eq!(collect(["dog", "Cat", "cat", "dog"]), vec!["Cat", "cat", "dog"]);
    }
}
