//! Turning the SOURCE arguments (files, folders, globs) into a list of images, each with
//! the relative path its outputs get, so the output tree mirrors the input tree.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The file `detect` leaves in its output folder: a folder holding it is never walked for
/// input images (unless given itself), so one run's annotated images are never the next
/// run's inputs, whatever `--out` either used.
pub const OUTPUT_MARKER: &str = ".qdet-output";

/// Extensions qdet decodes (Ultralytics' IMG_FORMATS minus the ones without a pure-Rust decoder).
pub const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "mpo", "png", "bmp", "tif", "tiff", "webp"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceImage {
    pub path: PathBuf,
    /// Path relative to the source root it was found under.
    pub rel: PathBuf,
    /// What its outputs are named after, without their extension: `rel` without its own
    /// (`sub/photo`), or with it (`sub/photo.png`) when an earlier image of the run has the
    /// same stem in the same folder (`sub/photo.jpg`).
    pub stem: PathBuf,
}

impl SourceImage {
    fn new(path: PathBuf, rel: PathBuf) -> SourceImage {
        let stem = rel.with_extension("");
        SourceImage { path, rel, stem }
    }
}

pub fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Expands sources in order: a file is taken as given (even without an image extension, so
/// a mislabelled file is reported rather than silently ignored); a folder is walked
/// recursively for image files; anything else is tried as a glob pattern.
/// The images found, and the entries of the folders that could not be walked.
#[derive(Debug, Default)]
pub struct Collected {
    pub images: Vec<SourceImage>,
    /// Video files found in folders, for the video path (given files are the caller's).
    pub videos: Vec<PathBuf>,
    /// A broken symlink, a symlink loop or an unreadable folder, with the reason: left out
    /// and reported, as an unreadable image is, instead of stopping the whole run.
    pub skipped: Vec<(PathBuf, String)>,
}

/// [`collect_excluding`] with nothing excluded.
pub fn collect(sources: &[PathBuf]) -> Result<Collected> {
    collect_excluding(sources, &[])
}

/// The images of `sources` (files, folders walked recursively, glob patterns), leaving out
/// the folders `exclude` (a run's own output folder inside a source: a second run must not
/// read the first one's annotated images as inputs).
pub fn collect_excluding(sources: &[PathBuf], exclude: &[PathBuf]) -> Result<Collected> {
    let exclude: Vec<PathBuf> = exclude.iter().filter_map(|e| std::fs::canonicalize(e).ok()).collect();
    let mut out = Collected::default();
    for src in sources {
        if src.is_file() {
            let name = src.file_name().map(PathBuf::from).unwrap_or_else(|| src.clone());
            out.images.push(SourceImage::new(src.clone(), name));
        } else if src.is_dir() {
            let walker = walkdir::WalkDir::new(src).follow_links(true).sort_by_file_name().into_iter();
            let walker = walker.filter_entry(|e| {
                e.depth() == 0
                    || !e.file_type().is_dir()
                    || !e.path().join(OUTPUT_MARKER).exists()
                        && (exclude.is_empty()
                            || std::fs::canonicalize(e.path()).map_or(true, |p| !exclude.contains(&p)))
            });
            for entry in walker {
                match entry {
                    Ok(entry) if entry.file_type().is_file() && is_image(entry.path()) => {
                        let rel = entry.path().strip_prefix(src).unwrap_or(entry.path()).to_path_buf();
                        out.images.push(SourceImage::new(entry.path().to_path_buf(), rel));
                    }
                    Ok(entry) if entry.file_type().is_file() && crate::video::is_video(entry.path()) => {
                        out.videos.push(entry.path().to_path_buf());
                    }
                    Ok(_) => {}
                    Err(e) if e.depth() == 0 => return Err(Error::format(src, e.to_string())),
                    Err(e) => out.skipped.push((e.path().unwrap_or(src).to_path_buf(), walk_reason(&e))),
                }
            }
        } else {
            out.images.extend(expand_glob(src)?);
        }
    }
    name_outputs(&mut out.images)?;
    Ok(out)
}

/// What went wrong with a folder entry, in words (walkdir's text repeats the path).
pub(crate) fn walk_reason(e: &walkdir::Error) -> String {
    if let Some(ancestor) = e.loop_ancestor() {
        return format!("a symlink loop back to {}", ancestor.display());
    }
    match e.io_error() {
        Some(io) if io.kind() == std::io::ErrorKind::NotFound => "a broken symlink".into(),
        Some(io) => io.to_string(),
        None => e.to_string(),
    }
}

fn expand_glob(pattern: &Path) -> Result<Vec<SourceImage>> {
    let text = pattern.to_string_lossy();
    if !text.contains(['*', '?', '[']) {
        return Err(Error::io(pattern, std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or folder")));
    }
    // Outputs mirror the tree below the pattern's literal leading folders.
    let root: PathBuf =
        pattern.components().take_while(|c| !c.as_os_str().to_string_lossy().contains(['*', '?', '['])).collect();
    let paths = glob::glob(&text).map_err(|e| Error::format(pattern, format!("bad glob pattern: {e}")))?;
    let mut out = Vec::new();
    for p in paths {
        let p = p.map_err(|e| Error::io(e.path().to_path_buf(), std::io::Error::other(e.to_string())))?;
        if p.is_file() {
            let rel = p.strip_prefix(&root).unwrap_or(&p).to_path_buf();
            out.push(SourceImage::new(p, rel));
        }
    }
    if out.is_empty() {
        return Err(Error::format(pattern, "the pattern matches no files"));
    }
    Ok(out)
}

/// Gives every image outputs of their own: an image with the stem of an earlier one in the
/// same folder (`photo.png` after `photo.jpg`) has its outputs named after its whole name
/// (`photo.png.json`). The same relative path twice (one file given twice, or two source
/// folders holding `a.jpg`) would still overwrite each other's results, and is refused.
fn name_outputs(images: &mut [SourceImage]) -> Result<()> {
    let mut seen: HashMap<PathBuf, usize> = HashMap::new();
    for i in 0..images.len() {
        if let Some(&first) = seen.get(&images[i].stem) {
            if images[first].rel != images[i].rel {
                images[i].stem = images[i].rel.clone();
            }
        }
        if let Some(first) = seen.insert(images[i].stem.clone(), i) {
            return Err(Error::format(
                &images[i].path,
                format!(
                    "its outputs would have the same name as those of {}; give the folders separately or rename",
                    images[first].path.display()
                ),
            ));
        }
    }
    Ok(())
}

/// Ultralytics-style run folder: `base/name`, then `base/name2`, `base/name3`, ...
pub fn next_run_dir(base: &Path, name: &str) -> PathBuf {
    let first = base.join(name);
    if !first.exists() {
        return first;
    }
    (2..).map(|i| base.join(format!("{name}{i}"))).find(|p| !p.exists()).unwrap_or(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_files_and_globs_mirror_their_tree() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        std::fs::create_dir_all(root.join("imgs/sub")).unwrap();
        for f in ["imgs/a.jpg", "imgs/sub/b.PNG", "imgs/notes.txt", "c.jpeg"] {
            std::fs::write(root.join(f), b"x").unwrap();
        }
        let got = collect(&[root.join("imgs"), root.join("c.jpeg")]).unwrap();
        let rels: Vec<_> = got.images.iter().map(|s| s.rel.clone()).collect();
        assert_eq!(rels, vec![PathBuf::from("a.jpg"), PathBuf::from("sub/b.PNG"), PathBuf::from("c.jpeg")]);
        let got = collect(&[root.join("imgs/*/*.PNG")]).unwrap().images;
        assert_eq!(got[0].rel, PathBuf::from("sub/b.PNG"));
        assert!(collect(&[root.join("missing")]).unwrap_err().to_string().contains("missing"));
        // The same output name twice is refused before any work.
        let e = collect(&[root.join("imgs"), root.join("imgs/a.jpg")]).unwrap_err();
        assert!(e.to_string().contains("same name"), "{e}");
    }

    /// `photo.jpg` and `photo.png` side by side: the second's outputs are named after its
    /// whole name, so neither overwrites the other.
    #[test]
    fn images_with_one_stem_get_outputs_of_their_own() {
        let d = tempfile::tempdir().unwrap();
        for f in ["photo.jpg", "photo.png", "photo.webp", "other.jpg"] {
            std::fs::write(d.path().join(f), b"x").unwrap();
        }
        let got = collect(&[d.path().to_path_buf()]).unwrap().images;
        let stems: Vec<_> = got.iter().map(|s| (s.rel.clone(), s.stem.clone())).collect();
        let p = PathBuf::from;
        assert_eq!(
            stems,
            [
                (p("other.jpg"), p("other")),
                (p("photo.jpg"), p("photo")),
                (p("photo.png"), p("photo.png")),
                (p("photo.webp"), p("photo.webp"))
            ]
        );
    }

    #[test]
    fn run_dirs_increment() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(next_run_dir(d.path(), "predict"), d.path().join("predict"));
        std::fs::create_dir(d.path().join("predict")).unwrap();
        std::fs::create_dir(d.path().join("predict2")).unwrap();
        assert_eq!(next_run_dir(d.path(), "predict"), d.path().join("predict3"));
    }
}
