//! `qdet convert`: labelme JSON, YOLO txt and Pascal VOC XML into YOLO txt or labelme JSON.
//!
//! Every annotation is read first into pixel boxes on the upright image; then the class list
//! is settled (given, or collected and sorted), so an unknown label stops the run before a
//! single file is written; then each output is written atomically, mirroring the source tree.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde_json::Map;

use super::classes::{self, Unknown, LABELME_RESERVED};
use super::files::{self, Found, ImageIndex};
use super::{DatasetSummary, Event, Problem, Progress};
use crate::atomic::{self, Existing};
use crate::error::{Error, Result};
use crate::formats::labelme::{self, relative_path, LabelmeFile, Shape};
use crate::formats::shapes;
use crate::formats::voc;
use crate::formats::yolo;
use crate::image_io::upright_dimensions;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Labelme,
    Yolo,
    Voc,
}

impl Format {
    fn ext(self) -> &'static str {
        match self {
            Format::Labelme => "json",
            Format::Yolo => "txt",
            Format::Voc => "xml",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ConvertOptions {
    pub from: Format,
    pub to: Format,
    /// An annotation file or a folder walked recursively.
    pub src: PathBuf,
    pub out: PathBuf,
    /// The class list, and the file it came from (named in messages).
    pub classes: Option<(Vec<String>, PathBuf)>,
    /// Leave out (and report) boxes whose label is not in the class list instead of stopping.
    pub skip_unknown: bool,
    /// labelme polygons become their bounding box (else they are left out and reported).
    pub polygons: bool,
    /// VOC objects marked `<difficult>1</difficult>` are kept.
    pub keep_difficult: bool,
    /// VOC coordinates are 1-based pixel indices (the VOC devkit's convention) rather than
    /// the 0-based pixel coordinates labelme, LabelImg and CVAT write.
    pub voc_one_based: bool,
    pub existing: Existing,
}

#[derive(Debug, Clone)]
enum Label {
    Name(String),
    Id(usize),
}

#[derive(Debug, Clone)]
struct Object {
    label: Label,
    /// `[x1, y1, x2, y2]` in pixels of the upright image, not yet clipped.
    bbox: [f64; 4],
    /// Polygon vertices in pixels, for YOLO segmentation lines going to labelme.
    polygon: Option<Vec<[f64; 2]>>,
    score: Option<f64>,
    line: Option<usize>,
    /// How to point at the object in a message: `shapes[3] ("cat")`, `object "cat"`.
    what: String,
}

#[derive(Debug)]
struct Parsed {
    src: PathBuf,
    rel: PathBuf,
    image: Option<PathBuf>,
    size: (u32, u32),
    objects: Vec<Object>,
    dropped: Vec<Problem>,
    excluded: Vec<Problem>,
}

/// Converts every annotation file under `opts.src`; see the module docs for the order.
/// Fatal problems (no input, unknown labels, no class names) are errors; per-file problems
/// are in the summary.
pub fn convert(opts: &ConvertOptions, progress: Progress) -> Result<DatasetSummary> {
    check_formats(opts.from, opts.to)?;
    let (inputs, unwalkable) = find_inputs(opts)?;
    progress(Event::Stage("files", inputs.len()));
    let index = image_index(opts.from, &inputs);
    let parsed: Vec<std::result::Result<Parsed, Problem>> =
        inputs.par_iter().map(|f| read_one(opts, f, &index)).collect();

    let mut summary = DatasetSummary { output_dir: opts.out.clone(), skipped: unwalkable, ..DatasetSummary::default() };
    let mut ok = Vec::new();
    for p in parsed {
        match p {
            Ok(p) => ok.push(p),
            Err(problem) => {
                progress(Event::Step(Some(&problem)));
                summary.skipped.push(problem);
            }
        }
    }
    summary.read = ok.len();
    drop_unwritable_labels(&mut ok);
    let names = class_list(opts, &mut ok)?;
    let names = if opts.to == Format::Yolo { reconcile_with_out(opts, names)? } else { names };

    std::fs::create_dir_all(&opts.out).map_err(|e| Error::io(&opts.out, e))?;
    let results: Vec<(Parsed, std::result::Result<(), Problem>)> = ok
        .into_par_iter()
        .map(|p| {
            let mut p = p;
            let written = write_one(opts, &mut p, &names);
            progress(Event::Step(written.as_ref().err()));
            (p, written)
        })
        .collect();
    for (p, written) in results {
        summary.dropped.extend(p.dropped);
        summary.excluded.extend(p.excluded);
        match written {
            Ok(()) => summary.written += 1,
            Err(problem) => summary.skipped.push(problem),
        }
    }
    if opts.to == Format::Yolo {
        let existing = opts.existing;
        for (file, text) in [("classes.txt", classes::classes_txt(&names)), ("data.yaml", data_yaml(&names))] {
            let path = opts.out.join(file);
            match classes::write_if_changed(&path, &text, existing) {
                Ok(true) => summary.written += 1,
                Ok(false) => {}
                Err(e) => summary.skipped.push(Problem::from_error(&path, &e)),
            }
        }
    }
    summary.sort();
    Ok(summary)
}

fn check_formats(from: Format, to: Format) -> Result<()> {
    match (from, to) {
        (_, Format::Voc) => Err(Error::Invalid("qdet converts to yolo or labelme, not to voc".into())),
        (a, b) if a == b => {
            Err(Error::Invalid(format!("nothing to convert: --from and --to are both {a:?}").to_lowercase()))
        }
        _ => Ok(()),
    }
}

fn find_inputs(opts: &ConvertOptions) -> Result<(Vec<Found>, Vec<Problem>)> {
    let ext = opts.from.ext();
    let names_file = opts.classes.as_ref().map(|(_, p)| crate::paths::absolute(p));
    let (found, unwalkable) = files::walk(&opts.src, std::slice::from_ref(&opts.out), |p| {
        // A class list lying among the labels is not a label file.
        let is_list = p.file_name() == Some(OsStr::new("classes.txt"))
            || names_file.as_ref().is_some_and(|n| crate::paths::absolute(p) == *n);
        files::has_ext(p, ext) && !is_list
    })?;
    if found.is_empty() {
        return Err(Error::Invalid(format!("no .{ext} files in {}", opts.src.display())));
    }
    Ok((found, unwalkable))
}

/// Folders where images may be, listed once up front (YOLO and VOC need the image size).
fn image_index(from: Format, inputs: &[Found]) -> ImageIndex {
    let dirs: Vec<PathBuf> = match from {
        Format::Labelme => return ImageIndex::default(),
        Format::Yolo => inputs.iter().flat_map(|f| files::image_dirs_for_label(&f.path)).collect(),
        Format::Voc => inputs.iter().flat_map(|f| voc_image_dirs(&f.path)).collect(),
    };
    ImageIndex::build(dirs.iter().map(PathBuf::as_path))
}

fn read_one(opts: &ConvertOptions, f: &Found, index: &ImageIndex) -> std::result::Result<Parsed, Problem> {
    match opts.from {
        Format::Labelme => read_labelme(opts, f),
        Format::Yolo => read_yolo(f, index),
        Format::Voc => read_voc(opts, f, index),
    }
}

/// Reads a labelme file; used by `split` too.
pub fn parse_labelme(path: &Path) -> std::result::Result<LabelmeFile, Problem> {
    let text = crate::input::read(path, crate::input::TEXT_LIMIT).map_err(|e| Problem::from_error(path, &e))?;
    parse_labelme_bytes(&text, path)
}

/// `parse_labelme` of bytes already read; `path` names the file in problems.
pub fn parse_labelme_bytes(text: &[u8], path: &Path) -> std::result::Result<LabelmeFile, Problem> {
    let file: LabelmeFile = serde_json::from_slice(text)
        .map_err(|e| Problem::at_line(path, e.line(), format!("invalid labelme JSON: {e}")))?;
    if file.image_width == 0 || file.image_height == 0 {
        return Err(Problem::new(path, "imageWidth and imageHeight must be positive"));
    }
    Ok(file)
}

fn read_labelme(opts: &ConvertOptions, f: &Found) -> std::result::Result<Parsed, Problem> {
    let file = parse_labelme(&f.path)?;
    let LabelmeBoxes { objects, dropped, excluded } = labelme_boxes(&f.path, &file, opts.polygons);
    Ok(Parsed {
        src: f.path.clone(),
        rel: f.rel.clone(),
        image: None,
        size: (file.image_width, file.image_height),
        objects,
        dropped,
        excluded,
    })
}

/// The boxes of a labelme file, the shapes that have none (`dropped`) and those left out
/// by rule (`excluded`: ignore regions, polygons under `--rectangles-only`).
struct LabelmeBoxes {
    objects: Vec<Object>,
    dropped: Vec<Problem>,
    excluded: Vec<Problem>,
}

fn labelme_boxes(path: &Path, file: &LabelmeFile, polygons: bool) -> LabelmeBoxes {
    let mut out = LabelmeBoxes { objects: Vec::new(), dropped: Vec::new(), excluded: Vec::new() };
    for (i, s) in file.shapes.iter().enumerate() {
        let what = format!("shapes[{i}] ({:?})", s.label);
        if s.label == LABELME_RESERVED[0] {
            out.excluded.push(Problem::new(path, format!("{what}: labelme ignore region, not an object")));
            continue;
        }
        if !polygons && s.shape_type == "polygon" {
            out.excluded.push(Problem::new(path, format!("{what}: polygon left out (--rectangles-only)")));
            continue;
        }
        match shapes::shape_box(s, polygons) {
            Ok(bbox) => out.objects.push(Object {
                label: Label::Name(s.label.clone()),
                bbox,
                polygon: None,
                score: None,
                line: None,
                what,
            }),
            Err(why) => out.dropped.push(Problem::new(path, format!("{what}: {why}"))),
        }
    }
    out
}

/// The labelme shapes of `path` as (label, pixel box) pairs, with the shapes lost and those
/// left out by rule; `split` turns them into YOLO lines.
pub fn labelme_labeled_boxes(path: &Path, file: &LabelmeFile, polygons: bool) -> LabeledBoxes {
    let LabelmeBoxes { objects, dropped, excluded } = labelme_boxes(path, file, polygons);
    let boxes = objects
        .into_iter()
        .map(|o| match o.label {
            Label::Name(n) => (n, o.bbox),
            Label::Id(i) => (i.to_string(), o.bbox),
        })
        .collect();
    LabeledBoxes { boxes, dropped, excluded }
}

pub struct LabeledBoxes {
    pub boxes: Vec<(String, [f64; 4])>,
    pub dropped: Vec<Problem>,
    pub excluded: Vec<Problem>,
}

fn read_yolo(f: &Found, index: &ImageIndex) -> std::result::Result<Parsed, Problem> {
    let stem = f.path.file_stem().unwrap_or_default();
    let image =
        files::find_image(index, &files::image_dirs_for_label(&f.path), stem).map_err(|r| Problem::new(&f.path, r))?;
    let size = upright_dimensions(&image).map_err(|e| Problem::from_error(&image, &e))?;
    let labels = yolo::read(&f.path).map_err(|e| Problem::from_error(&f.path, &e))?;
    let objects = labels
        .iter()
        .map(|l| Object {
            label: Label::Id(l.class),
            bbox: l.pixel_box(size.0, size.1),
            polygon: match &l.geometry {
                yolo::Geometry::Polygon(pts) => {
                    Some(pts.iter().map(|[x, y]| [x * size.0 as f64, y * size.1 as f64]).collect())
                }
                yolo::Geometry::Box(_) => None,
            },
            score: l.conf,
            line: Some(l.line),
            what: format!("class {}", l.class),
        })
        .collect();
    Ok(Parsed {
        src: f.path.clone(),
        rel: f.rel.clone(),
        image: Some(image),
        size,
        objects,
        dropped: Vec::new(),
        excluded: Vec::new(),
    })
}

fn voc_image_dirs(xml: &Path) -> Vec<PathBuf> {
    let dir = xml.parent().unwrap_or(Path::new("")).to_path_buf();
    let mut out = Vec::new();
    if let Some(root) = dir.parent() {
        out.push(root.join("JPEGImages"));
    }
    if let Some(i) = files::images_dir_for(&dir) {
        out.push(i);
    }
    out.push(dir);
    out
}

/// The image of a VOC file: `<filename>` in `../JPEGImages/`, beside the XML, or at `<path>`;
/// then any image with the XML's stem there.
fn voc_image(xml: &Path, ann: &voc::VocAnnotation, index: &ImageIndex) -> std::result::Result<PathBuf, String> {
    let dirs = voc_image_dirs(xml);
    // `<filename>` names a file in those folders: its last component only, so
    // `<filename>/etc/passwd</filename>` cannot point outside them.
    if let Some(name) = ann.filename.as_ref().and_then(|f| Path::new(f).file_name()) {
        if let Some(p) = dirs.iter().map(|d| d.join(name)).find(|p| p.is_file()) {
            return Ok(p);
        }
    }
    // `<path>` is where the annotating tool saw the image; used only if it is an image.
    if let Some(p) = ann.path.as_ref().map(PathBuf::from).filter(|p| crate::sources::is_image(p) && p.is_file()) {
        return Ok(p);
    }
    let stem = ann.filename.as_ref().map(Path::new).and_then(Path::file_stem).or(xml.file_stem()).unwrap_or_default();
    files::find_image(index, &dirs, stem)
}

fn read_voc(opts: &ConvertOptions, f: &Found, index: &ImageIndex) -> std::result::Result<Parsed, Problem> {
    let ann = voc::read(&f.path).map_err(|e| Problem::from_error(&f.path, &e))?;
    let need_image = ann.size.is_none() || opts.to == Format::Labelme;
    let image = if need_image {
        let why = if ann.size.is_none() { "no <size>, and " } else { "" };
        Some(voc_image(&f.path, &ann, index).map_err(|r| Problem::new(&f.path, format!("{why}{r}")))?)
    } else {
        None
    };
    let size = match (ann.size, &image) {
        (Some(s), _) => s,
        (None, Some(img)) => upright_dimensions(img).map_err(|e| Problem::from_error(img, &e))?,
        (None, None) => return Err(Problem::new(&f.path, "no <size> and no image")),
    };
    let mut objects = Vec::new();
    let mut excluded = Vec::new();
    for o in &ann.objects {
        let line = o.line as usize;
        if o.difficult && !opts.keep_difficult {
            excluded.push(Problem::at_line(
                &f.path,
                line,
                format!("object {:?} is difficult, left out (--keep-difficult keeps it)", o.name),
            ));
            continue;
        }
        let [x1, y1, x2, y2] = o.bbox;
        let shift = if opts.voc_one_based { 1.0 } else { 0.0 };
        let bbox = [x1.min(x2) - shift, y1.min(y2) - shift, x1.max(x2), y1.max(y2)];
        let what = format!("object {:?}", o.name);
        objects.push(Object {
            label: Label::Name(o.name.clone()),
            bbox,
            polygon: None,
            score: None,
            line: Some(line),
            what,
        });
    }
    Ok(Parsed { src: f.path.clone(), rel: f.rel.clone(), image, size, objects, dropped: Vec::new(), excluded })
}

/// Decides the class list and checks every label against it. Names become ids for YOLO
/// output and ids become names for labelme output; unknown ones stop the run or, with
/// `skip_unknown`, are left out and reported.
/// Leaves out (and reports) objects whose label cannot be a line of `classes.txt`: an empty
/// label, or one with a line break, would shift every later class id by one when the list
/// is read back.
fn drop_unwritable_labels(parsed: &mut [Parsed]) {
    for p in parsed.iter_mut() {
        let (src, dropped) = (&p.src, &mut p.dropped);
        p.objects.retain(|o| {
            let Label::Name(n) = &o.label else { return true };
            let why = if n.trim().is_empty() {
                "has an empty label"
            } else if n.contains(['\n', '\r']) {
                "has a label with a line break, which a one-name-per-line class list cannot hold"
            } else {
                return true;
            };
            let reason = format!("{} {why}; left out", o.what);
            dropped.push(match o.line {
                Some(l) => Problem::at_line(src, l, reason),
                None => Problem::new(src, reason),
            });
            false
        });
    }
}

/// The class list to write into `--out` when it already has one (`classes.txt` or
/// `data.yaml`, as an earlier convert or a dataset left): the same list is fine; a list that
/// holds every class of this run (in its own order) is used as it is, so the labels written
/// now agree with the ones there; any other list refuses the run before anything is written,
/// unless `--overwrite`.
fn reconcile_with_out(opts: &ConvertOptions, names: Vec<String>) -> Result<Vec<String>> {
    let Some(path) = ["classes.txt", "data.yaml"].map(|f| opts.out.join(f)).into_iter().find(|p| p.is_file()) else {
        return Ok(names);
    };
    let there = classes::read(&path)?;
    if there == names || opts.existing == Existing::Overwrite {
        return Ok(names);
    }
    if opts.classes.is_none() && names.iter().all(|n| there.contains(n)) {
        return Ok(there);
    }
    Err(Error::format(
        &path,
        format!(
            "already lists {} classes in another order or with others ({}); labels written with this run's ids ({}) would not match it: \
             convert into an empty folder, pass --classes {}, or --overwrite",
            there.len(),
            preview(&there),
            preview(&names),
            path.display()
        ),
    ))
}

fn preview(names: &[String]) -> String {
    let head: Vec<&str> = names.iter().take(5).map(String::as_str).collect();
    if names.len() > 5 {
        format!("{}, ...", head.join(", "))
    } else {
        head.join(", ")
    }
}

/// The class list of the output: the one given (or found beside YOLO labels), with the
/// objects it does not name left out and reported, or else every label found, sorted.
fn class_list(opts: &ConvertOptions, parsed: &mut [Parsed]) -> Result<Vec<String>> {
    let given = match (&opts.classes, opts.from) {
        (Some((names, path)), _) => Some((names.clone(), path.clone())),
        (None, Format::Yolo) => {
            let path = classes::find_beside(&opts.src).ok_or_else(|| {
                Error::Invalid(format!(
                    "YOLO labels hold class ids: pass --classes classes.txt|data.yaml (none found in {} or its parent)",
                    opts.src.display()
                ))
            })?;
            Some((classes::read(&path)?, path))
        }
        (None, _) => None,
    };
    let Some((names, list_path)) = given else {
        let all = parsed.iter().flat_map(|p| &p.objects).filter_map(|o| match &o.label {
            Label::Name(n) => Some(n.as_str()),
            Label::Id(_) => None,
        });
        return Ok(classes::collect(all));
    };
    let mut unknown = Unknown::default();
    for p in parsed.iter_mut() {
        let mut kept = Vec::with_capacity(p.objects.len());
        for o in p.objects.drain(..) {
            let known = match &o.label {
                Label::Name(n) => names.contains(n),
                Label::Id(i) => *i < names.len(),
            };
            if known {
                kept.push(o);
                continue;
            }
            let label = match &o.label {
                Label::Name(n) => n.clone(),
                Label::Id(i) => format!("class id {i}"),
            };
            unknown.add(&label, &p.src);
            let problem = format!("{}: {label} is not in {}, left out (--skip-unknown)", o.what, list_path.display());
            p.excluded.push(Problem { path: p.src.clone(), line: o.line, reason: problem });
        }
        p.objects = kept;
    }
    if !unknown.labels.is_empty() && !opts.skip_unknown {
        return Err(unknown.error(&format!("the class list {}", list_path.display())));
    }
    Ok(names)
}

fn write_one(opts: &ConvertOptions, p: &mut Parsed, names: &[String]) -> std::result::Result<(), Problem> {
    let (w, h) = p.size;
    let mut kept = Vec::new();
    for o in std::mem::take(&mut p.objects) {
        match shapes::clip(o.bbox, w, h) {
            Some(b) => kept.push(Object { bbox: b, ..o }),
            None => p.dropped.push(Problem {
                path: p.src.clone(),
                line: o.line,
                reason: format!("{}: box {:?} lies outside the {w}x{h} image", o.what, o.bbox),
            }),
        }
    }
    let dest = opts.out.join(&p.rel).with_extension(opts.to.ext());
    let bytes = match opts.to {
        Format::Yolo => kept
            .iter()
            .filter_map(|o| {
                // class_list left only labels that are in the list.
                let id = match &o.label {
                    Label::Id(i) => Some(*i),
                    Label::Name(n) => names.iter().position(|m| m == n),
                };
                id.map(|id| yolo::box_line(id, o.bbox, w, h))
            })
            .collect::<String>()
            .into_bytes(),
        Format::Labelme => {
            let image = p.image.as_deref().unwrap_or(Path::new(""));
            let dir = crate::paths::absolute(dest.parent().unwrap_or(Path::new(".")));
            let image_path = relative_path(&crate::paths::absolute(image), &dir);
            let shapes = kept.iter().map(|o| labelme_shape(o, names)).collect();
            LabelmeFile::new(image_path.to_string_lossy().into_owned(), w, h, shapes).to_json()
        }
        Format::Voc => unreachable!("check_formats refuses VOC output"),
    };
    crate::paths::ensure_parent(&dest).map_err(|e| Problem::from_error(&dest, &e))?;
    atomic::write(&dest, &bytes, opts.existing).map_err(|e| Problem::from_error(&dest, &e))
}

fn labelme_shape(o: &Object, names: &[String]) -> Shape {
    let label = match &o.label {
        Label::Name(n) => n.clone(),
        Label::Id(i) => names.get(*i).cloned().unwrap_or_else(|| i.to_string()),
    };
    let [x1, y1, x2, y2] = o.bbox.map(labelme::tidy);
    let (shape_type, points) = match &o.polygon {
        Some(pts) => ("polygon", pts.iter().map(|p| p.map(labelme::tidy)).collect()),
        None => ("rectangle", vec![[x1, y1], [x2, y2]]),
    };
    Shape {
        label,
        points,
        group_id: None,
        description: String::new(),
        shape_type: shape_type.into(),
        flags: Map::new(),
        mask: None,
        score: o.score,
        extra: Map::new(),
    }
}

/// A names-only dataset yaml: enough for `qdet detect --names` and for `qdet split`, which
/// writes the full one (with `path`, `train`, `val`) once there are images to point at.
fn data_yaml(names: &[String]) -> String {
    format!(
        "# class names written by qdet convert; `qdet split` writes a data.yaml with train/val\n{}",
        classes::yaml_names(names)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_pointless_or_unsupported_directions() {
        assert!(check_formats(Format::Yolo, Format::Yolo).unwrap_err().to_string().contains("nothing to convert"));
        assert!(check_formats(Format::Labelme, Format::Voc).is_err());
        assert!(check_formats(Format::Voc, Format::Labelme).is_ok());
    }
}
