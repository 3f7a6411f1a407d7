//! `qdet augment`: new training images from labelme-annotated ones, with their shapes moved
//! along. Each copy draws a flip, rotation, scale and perspective (one warp, so the image is
//! resampled once) and brightness/contrast, hue/saturation, blur and noise.
//!
//! Every copy has its own generator keyed by (seed, source path, copy number), so the output
//! is the same for a seed whatever the number of threads or the order they run in.

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::convert::parse_labelme;
use super::files::{self, Found, ImageIndex};
use super::geometry::{self, Mat3, Warp};
use super::rng::Rng;
use super::{photometric, warp, DatasetSummary, Event, Problem, Progress};
use crate::atomic::{self, Existing};
use crate::error::{Error, Result};
use crate::formats::labelme::{LabelmeFile, Shape, LABELME_VERSION};
use crate::formats::shapes;
use crate::image_io::{read_rgb, RgbImage};

/// How strong each augmentation may be; every value is the largest change drawn (uniformly
/// in +-value) or, for `fliplr`, `blur` and `noise`, the probability of applying it.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    /// Added to every channel, as a fraction of 255.
    pub brightness: f64,
    /// Contrast gain 1 +- this, about mid-grey.
    pub contrast: f64,
    /// Hue turn as a fraction of the colour circle (Ultralytics' `hsv_h` scale).
    pub hue: f64,
    /// Saturation gain 1 +- this (Ultralytics' `hsv_s`).
    pub saturation: f64,
    pub blur: f64,
    pub noise: f64,
    pub fliplr: f64,
    /// Zoom 1 +- this about the centre.
    pub scale: f64,
    /// Rotation in degrees about the centre.
    pub degrees: f64,
    /// Ultralytics' `perspective` for a 640-pixel image, scaled to the image's longer side so
    /// a 4000-pixel photo is tilted as much as a 640-pixel one.
    pub perspective: f64,
}

impl Default for Params {
    fn default() -> Params {
        Params {
            brightness: 0.15,
            contrast: 0.2,
            hue: 0.015,
            saturation: 0.7,
            blur: 0.2,
            noise: 0.2,
            fliplr: 0.5,
            scale: 0.1,
            degrees: 5.0,
            perspective: 0.0002,
        }
    }
}

/// Blur sigma (pixels) and noise sigma (levels) ranges when they are applied.
const BLUR_SIGMA: (f64, f64) = (0.5, 1.5);
const NOISE_SIGMA: (f64, f64) = (2.0, 8.0);
/// A moved shape is kept when at least this share of it stays in the image and it is at least
/// `MIN_SIDE` pixels wide and high there (Ultralytics' `box_candidates` thresholds).
const MIN_VISIBLE: f64 = 0.1;
const MIN_SIDE: f64 = 2.0;

/// Everything drawn for one copy.
#[derive(Debug, Clone, PartialEq)]
pub struct Draw {
    pub warp: Warp,
    pub contrast: f64,
    pub brightness: f64,
    pub hue_degrees: f64,
    pub saturation: f64,
    pub blur_sigma: Option<f64>,
    pub noise_sigma: Option<f64>,
    noise_seed: u64,
}

impl Params {
    pub fn check(&self) -> Result<()> {
        let probs = [("--blur", self.blur), ("--noise", self.noise), ("--fliplr", self.fliplr)];
        if let Some((name, _)) = probs.iter().find(|(_, p)| !(0.0..=1.0).contains(p)) {
            return Err(Error::Invalid(format!("{name} is a probability, between 0 and 1")));
        }
        let mags = [
            ("--brightness", self.brightness),
            ("--contrast", self.contrast),
            ("--hue", self.hue),
            ("--saturation", self.saturation),
            ("--degrees", self.degrees),
            ("--perspective", self.perspective),
        ];
        if let Some((name, _)) = mags.iter().find(|(_, v)| !v.is_finite() || *v < 0.0) {
            return Err(Error::Invalid(format!("{name} must be zero or positive")));
        }
        if !(0.0..1.0).contains(&self.scale) {
            return Err(Error::Invalid("--scale must be at least 0 and below 1".into()));
        }
        Ok(())
    }

