//! `qdet split`: image+label pairs into Ultralytics' `images/{train,val}` +
//! `labels/{train,val}` layout with a `data.yaml`, the same way for the same seed.
//!
//! The run has three steps so that nothing can be lost half-way: pair and read every label;
//! plan every destination and refuse to start if any exists or two coincide; then copy or
//! move pair by pair, a move removing the sources only once the pair is fully in place.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::classes::{self, Unknown};
use super::convert::{labelme_labeled_boxes, parse_labelme, LabeledBoxes};
use super::files::{self, Found};
use super::rng::Rng;
use super::transfer::{self, Mode};
use super::{DatasetSummary, Event, Problem, Progress};
use crate::atomic::{self, Existing};
use crate::error::{Error, Result};
use crate::formats::labelme::LabelmeFile;
use crate::formats::shapes;
use crate::formats::yolo;
use crate::image_io::upright_dimensions;
use crate::sources::is_image;

/// Which label files pair with the images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelKind {
    /// YOLO txt if any image has one, else labelme JSON.
    Auto,
    /// YOLO txt in the `labels/` sibling folder or beside the image.
    Yolo,
    /// labelme JSON beside the image; converted to YOLO txt on the way.
    Labelme,
}

#[derive(Debug, Clone)]
pub struct SplitOptions {
    pub src: PathBuf,
    pub out: PathBuf,
    /// Share of the pairs that go to `val`, in (0, 1).
    pub val: f64,
    pub seed: u64,
    pub mode: Mode,
    pub labels: LabelKind,
    pub classes: Option<(Vec<String>, PathBuf)>,
    /// labelme input: leave out boxes whose label is not in the given class list.
    pub skip_unknown: bool,
    /// labelme input: polygons become their bounding box.
    pub polygons: bool,
    pub existing: Existing,
}

enum Content {
    /// Copied or moved as it is.
    Yolo { max_class: Option<usize> },
    /// Becomes a YOLO txt; the JSON goes beside the image with `imagePath` set to it.
    Labelme { file: Box<LabelmeFile>, boxes: Vec<(String, [f64; 4])> },
}

struct Pair {
    image: PathBuf,
    /// The image's path below SRC, without a leading `images/`; outputs are named after it.
    rel: PathBuf,
    label: PathBuf,
    content: Content,
}

enum Step {
    Place { from: PathBuf, to: PathBuf },
    Write { bytes: Vec<u8>, to: PathBuf },
}

impl Step {
    fn dest(&self) -> &Path {
        match self {
            Step::Place { to, .. } | Step::Write { to, .. } => to,
        }
    }
}

pub fn split(opts: &SplitOptions, progress: Progress) -> Result<DatasetSummary> {
    if !(opts.val > 0.0 && opts.val < 1.0) {
        return Err(Error::Invalid(format!("--val must be between 0 and 1 (a share of the images), not {}", opts.val)));
    }
    if !opts.src.is_dir() {
        return Err(Error::Invalid(format!("{} is not a folder", opts.src.display())));
    }
    let mut summary = DatasetSummary { output_dir: opts.out.clone(), ..DatasetSummary::default() };
    let outputs: Vec<PathBuf> =
        ["images/train", "images/val", "labels/train", "labels/val"].iter().map(|d| opts.out.join(d)).collect();
    let (images, unwalkable) = files::walk(&opts.src, &outputs, is_image)?;
    summary.skipped.extend(unwalkable);
    if images.is_empty() {
        let already = outputs.iter().any(|d| d.is_dir());
        let hint = if already {
            format!(" outside {}/images/{{train,val}} (split already?)", opts.out.display())
        } else {
            String::new()
        };
        return Err(Error::Invalid(format!("no images in {}{hint}", opts.src.display())));
    }
    let kind = match opts.labels {
        LabelKind::Auto if images.iter().any(|i| yolo_label(&i.path).is_some()) => LabelKind::Yolo,
        LabelKind::Auto => LabelKind::Labelme,
        k => k,
    };
    let mut pairs = read_pairs(opts, &images, kind, &outputs, &mut summary)?;
    summary.read = pairs.len();
    let names = yaml_names(opts, &mut pairs, &mut summary)?;

    let val = choose_val(&pairs.iter().map(|p| files::rel_key(&p.rel)).collect::<Vec<_>>(), opts.val, opts.seed);
    let plans: Vec<Vec<Step>> =
        pairs.iter().enumerate().map(|(i, p)| plan(opts, p, val.contains(&i), &names)).collect();
    let n_val = val.len();
    let yaml = data_yaml(opts, &names, pairs.len() - n_val, n_val);
    let yaml_path = opts.out.join("data.yaml");
    let yaml_existing = match crate::input::read_text(&yaml_path, crate::input::TEXT_LIMIT) {
        // A names-only yaml (as `qdet convert` writes) with the same names says nothing the new
        // one does not: replacing it loses nothing.
        Ok(old) if names_only_with(&old, &names) => Existing::Overwrite,
        _ => opts.existing,
    };
    check_destinations(opts, &pairs, &plans, &yaml_path, &yaml, yaml_existing)?;

    progress(Event::Stage("pairs", pairs.len()));
    for (pair, steps) in pairs.iter().zip(&plans) {
        let result = execute(opts, pair, steps);
        progress(Event::Step(result.as_ref().err()));
        match result {
            Ok((written, leftovers)) => {
                summary.written += written;
                summary.skipped.extend(leftovers);
            }
            Err(p) => summary.skipped.push(p),
        }
    }
    match classes::write_if_changed(&yaml_path, &yaml, yaml_existing) {
        Ok(true) => summary.written += 1,
        Ok(false) => {}
        Err(e) => summary.skipped.push(Problem::from_error(&yaml_path, &e)),
    }
    summary.sort();
    Ok(summary)
}

