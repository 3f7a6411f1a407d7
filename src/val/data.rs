//! The dataset side of `qdet val`: the yaml (`check_det_dataset`), the image list
//! (`BaseDataset.get_img_files`) and where each image's labels are (`img2label_paths`).

use std::path::{Path, PathBuf, MAIN_SEPARATOR};

use yaml_rust2::Yaml;

use crate::error::{Error, Result};

use super::IMG_FORMATS;

/// A dataset yaml read for one split.
#[derive(Debug, Clone, PartialEq)]
pub struct DataConfig {
    pub yaml: PathBuf,
    /// The dataset root the split paths were resolved against.
    pub root: PathBuf,
    /// Class names by id (`names`, or `class_0`... when only `nc` is given).
    pub names: Vec<String>,
    pub split: String,
    /// The split's folders and/or `.txt` image lists, resolved.
    pub sources: Vec<PathBuf>,
}

/// Reads an Ultralytics dataset yaml and resolves `split` (`val`, `test`, `train`, ...).
pub fn load_data(yaml: &Path, split: &str) -> Result<DataConfig> {
    let text = crate::input::read_text(yaml, crate::input::TEXT_LIMIT)?;
    let bad = |reason: String| Error::format(yaml, reason);
    let doc = &crate::yaml::load(&text).map_err(bad)?;
    if !matches!(doc, Yaml::Hash(_)) {
        return Err(bad("not a YAML mapping".into()));
    }

    let nc = match &doc["nc"] {
        Yaml::BadValue | Yaml::Null => None,
        Yaml::Integer(n) if *n >= 0 => Some(*n as usize),
        Yaml::Real(r) => r.parse::<f64>().ok().filter(|v| v.fract() == 0.0 && *v >= 0.0).map(|v| v as usize),
        Yaml::String(s) => s.trim().parse::<usize>().ok(),
        _ => None,
    };
    if !matches!(&doc["nc"], Yaml::BadValue) && nc.is_none() {
        return Err(bad("'nc' must be a whole number".into()));
    }
    if let Some(n) = nc.filter(|&n| n > crate::meta::MAX_CLASSES) {
        return Err(bad(format!("'nc' is {n}, more than {} classes", crate::meta::MAX_CLASSES)));
    }
    let names = match &doc["names"] {
        Yaml::BadValue | Yaml::Null => match nc {
            Some(n) => (0..n).map(|i| format!("class_{i}")).collect(),
            None => return Err(bad("either 'names' or 'nc' is required".into())),
        },
        _ => crate::meta::names_from_yaml(&text).map_err(bad)?,
    };
    if let Some(n) = nc.filter(|&n| n != names.len()) {
        return Err(bad(format!("'names' has {} entries but 'nc' is {n}", names.len())));
    }

    // Ultralytics renames `validation:` to `val:`.
    let mut entry = &doc[split];
    if matches!(entry, Yaml::BadValue) && split == "val" {
        entry = &doc["validation"];
    }
    let entries: Vec<String> = match entry {
        Yaml::String(s) if !s.is_empty() => vec![s.clone()],
        Yaml::Array(items) if !items.is_empty() => items
            .iter()
            .map(|y| y.as_str().map(str::to_string).ok_or_else(|| bad(format!("'{split}' entries must be paths"))))
            .collect::<Result<_>>()?,
        Yaml::BadValue | Yaml::Null => return Err(bad(format!("no '{split}:' images in this dataset"))),
        _ => return Err(bad(format!("'{split}' must be a path or a list of paths"))),
    };

    let root = dataset_root(yaml, doc["path"].as_str())?;
    let sources = entries
        .iter()
        .map(|e| {
            let mut p = root.join(e);
            // check_det_dataset: a missing "../x" is retried as "x" under the root.
            if !p.exists() {
                if let Some(rest) = e.strip_prefix("../") {
                    p = root.join(rest);
                }
            }
            if !p.exists() {
                return Err(bad(format!("'{split}' path {} does not exist", root.join(e).display())));
            }
            // Path.resolve(), as Ultralytics: labels are then looked up beside the real folder.
            std::fs::canonicalize(&p).map_err(|err| Error::io(&p, err))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(DataConfig { yaml: yaml.to_path_buf(), root, names, split: split.to_string(), sources })
}

/// The dataset root: `path:` (beside the yaml, else from the current folder as Ultralytics
/// reads it), or the yaml's folder when `path:` is absent or empty.
fn dataset_root(yaml: &Path, path: Option<&str>) -> Result<PathBuf> {
    let yaml_dir = match yaml.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let Some(p) = path.filter(|p| !p.is_empty()) else {
        return Ok(yaml_dir);
    };
    let p = Path::new(p);
    if p.is_absolute() {
        return Ok(p.to_path_buf());
    }
    // components() drops the "." of `path: .`, so the root prints as the yaml's folder.
    let beside: PathBuf = yaml_dir.join(p).components().collect();
    if beside.exists() {
        Ok(beside)
    } else if p.exists() {
        Ok(p.to_path_buf())
    } else {
        Err(Error::format(
            yaml,
            format!(
                "dataset path {:?} exists neither beside the yaml ({}) nor in the current folder",
                p,
                beside.display()
            ),
        ))
    }
}

fn has_image_ext(s: &str) -> bool {
    // `x.rpartition(".")[-1].lower() in IMG_FORMATS`, on the whole path string.
    let ext = s.rsplit('.').next().unwrap_or("");
    s.contains('.') && IMG_FORMATS.contains(&ext.to_ascii_lowercase().as_str())
}

/// The split's images as `get_img_files` lists them: folders walked recursively (hidden
/// names skipped, as Python's glob does), `.txt` lists read line by line, then sorted.
pub fn list_images(sources: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut found: Vec<PathBuf> = Vec::new();
    for src in sources {
        if src.is_dir() {
            let walker = walkdir::WalkDir::new(src)
                .follow_links(true)
                .into_iter()
                .filter_entry(|e| e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.'));
            for entry in walker {
                let entry = match entry {
                    Ok(entry) => entry,
                    Err(e) if e.depth() == 0 => return Err(Error::format(src, e.to_string())),
                    // A broken symlink, a loop, an unreadable folder: listed, so that reading
                    // it fails like any unreadable image (reported with the reason, skipped)
                    // instead of stopping the whole run here.
                    Err(e) => {
                        found.extend(e.path().map(Path::to_path_buf));
                        continue;
                    }
                };
                if entry.file_type().is_file() && has_image_ext(&entry.file_name().to_string_lossy()) {
                    found.push(entry.path().to_path_buf());
                }
            }
        } else if src.is_file() {
            let text = crate::input::read_text(src, crate::input::TEXT_LIMIT)?;
            let parent = src.parent().unwrap_or(Path::new(""));
            for line in crate::python::split_lines(text.trim_start_matches('\u{feff}').trim()) {
                let p = if let Some(rest) = line.strip_prefix("./") {
                    parent.join(rest)
                } else if Path::new(line).is_relative() && parent.join(line).exists() {
                    parent.join(line)
                } else {
                    PathBuf::from(line)
                };
                if has_image_ext(line) {
                    found.push(p);
                }
            }
        } else {
            return Err(Error::io(src, std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or folder")));
        }
    }
    // Python sorts the path strings.
    found.sort_by(|a, b| a.as_os_str().as_encoded_bytes().cmp(b.as_os_str().as_encoded_bytes()));
    Ok(found)
}

/// `img2label_paths`: the last `/images/` becomes `/labels/`, the extension `.txt`.
pub fn label_path(image: &Path) -> PathBuf {
    let s = image.to_string_lossy();
    let (sa, sb) =
        (format!("{MAIN_SEPARATOR}images{MAIN_SEPARATOR}"), format!("{MAIN_SEPARATOR}labels{MAIN_SEPARATOR}"));
    let swapped = match s.rfind(&sa) {
        Some(i) => format!("{}{}{}", &s[..i], sb, &s[i + sa.len()..]),
        None => s.into_owned(),
    };
    let stem = match swapped.rfind('.') {
        Some(i) => &swapped[..i],
        None => &swapped,
    };
    PathBuf::from(format!("{stem}.txt"))
}