    /// Draws one copy's changes. Every value is drawn in the same order whatever is enabled,
    /// so turning one augmentation off does not change what the others do.
    pub fn draw(&self, rng: &mut Rng, width: usize, height: usize) -> Draw {
        let mut sym = |m: f64| rng.range(-m, m);
        let flip_u = sym(1.0);
        let degrees = sym(self.degrees);
        let scale = 1.0 + sym(self.scale);
        let p = self.perspective * 640.0 / width.max(height).max(1) as f64;
        let perspective = [sym(p), sym(p)];
        let contrast = 1.0 + sym(self.contrast);
        let brightness = sym(self.brightness) * 255.0;
        let hue_degrees = sym(self.hue) * 360.0;
        let saturation = 1.0 + sym(self.saturation);
        let blur_u = sym(1.0);
        let blur_sigma = rng.range(BLUR_SIGMA.0, BLUR_SIGMA.1);
        let noise_u = rng.range(-1.0, 1.0);
        let noise_sigma = rng.range(NOISE_SIGMA.0, NOISE_SIGMA.1);
        let noise_seed = rng.next_u64();
        let happens = |u: f64, prob: f64| (u + 1.0) / 2.0 < prob;
        Draw {
            warp: Warp { flip: happens(flip_u, self.fliplr), degrees, scale, perspective },
            contrast,
            brightness,
            hue_degrees,
            saturation,
            blur_sigma: happens(blur_u, self.blur).then_some(blur_sigma),
            noise_sigma: happens(noise_u, self.noise).then_some(noise_sigma),
            noise_seed,
        }
    }
}

#[derive(Debug, Clone)]
pub struct AugmentOptions {
    /// A labelme JSON file or a folder walked for them; each names its image by `imagePath`.
    pub src: PathBuf,
    pub out: PathBuf,
    /// Augmented copies per source image.
    pub n: usize,
    pub seed: u64,
    pub params: Params,
    pub existing: Existing,
}

/// What one source image gave.
#[derive(Default)]
struct Outcome {
    read: bool,
    written: usize,
    skipped: Vec<Problem>,
    dropped: Vec<Problem>,
    excluded: Vec<Problem>,
}

/// Augments every labelme-annotated image under `opts.src`; `progress` is called once per
/// source image.
pub fn augment(opts: &AugmentOptions, progress: Progress) -> Result<DatasetSummary> {
    opts.params.check()?;
    if opts.n == 0 {
        return Err(Error::Invalid("--n must be at least 1".into()));
    }
    let (inputs, unwalkable) = files::walk(&opts.src, std::slice::from_ref(&opts.out), |p| files::has_ext(p, "json"))?;
    if inputs.is_empty() {
        return Err(Error::Invalid(format!("no labelme .json files in {}", opts.src.display())));
    }
    std::fs::create_dir_all(&opts.out).map_err(|e| Error::io(&opts.out, e))?;
    progress(Event::Stage("source images", inputs.len()));
    let dirs: Vec<PathBuf> = inputs.iter().map(|f| f.path.parent().unwrap_or(Path::new("")).to_path_buf()).collect();
    let index = ImageIndex::build(dirs.iter().map(PathBuf::as_path));
    let outcomes: Vec<Outcome> = inputs
        .par_iter()
        .map(|f| {
            let o = augment_one(opts, f, &index);
            progress(Event::Step(o.skipped.first()));
            o
        })
        .collect();
    let mut summary = DatasetSummary { output_dir: opts.out.clone(), skipped: unwalkable, ..DatasetSummary::default() };
    for o in outcomes {
        summary.read += o.read as usize;
        summary.written += o.written;
        summary.skipped.extend(o.skipped);
        summary.dropped.extend(o.dropped);
        summary.excluded.extend(o.excluded);
    }
    summary.sort();
    Ok(summary)
}

/// The image of a labelme file: `imagePath` relative to the JSON (as labelme resolves it,
/// Windows separators included), else an image with the JSON's stem beside it.
fn find_image(json: &Path, file: &LabelmeFile, index: &ImageIndex) -> std::result::Result<PathBuf, String> {
    let dir = json.parent().unwrap_or(Path::new(""));
    let given = dir.join(file.image_path.replace('\\', "/"));
    if !file.image_path.is_empty() && given.is_file() {
        return Ok(given);
    }
    files::find_image(index, &[dir.to_path_buf()], json.file_stem().unwrap_or_default())
        .map_err(|why| format!("imagePath {:?} does not exist and {why}", file.image_path))
}