/// The images paired with their labels and read; at least one pair, or an error naming the
/// first problems.
fn read_pairs(
    opts: &SplitOptions,
    images: &[Found],
    kind: LabelKind,
    outputs: &[PathBuf],
    summary: &mut DatasetSummary,
) -> Result<Vec<Pair>> {
    let found = pair_up(opts, images, kind, outputs, summary)?;
    let read: Vec<_> = found.into_par_iter().map(|(img, label)| read_pair(opts, img, label, kind)).collect();
    let mut pairs = Vec::new();
    for r in read {
        match r {
            Ok((p, lost)) => {
                pairs.push(p);
                summary.dropped.extend(lost.dropped);
                summary.excluded.extend(lost.excluded);
            }
            Err(problem) => summary.skipped.push(problem),
        }
    }
    if pairs.is_empty() {
        summary.sort();
        let why: Vec<String> = summary.skipped.iter().take(5).map(|p| p.to_string()).collect();
        return Err(Error::Invalid(format!(
            "no usable image+label pairs in {}: {}",
            opts.src.display(),
            why.join("; ")
        )));
    }
    Ok(pairs)
}

fn yolo_label(image: &Path) -> Option<PathBuf> {
    files::label_candidates(image, "txt").into_iter().find(|p| p.is_file())
}

fn labelme_label(image: &Path) -> Option<PathBuf> {
    let p = image.with_file_name(files::with_ext(image, "json"));
    p.is_file().then_some(p)
}

/// Pairs each image with its label file; images without one, label files without an image
/// and label files two images would share are reported and left out.
fn pair_up(
    opts: &SplitOptions,
    images: &[Found],
    kind: LabelKind,
    outputs: &[PathBuf],
    summary: &mut DatasetSummary,
) -> Result<Vec<(Found, PathBuf)>> {
    let mut by_label: BTreeMap<PathBuf, Vec<Found>> = BTreeMap::new();
    for img in images {
        let label = if kind == LabelKind::Labelme { labelme_label(&img.path) } else { yolo_label(&img.path) };
        match label {
            Some(l) => by_label.entry(crate::paths::absolute(&l)).or_default().push(img.clone()),
            None => {
                let looked: Vec<String> = if kind == LabelKind::Labelme {
                    vec![img.path.with_file_name(files::with_ext(&img.path, "json")).display().to_string()]
                } else {
                    files::label_candidates(&img.path, "txt").iter().map(|p| p.display().to_string()).collect()
                };
                summary.skipped.push(Problem::new(
                    &img.path,
                    format!("image without a label file (looked for {})", looked.join(", ")),
                ));
            }
        }
    }
    let mut pairs = Vec::new();
    for (label, imgs) in &by_label {
        if let [img] = imgs.as_slice() {
            pairs.push((img.clone(), label.clone()));
        } else {
            let names: Vec<String> = imgs.iter().map(|i| i.path.display().to_string()).collect();
            summary.skipped.push(Problem::new(
                label,
                format!("label file of several images ({}): rename them apart", names.join(", ")),
            ));
        }
    }
    let ext = if kind == LabelKind::Labelme { "json" } else { "txt" };
    let names_file = opts.classes.as_ref().map(|(_, p)| crate::paths::absolute(p));
    // Unwalkable entries were reported with the images' walk of the same folder.
    let (labels, _) =
        files::walk(&opts.src, outputs, |p| files::has_ext(p, ext) && p.file_name() != Some("classes.txt".as_ref()))?;
    for l in labels {
        let abs = crate::paths::absolute(&l.path);
        if !by_label.contains_key(&abs) && names_file.as_ref() != Some(&abs) {
            summary.skipped.push(Problem::new(&l.path, "label file without an image"));
        }
    }
    pairs.sort_by(|a, b| a.0.path.cmp(&b.0.path));
    Ok(pairs)
}

