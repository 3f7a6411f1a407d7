//! The dataset commands of the `qdet` binary: `convert`, `split` and `augment`. Flags are
//! checked and turned into the library's options here; the work is in `crate::dataset`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};

use crate::atomic::Existing;
use crate::dataset::augment::{AugmentOptions, Params};
use crate::dataset::convert::{ConvertOptions, Format};
use crate::dataset::split::{LabelKind, SplitOptions};
use crate::dataset::transfer::Mode;
use crate::dataset::{classes, DatasetSummary, Problem};

use super::common::{exit_status, print_json, progress_bar};

/// Problems printed in the text summary before the rest is only counted (`--json` lists all).
const MAX_LISTED: usize = 200;

#[derive(Clone, Copy, ValueEnum)]
pub enum FromFormat {
    Labelme,
    Yolo,
    Voc,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ToFormat {
    Yolo,
    Labelme,
}

#[derive(Args)]
#[command(after_long_help = CONVERT_HELP)]
pub struct ConvertArgs {
    /// Format of the annotations in SRC.
    #[arg(long, value_enum)]
    from: FromFormat,
    /// Format to write.
    #[arg(long, value_enum)]
    to: ToFormat,
    /// An annotation file, or a folder walked recursively for *.json / *.txt / *.xml.
    src: PathBuf,
    /// Output folder; it mirrors the folder tree of SRC.
    #[arg(long)]
    out: PathBuf,
    /// Class list: classes.txt / names.txt / labelme labels.txt (one name per line; the
    /// labelme `__ignore__` and `_background_` lines are skipped) or an Ultralytics data.yaml.
    /// Without it, labels are collected from the files and sorted (YOLO input looks for
    /// data.yaml or classes.txt in SRC and its parent).
    #[arg(long)]
    classes: Option<PathBuf>,
    /// Leave out (and report) boxes whose label is not in --classes instead of stopping.
    #[arg(long)]
    skip_unknown: bool,
    /// labelme input: convert rectangles only; polygons are left out (and reported) instead
    /// of becoming their bounding box.
    #[arg(long)]
    rectangles_only: bool,
    /// VOC input: keep objects marked <difficult>1</difficult> (left out by default).
    #[arg(long)]
    keep_difficult: bool,
    /// VOC input: coordinates are 1-based pixel indices as in the original VOC devkit
    /// (xmin and ymin are shifted by -1); labelme, LabelImg and CVAT exports are 0-based.
    #[arg(long)]
    voc_one_based: bool,
    /// Replace existing output files (without it they are kept and reported).
    #[arg(long)]
    overwrite: bool,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    json: bool,
}

const CONVERT_HELP: &str = "\
Directions: labelme -> yolo, yolo -> labelme, voc -> yolo, voc -> labelme.

Outputs mirror SRC: SRC/a/b.json becomes OUT/a/b.txt (names with several dots keep all of
them: a.b.c.json -> a.b.c.txt). YOLO output also gets OUT/classes.txt and a names-only
OUT/data.yaml. Boxes are clipped to the image; a box with nothing left is reported.

Where images are looked for (YOLO and VOC files hold no image, or no size):
  YOLO  labels/x/a.txt -> images/x/a.* (Ultralytics layout), then a.* beside the txt
  VOC   <filename> in ../JPEGImages/, beside the XML, or at <path>; then the XML's stem there
Image sizes are those of the EXIF-rotated image, as labelme and Ultralytics see it.
labelme output has imagePath relative to the JSON and imageData null; a YOLO 6th column
(confidence) becomes the shape's `score`, YOLO polygons become labelme polygons.

Exit status: 0 all converted, 1 nothing done (bad flags, unknown labels), 2 some files
skipped or shapes lost (listed with file, line and reason). Shapes left out by a rule you
chose or that is documented here (labelme __ignore__ regions, VOC difficult objects,
--skip-unknown, --rectangles-only) are listed but do not make the status 2.";

#[derive(Args)]
#[command(after_long_help = SPLIT_HELP)]
pub struct SplitArgs {
    /// Folder of images with their labels.
    src: PathBuf,
    /// Share of the images that go to val.
    #[arg(long, default_value_t = 0.1)]
    val: f64,
    /// Seed of the shuffle: the same seed and files give the same split.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output dataset folder (may be SRC itself).
    #[arg(long)]
    out: PathBuf,
    /// Copy the files (the default).
    #[arg(long, conflicts_with = "move_files")]
    copy: bool,
    /// Move the files instead of copying them.
    #[arg(long = "move")]
    move_files: bool,
    /// Which label files pair with the images [default: yolo if any image has a txt label,
    /// else labelme].
    #[arg(long, value_enum)]
    labels: Option<LabelArg>,
    /// Class list (see `convert --help`) for data.yaml and for labelme labels; YOLO input
    /// otherwise looks for data.yaml / classes.txt in SRC and its parent.
    #[arg(long)]
    classes: Option<PathBuf>,
    /// labelme input: leave out boxes whose label is not in --classes instead of stopping.
    #[arg(long)]
    skip_unknown: bool,
    /// labelme input: rectangles only; polygons are left out instead of becoming boxes.
    #[arg(long)]
    rectangles_only: bool,
    /// Replace existing files in OUT.
    #[arg(long)]
    overwrite: bool,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum LabelArg {
    Yolo,
    Labelme,
}

const SPLIT_HELP: &str = "\
Pairs: each image in SRC (walked recursively) with
  yolo     labels/x/a.txt for images/x/a.jpg (Ultralytics layout), else a.txt beside it
  labelme  a.json beside a.jpg; converted to labels/{train,val}/a.txt, and the JSON goes
           beside the image in images/{train,val}/ with imagePath updated
Images without a label file and label files without an image are reported and left where
they are (an empty txt marks a background image). The split: pairs sorted by path,
shuffled with --seed, round(n * val) to val (at least 1 each side).

Output: OUT/images/{train,val}/..., OUT/labels/{train,val}/... (subfolders of SRC below
images/ are kept) and OUT/data.yaml with an absolute `path`, train, val and names.
Before anything is copied or moved, every destination is checked: if one exists (without
--overwrite) or two files would land on the same name, nothing is done. A move makes the
new file (hard link, or copy) and removes the original only once the pair is in place.

Exit status: 0 all pairs split, 1 nothing done, 2 some images skipped or shapes lost
(labelme shapes with no box); shapes left out by --skip-unknown or --rectangles-only are
listed but do not make the status 2.";

#[derive(Args)]
#[command(after_long_help = AUGMENT_HELP)]
pub struct AugmentArgs {
    /// A labelme JSON file or a folder walked for them; each JSON's imagePath gives its image.
    src: PathBuf,
    /// Output folder: images and labelme JSON, mirroring SRC.
    #[arg(long)]
    out: PathBuf,
    /// Augmented copies to make of each source image.
    #[arg(long, default_value_t = 10)]
    n: usize,
    /// Seed: the same seed gives the same images, whatever the number of threads.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Brightness shift, up to +-this fraction of 255.
    #[arg(long, default_value_t = Params::default().brightness)]
    brightness: f64,
    /// Contrast gain, 1 +- this.
    #[arg(long, default_value_t = Params::default().contrast)]
    contrast: f64,
    /// Hue turn, up to +-this fraction of the colour circle (Ultralytics hsv_h).
    #[arg(long, default_value_t = Params::default().hue)]
    hue: f64,
    /// Saturation gain, 1 +- this (Ultralytics hsv_s).
    #[arg(long, default_value_t = Params::default().saturation)]
    saturation: f64,
    /// Probability of a Gaussian blur (sigma 0.5 to 1.5 px).
    #[arg(long, default_value_t = Params::default().blur)]
    blur: f64,
    /// Probability of additive Gaussian noise (sigma 2 to 8 levels).
    #[arg(long, default_value_t = Params::default().noise)]
    noise: f64,
    /// Probability of a horizontal flip.
    #[arg(long, default_value_t = Params::default().fliplr)]
    fliplr: f64,
    /// Zoom, 1 +- this, about the centre.
    #[arg(long, default_value_t = Params::default().scale)]
    scale: f64,
    /// Rotation, up to +-this many degrees.
    #[arg(long, default_value_t = Params::default().degrees)]
    degrees: f64,
    /// Perspective, Ultralytics units for a 640 px image (scaled to the image size).
    #[arg(long, default_value_t = Params::default().perspective)]
    perspective: f64,
    /// Replace existing output files.
    #[arg(long)]
    overwrite: bool,
    /// Worker threads [default: all cores].
    #[arg(long)]
    threads: Option<usize>,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    json: bool,
}

const AUGMENT_HELP: &str = "\
--n is the number of copies per source image: 30 images with --n 10 give 300 new images,
named <json stem>_aug00.jpg ... with <json stem>_aug00.json beside each (imagePath set,
imageData null). PNG and BMP stay PNG and BMP, other formats become JPEG (quality 95).
The source images themselves are not copied.

Each copy: one warp (flip, rotation, zoom, perspective; border filled with grey 114 as in
Ultralytics), then brightness/contrast, hue/saturation, blur, noise. Set a value to 0 to
turn that augmentation off. Rectangles move by their four corners (the new box is the box
around them), polygons and points point by point; all are clipped to the image. A shape
with less than 10% of it, or less than 2 px, left inside is dropped and reported. Circles,
lines and masks are dropped (reported). Annotations must be on the EXIF-rotated image, as
labelme makes them; a JSON whose size does not match its image is skipped.

Exit status: 0 all done, 1 nothing done, 2 some images skipped or shapes lost (a shape
kind augment does not move); shapes moved out of the frame are listed but do not make
the status 2.";

pub fn convert(a: ConvertArgs) -> anyhow::Result<ExitCode> {
    let opts = ConvertOptions {
        from: match a.from {
            FromFormat::Labelme => Format::Labelme,
            FromFormat::Yolo => Format::Yolo,
            FromFormat::Voc => Format::Voc,
        },
        to: match a.to {
            ToFormat::Yolo => Format::Yolo,
            ToFormat::Labelme => Format::Labelme,
        },
        src: a.src,
        out: a.out,
        classes: read_classes(a.classes.as_deref())?,
        skip_unknown: a.skip_unknown,
        polygons: !a.rectangles_only,
        keep_difficult: a.keep_difficult,
        voc_one_based: a.voc_one_based,
        existing: existing(a.overwrite),
    };
    let bar = progress_bar(0, "files");
    let summary = crate::dataset::convert::convert(&opts, &super::common::ticker(&bar))?;
    bar.finish_and_clear();
    finish("convert", &summary, a.json)
}

pub fn split(a: SplitArgs) -> anyhow::Result<ExitCode> {
    let opts = SplitOptions {
        src: a.src,
        out: a.out,
        val: a.val,
        seed: a.seed,
        mode: if a.move_files { Mode::Move } else { Mode::Copy },
        labels: match a.labels {
            None => LabelKind::Auto,
            Some(LabelArg::Yolo) => LabelKind::Yolo,
            Some(LabelArg::Labelme) => LabelKind::Labelme,
        },
        classes: read_classes(a.classes.as_deref())?,
        skip_unknown: a.skip_unknown,
        polygons: !a.rectangles_only,
        existing: existing(a.overwrite),
    };
    let bar = progress_bar(0, "pairs");
    let summary = crate::dataset::split::split(&opts, &super::common::ticker(&bar))?;
    bar.finish_and_clear();
    finish("split", &summary, a.json)
}

pub fn augment(a: AugmentArgs) -> anyhow::Result<ExitCode> {
    if let Some(n) = a.threads {
        anyhow::ensure!(n > 0, "--threads must be at least 1");
        rayon::ThreadPoolBuilder::new().num_threads(n).build_global().context("starting the worker pool")?;
    }
    let params = Params {
        brightness: a.brightness,
        contrast: a.contrast,
        hue: a.hue,
        saturation: a.saturation,
        blur: a.blur,
        noise: a.noise,
        fliplr: a.fliplr,
        scale: a.scale,
        degrees: a.degrees,
        perspective: a.perspective,
    };
    let opts = AugmentOptions { src: a.src, out: a.out, n: a.n, seed: a.seed, params, existing: existing(a.overwrite) };
    let bar = progress_bar(0, "source images");
    let summary = crate::dataset::augment::augment(&opts, &super::common::ticker(&bar))?;
    bar.finish_and_clear();
    finish("augment", &summary, a.json)
}

fn existing(overwrite: bool) -> Existing {
    if overwrite {
        Existing::Overwrite
    } else {
        Existing::Keep
    }
}

fn read_classes(path: Option<&Path>) -> anyhow::Result<Option<(Vec<String>, PathBuf)>> {
    path.map(|p| Ok((classes::read(p).context("reading the class list")?, p.to_path_buf()))).transpose()
}

fn finish(command: &str, s: &DatasetSummary, json: bool) -> anyhow::Result<ExitCode> {
    if json {
        print_json(s)?;
    } else {
        eprintln!(
            "qdet {command}: {} read, {} written, {} skipped, {} shapes lost, {} left out as asked; results in {}",
            s.read,
            s.written,
            s.skipped.len(),
            s.dropped.len(),
            s.excluded.len(),
            s.output_dir.display()
        );
        list("skipped", &s.skipped);
        list("shapes lost", &s.dropped);
        list("shapes left out as asked", &s.excluded);
    }
    Ok(exit_status(s.lost_any()))
}

fn list(title: &str, problems: &[Problem]) {
    if problems.is_empty() {
        return;
    }
    eprintln!("{title}:");
    for p in problems.iter().take(MAX_LISTED) {
        eprintln!("  {}", super::common::with_flag_hint(p));
    }
    if problems.len() > MAX_LISTED {
        eprintln!("  ... and {} more (--json lists all)", problems.len() - MAX_LISTED);
    }
}
