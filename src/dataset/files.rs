//! Finding files: walking a source folder, and pairing images with their label files the way
//! Ultralytics and labelme do (`images/` <-> `labels/` sibling folders, or the same folder).
//!
//! Names are matched on the full stem, so `a.b.c.jpg` pairs with `a.b.c.txt` (splitting at
//! the first dot, as some scripts do, pairs it with `a.txt`).

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::path::{Component, Path, PathBuf};

use super::Problem;
use crate::error::{Error, Result};
use crate::sources::is_image;

/// A file found under a source folder, with its path relative to that folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub path: PathBuf,
    pub rel: PathBuf,
}

/// Files under `src` (or `src` itself if it is a file) for which `keep` is true, sorted by
/// path. Hidden files (`.name`: editor and qdet temporaries, macOS `._` forks) and anything
/// under the `exclude` folders (outputs, when they lie inside the source) are left out.
/// Entries below `src` that cannot be walked (a broken symlink, a symlink loop, an unreadable
/// folder) are returned as problems, to be reported and skipped: they do not stop the run.
pub fn walk(src: &Path, exclude: &[PathBuf], keep: impl Fn(&Path) -> bool) -> Result<(Vec<Found>, Vec<Problem>)> {
    if src.is_file() {
        let rel = src.file_name().map(PathBuf::from).unwrap_or_else(|| src.to_path_buf());
        return Ok((vec![Found { path: src.to_path_buf(), rel }], Vec::new()));
    }
    if !src.is_dir() {
        return Err(Error::io(src, std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or folder")));
    }
    let exclude: Vec<PathBuf> = exclude.iter().map(|e| crate::paths::absolute(e)).collect();
    let mut out = Vec::new();
    let walker = walkdir::WalkDir::new(src).follow_links(true).sort_by_file_name().into_iter();
    let walker = walker.filter_entry(|e| {
        let hidden = e.depth() > 0 && e.file_name().to_string_lossy().starts_with('.');
        // The source itself is never excluded: `--out SRC` writes beside the inputs.
        let excluded = e.depth() > 0 && e.file_type().is_dir() && exclude.contains(&crate::paths::absolute(e.path()));
        !hidden && !excluded
    });
    let mut problems = Vec::new();
    for entry in walker {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) if e.depth() == 0 => return Err(Error::format(src, e.to_string())),
            Err(e) => {
                problems.push(Problem::new(e.path().unwrap_or(src), crate::sources::walk_reason(&e)));
                continue;
            }
        };
        if entry.file_type().is_file() && keep(entry.path()) {
            let rel = entry.path().strip_prefix(src).unwrap_or(entry.path()).to_path_buf();
            out.push(Found { path: entry.path().to_path_buf(), rel });
        }
    }
    Ok((out, problems))
}

/// Whether the file's extension is `ext` (any case).
pub fn has_ext(path: &Path, ext: &str) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case(ext))
}

/// `dir` with its last `images` component replaced by `labels`, as Ultralytics'
/// `img2label_paths` does; `None` when there is no `images` component.
pub fn labels_dir_for(images_dir: &Path) -> Option<PathBuf> {
    swap_last(images_dir, "images", "labels")
}

/// The reverse of [`labels_dir_for`].
pub fn images_dir_for(labels_dir: &Path) -> Option<PathBuf> {
    swap_last(labels_dir, "labels", "images")
}

fn swap_last(dir: &Path, from: &str, to: &str) -> Option<PathBuf> {
    let comps: Vec<Component> = dir.components().collect();
    let i = comps.iter().rposition(|c| c.as_os_str() == OsStr::new(from))?;
    let mut out = PathBuf::new();
    for (j, c) in comps.iter().enumerate() {
        out.push(if i == j { OsStr::new(to) } else { c.as_os_str() });
    }
    Some(out)
}

/// The candidate YOLO label files for an image: `labels/` sibling first, then beside it.
pub fn label_candidates(image: &Path, ext: &str) -> Vec<PathBuf> {
    let dir = image.parent().unwrap_or(Path::new(""));
    let name = with_ext(image, ext);
    let mut out = Vec::new();
    if let Some(l) = labels_dir_for(dir) {
        out.push(l.join(&name));
    }
    out.push(dir.join(&name));
    out
}

/// The file name of `path` with its last extension replaced: `a.b.c.jpg` -> `a.b.c.txt`.
pub fn with_ext(path: &Path, ext: &str) -> OsString {
    let stem = path.file_stem().unwrap_or_default();
    let mut name = stem.to_os_string();
    name.push(".");
    name.push(ext);
    name
}