/// Shapes of a labelme file that did not become YOLO lines.
#[derive(Default)]
struct Lost {
    dropped: Vec<Problem>,
    excluded: Vec<Problem>,
}

/// Reads a pair's label; also returns the shapes left out of a labelme file.
fn read_pair(
    opts: &SplitOptions,
    img: Found,
    label: PathBuf,
    kind: LabelKind,
) -> std::result::Result<(Pair, Lost), Problem> {
    let rel = img.rel.strip_prefix("images").map(Path::to_path_buf).unwrap_or_else(|_| img.rel.clone());
    if kind != LabelKind::Labelme {
        let lines = yolo::read(&label).map_err(|e| Problem::from_error(&label, &e))?;
        let content = Content::Yolo { max_class: lines.iter().map(|l| l.class).max() };
        return Ok((Pair { image: img.path, rel, label, content }, Lost::default()));
    }
    let file = parse_labelme(&label)?;
    // labelme annotates the EXIF-rotated image; a file made on the raw pixels would give
    // boxes that do not fit the image Ultralytics trains on.
    let size = upright_dimensions(&img.path).map_err(|e| Problem::from_error(&img.path, &e))?;
    if size != (file.image_width, file.image_height) {
        let why = format!(
            "annotated on a {}x{} image, but {} is {}x{} (after its EXIF rotation)",
            file.image_width,
            file.image_height,
            img.path.display(),
            size.0,
            size.1
        );
        return Err(Problem::new(&label, why));
    }
    let LabeledBoxes { boxes, dropped, excluded } = labelme_labeled_boxes(&label, &file, opts.polygons);
    let content = Content::Labelme { file: Box::new(file), boxes };
    Ok((Pair { image: img.path, rel, label, content }, Lost { dropped, excluded }))
}

/// Names for the data.yaml, and labelme labels checked against them.
fn yaml_names(opts: &SplitOptions, pairs: &mut [Pair], summary: &mut DatasetSummary) -> Result<Vec<String>> {
    let is_yolo = matches!(pairs.first().map(|p| &p.content), Some(Content::Yolo { .. }));
    let given = match &opts.classes {
        Some(c) => Some(c.clone()),
        None if is_yolo => match classes::find_beside(&opts.src) {
            Some(path) => Some((classes::read(&path)?, path)),
            None => None,
        },
        None => None,
    };
    if is_yolo {
        let max = pairs.iter().filter_map(|p| match p.content {
            Content::Yolo { max_class } => max_class,
            Content::Labelme { .. } => None,
        });
        let max = max.max();
        return match given {
            Some((names, path)) => {
                if let Some(m) = max.filter(|&m| m >= names.len()) {
                    let first =
                        pairs.iter().find(|p| matches!(p.content, Content::Yolo { max_class: Some(c) } if c == m));
                    let at = first.map(|p| p.label.display().to_string()).unwrap_or_default();
                    return Err(Error::Invalid(format!(
                        "class id {m} (in {at}) is not in {} ({} classes); fix the list or the labels",
                        path.display(),
                        names.len()
                    )));
                }
                Ok(names)
            }
            // No list anywhere: name the classes by their ids, so training still runs.
            None => Ok((0..max.map_or(1, |m| m + 1)).map(|i| i.to_string()).collect()),
        };
    }
    let Some((names, path)) = given else {
        let all = pairs.iter().flat_map(|p| match &p.content {
            Content::Labelme { boxes, .. } => boxes.iter().map(|(l, _)| l.as_str()).collect::<Vec<_>>(),
            Content::Yolo { .. } => Vec::new(),
        });
        return Ok(classes::collect(all));
    };
    let mut unknown = Unknown::default();
    for p in pairs.iter_mut() {
        if let Content::Labelme { boxes, .. } = &mut p.content {
            boxes.retain(|(l, _)| {
                let known = names.contains(l);
                if !known {
                    unknown.add(l, &p.label);
                    summary.excluded.push(Problem::new(
                        &p.label,
                        format!("label {l:?} is not in {}, left out (--skip-unknown)", path.display()),
                    ));
                }
                known
            });
        }
    }
    if !unknown.labels.is_empty() && !opts.skip_unknown {
        return Err(unknown.error(&format!("the class list {}", path.display())));
    }
    Ok(names)
}