fn augment_one(opts: &AugmentOptions, f: &Found, index: &ImageIndex) -> Outcome {
    let mut out = Outcome::default();
    let loaded = (|| {
        let file = parse_labelme(&f.path)?;
        let image_path = find_image(&f.path, &file, index).map_err(|r| Problem::new(&f.path, r))?;
        let image = read_rgb(&image_path).map_err(|e| Problem::from_error(&image_path, &e))?;
        if (image.width, image.height) != (file.image_width as usize, file.image_height as usize) {
            return Err(Problem::new(
                &f.path,
                format!(
                    "annotated on a {}x{} image, but {} is {}x{} (after its EXIF rotation); the boxes would not fit",
                    file.image_width,
                    file.image_height,
                    image_path.display(),
                    image.width,
                    image.height
                ),
            ));
        }
        Ok((file, image_path, image))
    })();
    let (file, image_path, image) = match loaded {
        Ok(v) => v,
        Err(p) => {
            out.skipped.push(p);
            return out;
        }
    };
    out.read = true;
    let key = files::rel_key(&f.rel);
    let digits = (opts.n - 1).to_string().len().max(2);
    let copies: Vec<Outcome> = (0..opts.n)
        .into_par_iter()
        .map(|k| {
            let stem = f.path.file_stem().unwrap_or_default().to_string_lossy();
            let ext = output_ext(&image_path);
            let dir = opts.out.join(f.rel.parent().unwrap_or(Path::new("")));
            let img_dest = dir.join(format!("{stem}_aug{k:0digits$}.{ext}"));
            let mut rng = Rng::for_item(opts.seed, &key, k as u64);
            let draw = opts.params.draw(&mut rng, image.width, image.height);
            write_copy(&file, &image, &draw, &img_dest, opts.existing)
        })
        .collect();
    for c in copies {
        out.written += c.written;
        out.skipped.extend(c.skipped);
        out.dropped.extend(c.dropped);
        out.excluded.extend(c.excluded);
    }
    out
}

/// Makes one augmented copy and writes the image, then its JSON beside it.
fn write_copy(file: &LabelmeFile, image: &RgbImage, draw: &Draw, img_dest: &Path, existing: Existing) -> Outcome {
    let mut out = Outcome::default();
    let json_dest = img_dest.with_extension("json");
    if existing == Existing::Keep {
        if let Some(p) = [img_dest, &json_dest].into_iter().find(|p| p.exists()) {
            out.skipped.push(Problem::new(p, "already exists (pass --overwrite to replace it)"));
            return out;
        }
    }
    let (w, h) = (image.width as f64, image.height as f64);
    let m = draw.warp.matrix(w, h);
    let Some(mut img) = warp::warp(image, &m) else {
        out.skipped.push(Problem::new(img_dest, "the drawn warp cannot be inverted"));
        return out;
    };
    photometric::brightness_contrast(&mut img, draw.contrast, draw.brightness);
    photometric::hue_saturation(&mut img, draw.hue_degrees, draw.saturation);
    if let Some(s) = draw.blur_sigma {
        photometric::gaussian_blur(&mut img, s);
    }
    if let Some(s) = draw.noise_sigma {
        photometric::gaussian_noise(&mut img, s, &mut Rng::for_item(draw.noise_seed, "noise", 0));
    }
    let mut shapes = Vec::with_capacity(file.shapes.len());
    for (i, s) in file.shapes.iter().enumerate() {
        match move_shape(s, &m, w, h) {
            Ok(moved) => shapes.push(moved),
            Err(loss) => {
                let problem = Problem::new(&json_dest, format!("shapes[{i}] ({:?}): {loss}", s.label));
                match loss {
                    Loss::OutOfFrame(_) => out.excluded.push(problem),
                    Loss::Unsupported(_) => out.dropped.push(problem),
                }
            }
        }
    }
    let name = img_dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut json = LabelmeFile { shapes, image_path: name, image_data: None, ..file.clone() };
    json.version = LABELME_VERSION.into();
    let written = (|| -> Result<()> {
        crate::paths::ensure_parent(img_dest)?;
        atomic::write(img_dest, &crate::image_io::encode(&img, img_dest)?, existing)?;
        atomic::write(&json_dest, &json.to_json(), existing)
    })();
    match written {
        Ok(()) => out.written += 2,
        Err(e) => {
            out.dropped.clear();
            out.excluded.clear();
            out.skipped.push(Problem::from_error(img_dest, &e));
        }
    }
    out
}