/// Images of a few folders, by stem, read once: looking an image up by stem must find
/// `a.JPG` as well as `a.jpg` without a directory listing per label file.
#[derive(Debug, Default)]
pub struct ImageIndex {
    dirs: HashMap<PathBuf, BTreeMap<OsString, Vec<PathBuf>>>,
}

impl ImageIndex {
    /// Lists each folder once; folders that do not exist are simply empty.
    pub fn build<'a>(dirs: impl IntoIterator<Item = &'a Path>) -> ImageIndex {
        let mut idx = ImageIndex::default();
        for dir in dirs {
            if idx.dirs.contains_key(dir) {
                continue;
            }
            let mut by_stem: BTreeMap<OsString, Vec<PathBuf>> = BTreeMap::new();
            if let Ok(entries) = std::fs::read_dir(dir) {
                for e in entries.flatten() {
                    let p = e.path();
                    let hidden = e.file_name().to_string_lossy().starts_with('.');
                    if !hidden && is_image(&p) && p.is_file() {
                        by_stem.entry(p.file_stem().unwrap_or_default().to_os_string()).or_default().push(p);
                    }
                }
            }
            for v in by_stem.values_mut() {
                v.sort();
            }
            idx.dirs.insert(dir.to_path_buf(), by_stem);
        }
        idx
    }

    /// Images in `dir` whose stem is `stem` (several when `a.jpg` and `a.png` both exist).
    pub fn lookup(&self, dir: &Path, stem: &OsStr) -> &[PathBuf] {
        self.dirs.get(dir).and_then(|m| m.get(stem)).map(Vec::as_slice).unwrap_or(&[])
    }
}

/// The folders where the image of a label file may be: the `images/` sibling of a
/// `labels/` folder first, then the label's own folder.
pub fn image_dirs_for_label(label: &Path) -> Vec<PathBuf> {
    let dir = label.parent().unwrap_or(Path::new("")).to_path_buf();
    let mut out = Vec::new();
    if let Some(i) = images_dir_for(&dir) {
        out.push(i);
    }
    out.push(dir);
    out
}

/// The image a label file belongs to, searched in `dirs` in order; an error says where it
/// looked, or which images compete for the label.
pub fn find_image(index: &ImageIndex, dirs: &[PathBuf], stem: &OsStr) -> std::result::Result<PathBuf, String> {
    for dir in dirs {
        match index.lookup(dir, stem) {
            [] => continue,
            [one] => return Ok(one.clone()),
            many => {
                let names: Vec<String> = many.iter().map(|p| p.display().to_string()).collect();
                return Err(format!("several images could be its image: {}", names.join(", ")));
            }
        }
    }
    let looked: Vec<String> = dirs.iter().map(|d| format!("{}/", d.display())).collect();
    Err(format!("no image named {}.* in {}", stem.to_string_lossy(), looked.join(" or ")))
}

/// A relative path as `/`-separated text, the same on every OS (seeds and sorting use it).
pub fn rel_key(rel: &Path) -> String {
    rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_several_dots_keep_their_stem() {
        assert_eq!(with_ext(Path::new("d/a.b.c.jpg"), "txt"), OsString::from("a.b.c.txt"));
        assert_eq!(
            label_candidates(Path::new("ds/images/train/a.b.jpg"), "txt"),
            vec![PathBuf::from("ds/labels/train/a.b.txt"), PathBuf::from("ds/images/train/a.b.txt")]
        );
        // Only the last `images` component is swapped, as in Ultralytics.
        assert_eq!(labels_dir_for(Path::new("images/x/images/y")), Some(PathBuf::from("images/x/labels/y")));
        assert_eq!(labels_dir_for(Path::new("imgs/y")), None);
    }

    #[test]
    fn finds_images_by_stem_in_any_case_and_reports_where_it_looked() {
        let d = tempfile::tempdir().unwrap();
        let imgs = d.path().join("images");
        std::fs::create_dir_all(&imgs).unwrap();
        for f in ["a.b.JPG", "c.png", "c.jpg", "notes.txt"] {
            std::fs::write(imgs.join(f), b"x").unwrap();
        }
        let labels = d.path().join("labels");
        let dirs = image_dirs_for_label(&labels.join("a.b.txt"));
        assert_eq!(dirs, vec![imgs.clone(), labels.clone()]);
        let idx = ImageIndex::build(dirs.iter().map(PathBuf::as_path));
        assert_eq!(find_image(&idx, &dirs, OsStr::new("a.b")).unwrap(), imgs.join("a.b.JPG"));
        assert!(find_image(&idx, &dirs, OsStr::new("c")).unwrap_err().contains("several images"));
        let e = find_image(&idx, &dirs, OsStr::new("a")).unwrap_err();
        assert!(e.contains("no image named a.*") && e.contains("labels/"), "{e}");
    }
}