/// Indices of the pairs that go to val: the pairs sorted by name, shuffled by the seed, and
/// the first `round(n * val)` taken (at least one, and at least one left for train).
pub fn choose_val(keys: &[String], val: f64, seed: u64) -> HashSet<usize> {
    let n = keys.len();
    let mut order: Vec<usize> = (0..n).collect();
    // Sorting first makes the split independent of the order the file system lists files in.
    order.sort_by(|&a, &b| keys[a].cmp(&keys[b]));
    Rng::for_item(seed, "split", 0).shuffle(&mut order);
    let n_val = if n < 2 { 0 } else { ((n as f64 * val).round() as usize).clamp(1, n - 1) };
    order.into_iter().take(n_val).collect()
}

fn plan(opts: &SplitOptions, p: &Pair, is_val: bool, names: &[String]) -> Vec<Step> {
    let part = if is_val { "val" } else { "train" };
    let image_to = opts.out.join("images").join(part).join(&p.rel);
    let label_to = opts.out.join("labels").join(part).join(&p.rel).with_file_name(files::with_ext(&p.rel, "txt"));
    let mut steps = Vec::new();
    match &p.content {
        Content::Yolo { .. } => steps.push(Step::Place { from: p.label.clone(), to: label_to }),
        Content::Labelme { file, boxes } => {
            let (w, h) = (file.image_width, file.image_height);
            let txt: String = boxes
                .iter()
                .filter_map(|(l, b)| {
                    let id = names.iter().position(|n| n == l)?;
                    shapes::clip(*b, w, h).map(|b| yolo::box_line(id, b, w, h))
                })
                .collect();
            steps.push(Step::Write { bytes: txt.into_bytes(), to: label_to });
            let mut json = (**file).clone();
            json.image_path = image_to.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let json_to = image_to.with_file_name(files::with_ext(&image_to, "json"));
            steps.push(Step::Write { bytes: json.to_json(), to: json_to });
        }
    }
    steps.push(Step::Place { from: p.image.clone(), to: image_to });
    steps
}

/// Refuses to start when a destination exists (without --overwrite), when two pairs would
/// land on the same file, or when a destination is a file still to be moved.
fn check_destinations(
    opts: &SplitOptions,
    pairs: &[Pair],
    plans: &[Vec<Step>],
    yaml: &Path,
    yaml_text: &str,
    yaml_existing: Existing,
) -> Result<()> {
    let sources: HashSet<PathBuf> =
        pairs.iter().flat_map(|p| [crate::paths::absolute(&p.image), crate::paths::absolute(&p.label)]).collect();
    let mut seen: HashMap<PathBuf, &Path> = HashMap::new();
    let mut conflicts = Vec::new();
    for (pair, steps) in pairs.iter().zip(plans) {
        for s in steps {
            let abs = crate::paths::absolute(s.dest());
            if let Some(other) = seen.insert(abs.clone(), &pair.image) {
                conflicts.push(format!(
                    "{} would receive both {} and {}",
                    s.dest().display(),
                    other.display(),
                    pair.image.display()
                ));
            } else if sources.contains(&abs) {
                conflicts.push(format!("{} is itself a file being split", s.dest().display()));
            } else if opts.existing == Existing::Keep && s.dest().exists() {
                conflicts.push(format!("{} already exists", s.dest().display()));
            }
        }
    }
    if yaml_existing == Existing::Keep
        && crate::input::read_text(yaml, crate::input::TEXT_LIMIT).is_ok_and(|t| t != yaml_text)
    {
        conflicts.push(format!("{} already exists with other content", yaml.display()));
    }
    if conflicts.is_empty() {
        return Ok(());
    }
    let n = conflicts.len();
    conflicts.truncate(10);
    Err(Error::Invalid(format!(
        "{n} destination{} in the way, nothing was copied or moved (pass --overwrite to replace existing files):\n  {}{}",
        if n == 1 { " is" } else { "s are" },
        conflicts.join("\n  "),
        if n > 10 { format!("\n  and {} more", n - 10) } else { String::new() }
    )))
}