/// Why a shape is not in an augmented copy.
#[derive(Debug, PartialEq)]
pub enum Loss {
    /// The warp moved it (nearly) out of the frame, as augmentation is meant to.
    OutOfFrame(String),
    /// A shape kind augment does not move, or one too malformed to move.
    Unsupported(String),
}

impl std::fmt::Display for Loss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Loss::OutOfFrame(why) | Loss::Unsupported(why) => f.write_str(why),
        }
    }
}

/// A shape moved by `m` and clipped to the image, or why it was left out.
pub fn move_shape(s: &Shape, m: &Mat3, w: f64, h: f64) -> std::result::Result<Shape, Loss> {
    let horizon = || Loss::OutOfFrame("the perspective sent it beyond the horizon".into());
    let left = || Loss::OutOfFrame("left the image".into());
    let points = match s.shape_type.as_str() {
        "rectangle" => {
            let b = shapes::shape_box(s, false).map_err(Loss::Unsupported)?;
            let moved = geometry::transform_box(m, b).ok_or_else(horizon)?;
            let clipped = shapes::clip(moved, w as u32, h as u32).ok_or_else(left)?;
            let area = |b: [f64; 4]| (b[2] - b[0]) * (b[3] - b[1]);
            visible(clipped, area(clipped), area(moved))?;
            vec![[clipped[0], clipped[1]], [clipped[2], clipped[3]]]
        }
        "polygon" if s.points.len() >= 3 => {
            let moved: Vec<[f64; 2]> =
                s.points.iter().map(|&p| geometry::apply(m, p)).collect::<Option<_>>().ok_or_else(horizon)?;
            let clipped = geometry::clip_polygon(&moved, w, h);
            let b = shapes::bounds(clipped.iter().copied()).filter(|_| clipped.len() >= 3).ok_or_else(left)?;
            visible(b, geometry::polygon_area(&clipped), geometry::polygon_area(&moved))?;
            clipped
        }
        "point" if s.points.len() == 1 => {
            let [x, y] = geometry::apply(m, s.points[0]).ok_or_else(horizon)?;
            if !(0.0..=w).contains(&x) || !(0.0..=h).contains(&y) {
                return Err(left());
            }
            vec![[x, y]]
        }
        other => {
            return Err(Loss::Unsupported(format!(
                "{other} shapes with {} points are not augmented (rectangle, polygon and point are)",
                s.points.len()
            )))
        }
    };
    Ok(Shape { points, ..s.clone() })
}

/// Whether enough of a moved shape is left in the image to still be a useful label.
fn visible(b: [f64; 4], area: f64, full_area: f64) -> std::result::Result<(), Loss> {
    if b[2] - b[0] < MIN_SIDE || b[3] - b[1] < MIN_SIDE {
        return Err(Loss::OutOfFrame(format!("left the image (less than {MIN_SIDE} px of it inside)")));
    }
    if full_area > 0.0 && area < MIN_VISIBLE * full_area {
        return Err(Loss::OutOfFrame(format!("left the image ({:.0}% of it inside)", 100.0 * area / full_area)));
    }
    Ok(())
}