/// Copies or moves one pair. On failure the files already made for the pair are removed
/// (the sources are untouched until every file is in place). Returns the number of files
/// written and problems with removing moved sources (their copies are in place).
fn execute(opts: &SplitOptions, pair: &Pair, steps: &[Step]) -> std::result::Result<(usize, Vec<Problem>), Problem> {
    let mut made: Vec<&Path> = Vec::new();
    for s in steps {
        let r = match s {
            Step::Place { from, to } => transfer::place(from, to, opts.mode, opts.existing),
            Step::Write { bytes, to } => {
                crate::paths::ensure_parent(to).and_then(|()| atomic::write(to, bytes, opts.existing))
            }
        };
        if let Err(e) = r {
            if opts.existing == Existing::Keep {
                for m in &made {
                    let _ = std::fs::remove_file(m);
                }
            }
            let mut p = Problem::from_error(s.dest(), &e);
            p.reason = format!("{} not split: {}", pair.image.display(), p.reason);
            return Err(p);
        }
        made.push(s.dest());
    }
    let mut leftovers = Vec::new();
    if opts.mode == Mode::Move {
        for src in [&pair.label, &pair.image] {
            if let Err(e) = transfer::remove_source(src) {
                leftovers.push(Problem::new(
                    src,
                    format!("copied, but the original could not be removed: {}", Problem::from_error(src, &e).reason),
                ));
            }
        }
    }
    Ok((steps.len(), leftovers))
}

/// Whether a dataset yaml has only class names (no `train`, `val`, `path`), and these ones.
fn names_only_with(text: &str, names: &[String]) -> bool {
    let Ok(doc) = crate::yaml::load(text) else { return false };
    let has = |k: &str| !doc[k].is_badvalue();
    !has("train") && !has("val") && !has("path") && crate::meta::names_from_yaml(text).is_ok_and(|n| n == names)
}

/// Ultralytics resolves a relative `path` against its own datasets folder, not the yaml's,
/// so the dataset root is written absolute.
fn data_yaml(opts: &SplitOptions, names: &[String], n_train: usize, n_val: usize) -> String {
    let root = crate::paths::absolute(&opts.out);
    format!(
        "# Written by qdet split (seed {}, val {}): {n_train} train and {n_val} val images.\npath: {}\ntrain: images/train\nval: images/val\n{}",
        opts.seed,
        opts.val,
        serde_json::Value::String(root.to_string_lossy().into_owned()),
        classes::yaml_names(names)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_names_only_yaml_with_the_same_names_may_be_replaced() {
        let names = vec!["cat".to_string(), "dog".to_string()];
        assert!(names_only_with("# from convert\nnc: 2\nnames:\n  0: \"cat\"\n  1: \"dog\"\n", &names));
        assert!(!names_only_with("names: [cat, bird]\n", &names));
        assert!(!names_only_with("train: images/train\nval: images/val\nnames: [cat, dog]\n", &names));
        assert!(!names_only_with("names: [cat, dog\n", &names));
    }

    #[test]
    fn val_share_is_rounded_and_never_empties_a_side() {
        let keys: Vec<String> = (0..10).map(|i| format!("img{i}.jpg")).collect();
        assert_eq!(choose_val(&keys, 0.3, 42).len(), 3);
        assert_eq!(choose_val(&keys, 0.01, 42).len(), 1);
        assert_eq!(choose_val(&keys, 0.99, 42).len(), 9);
        assert_eq!(choose_val(&keys[..1], 0.5, 42).len(), 0);
        // The same seed gives the same split whatever order the keys come in.
        let mut rev = keys.clone();
        rev.reverse();
        let a: HashSet<&String> = choose_val(&keys, 0.3, 42).iter().map(|&i| &keys[i]).collect();
        let b: HashSet<&String> = choose_val(&rev, 0.3, 42).iter().map(|&i| &rev[i]).collect();
        assert_eq!(a, b);
        let c: HashSet<&String> = choose_val(&keys, 0.3, 43).iter().map(|&i| &keys[i]).collect();
        assert_ne!(a, c);
    }
}