/// JPEG, PNG and BMP sources keep their format; others are written as JPEG.
fn output_ext(image: &Path) -> String {
    let ext = image.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    if matches!(ext.as_str(), "jpg" | "jpeg" | "png" | "bmp") {
        ext
    } else {
        "jpg".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rect(points: Vec<[f64; 2]>) -> Shape {
        let mut s: Shape = serde_json::from_str(r#"{"label": "a", "points": []}"#).unwrap();
        s.points = points;
        s
    }

    #[test]
    fn flipped_rectangle_and_dropped_shapes() {
        let flip = Warp { flip: true, degrees: 0.0, scale: 1.0, perspective: [0.0; 2] }.matrix(100.0, 50.0);
        // Corners given bottom-right first: the result is always top-left, bottom-right.
        let moved = move_shape(&rect(vec![[30.0, 40.0], [10.0, 20.0]]), &flip, 100.0, 50.0).unwrap();
        assert_eq!(moved.points, vec![[70.0, 20.0], [90.0, 40.0]]);
        // Zoomed in 2x about the centre (50, 25), a box near the corner leaves the image.
        let zoom = Warp { flip: false, degrees: 0.0, scale: 2.0, perspective: [0.0; 2] }.matrix(100.0, 50.0);
        assert_eq!(
            move_shape(&rect(vec![[0.0, 0.0], [20.0, 10.0]]), &zoom, 100.0, 50.0),
            Err(Loss::OutOfFrame("left the image".into()))
        );
        // Half in: (40,20)-(60,30) -> (30,15)-(70,35), fully inside.
        let m = move_shape(&rect(vec![[40.0, 20.0], [60.0, 30.0]]), &zoom, 100.0, 50.0).unwrap();
        assert_eq!(m.points, vec![[30.0, 15.0], [70.0, 35.0]]);
        // x -> 2x - 50, y -> 2y - 25. (20,5)-(30,15) -> (-10,-15)-(10,5): 50 of 400 px^2
        // (12.5%) inside, kept as its visible part.
        let m = move_shape(&rect(vec![[20.0, 5.0], [30.0, 15.0]]), &zoom, 100.0, 50.0).unwrap();
        assert_eq!(m.points, vec![[0.0, 0.0], [10.0, 5.0]]);
        // (0,12)-(26,14) -> (-50,-1)-(2,3): 6 of 208 px^2 inside.
        let e = move_shape(&rect(vec![[0.0, 12.0], [26.0, 14.0]]), &zoom, 100.0, 50.0).unwrap_err();
        assert!(matches!(&e, Loss::OutOfFrame(why) if why.contains("(3% of it inside)")), "{e}");
        let mut circle = rect(vec![[5.0, 5.0], [6.0, 6.0]]);
        circle.shape_type = "circle".into();
        let e = move_shape(&circle, &flip, 100.0, 50.0).unwrap_err();
        assert!(matches!(&e, Loss::Unsupported(why) if why.contains("not augmented")), "{e}");
    }

    #[test]
    fn draws_are_reproducible_and_respect_zero_magnitudes() {
        let p = Params::default();
        let a = p.draw(&mut Rng::for_item(0, "x.json", 1), 640, 480);
        assert_eq!(a, p.draw(&mut Rng::for_item(0, "x.json", 1), 640, 480));
        assert_ne!(a, p.draw(&mut Rng::for_item(0, "x.json", 2), 640, 480));
        let none = Params {
            brightness: 0.0,
            contrast: 0.0,
            hue: 0.0,
            saturation: 0.0,
            blur: 0.0,
            noise: 0.0,
            fliplr: 0.0,
            scale: 0.0,
            degrees: 0.0,
            perspective: 0.0,
        };
        for k in 0..20 {
            let d = none.draw(&mut Rng::for_item(3, "y", k), 100, 100);
            assert_eq!(d.warp, Warp { flip: false, degrees: 0.0, scale: 1.0, perspective: [0.0; 2] });
            assert_eq!((d.contrast, d.brightness, d.hue_degrees, d.saturation), (1.0, 0.0, 0.0, 1.0));
            assert_eq!((d.blur_sigma, d.noise_sigma), (None, None));
        }
        let always = Params { fliplr: 1.0, blur: 1.0, noise: 1.0, ..Params::default() };
        let d = always.draw(&mut Rng::for_item(3, "y", 0), 100, 100);
        assert!(d.warp.flip && d.blur_sigma.is_some() && d.noise_sigma.is_some());
        // The other draws do not move when a probability changes.
        let d0 = Params::default().draw(&mut Rng::for_item(3, "y", 0), 100, 100);
        assert_eq!((d.warp.degrees, d.contrast), (d0.warp.degrees, d0.contrast));
    }
}
