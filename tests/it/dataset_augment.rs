//! `qdet augment` end to end: pixels and boxes move together, runs are reproducible for a
//! seed whatever the threads, and nothing existing is replaced.

use std::path::Path;

use crate::util::*;

/// Every augmentation off; tests turn on the ones they check.
const OFF: [&str; 20] = [
    "--brightness",
    "0",
    "--contrast",
    "0",
    "--hue",
    "0",
    "--saturation",
    "0",
    "--blur",
    "0",
    "--noise",
    "0",
    "--fliplr",
    "0",
    "--scale",
    "0",
    "--degrees",
    "0",
    "--perspective",
    "0",
];

/// 60 x 40 image with a red square (10,8)-(30,28) labelled as a rectangle with its corners
/// in reverse order, and a rectangle lying wholly outside the image.
fn one_image(dir: &Path) {
    write_png(&dir.join("img.v1.png"), 60, 40, &[([10, 8, 30, 28], [255, 0, 0])]);
    let json = serde_json::json!({
        "version": "5.5.0", "flags": {"checked": true}, "imagePath": "img.v1.png", "imageData": null,
        "imageHeight": 40, "imageWidth": 60,
        "shapes": [
            {"label": "box", "points": [[30, 28], [10, 8]], "shape_type": "rectangle", "group_id": 4, "description": "d", "flags": {}},
            {"label": "gone", "points": [[-20, -20], [-5, -5]], "shape_type": "rectangle"}
        ]
    });
    std::fs::write(dir.join("img.v1.json"), json.to_string()).unwrap();
}

/// Runs `augment src --out out --json` with everything off but the flags in `extra`.
fn run(d: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["augment", "src", "--out", "out", "--json"];
    for pair in OFF.chunks(2) {
        if !extra.contains(&pair[0]) {
            args.extend(pair);
        }
    }
    args.extend(extra);
    qdet(&args, d)
}

/// The pixels of an image as (width, height, RGB bytes).
fn pixels(p: &Path) -> (u32, u32, Vec<u8>) {
    let img = image::open(p).unwrap().to_rgb8();
    (img.width(), img.height(), img.into_raw())
}

#[test]
fn a_flip_mirrors_pixels_and_boxes_exactly() {
    let d = tempfile::tempdir().unwrap();
    one_image(&d.path().join("src"));
    let o = run(d.path(), &["--fliplr", "1", "--n", "2"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        tree(&d.path().join("out")),
        vec!["img.v1_aug00.json", "img.v1_aug00.png", "img.v1_aug01.json", "img.v1_aug01.png"]
    );
    let (w, h, src) = pixels(&d.path().join("src/img.v1.png"));
    let (_, _, flipped) = pixels(&d.path().join("out/img.v1_aug01.png"));
    for y in 0..h as usize {
        for x in 0..w as usize {
            let (a, b) = ((y * w as usize + x) * 3, (y * w as usize + (w as usize - 1 - x)) * 3);
            assert_eq!(flipped[a..a + 3], src[b..b + 3], "({x}, {y})");
        }
    }
    let f = json(&d.path().join("out/img.v1_aug01.json"));
    // x in [10, 30] on a 60-wide image -> [30, 50]; y unchanged.
    assert_eq!(rects(&f), vec![("box".to_string(), [30.0, 8.0, 50.0, 28.0])]);
    assert_eq!(f["imagePath"], "img.v1_aug01.png");
    assert_eq!(f["imageData"], serde_json::Value::Null);
    assert_eq!((f["imageWidth"].as_u64(), f["imageHeight"].as_u64()), (Some(60), Some(40)));
    // What labelme keeps travels along.
    assert_eq!(
        (&f["flags"]["checked"], &f["shapes"][0]["group_id"], &f["shapes"][0]["description"]),
        (&serde_json::json!(true), &serde_json::json!(4), &serde_json::json!("d"))
    );
    // The rectangle outside the image is left out and reported for each copy; that is what
    // augmentation does, not a failure (status 0 above).
    let s = summary(&o);
    assert_eq!(s["written"], 4);
    assert_eq!(s["dropped"].as_array().unwrap().len(), 0, "{s}");
    let excluded = s["excluded"].as_array().unwrap();
    assert_eq!(excluded.len(), 2);
    assert!(excluded[0]["reason"].as_str().unwrap().starts_with("shapes[1] (\"gone\"): left the image"), "{s}");
}

#[test]
fn rotated_boxes_hold_the_rotated_object() {
    let d = tempfile::tempdir().unwrap();
    one_image(&d.path().join("src"));
    let o = run(d.path(), &["--degrees", "12", "--scale", "0.2", "--n", "6", "--seed", "5"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    for k in 0..6 {
        let f = json(&d.path().join(format!("out/img.v1_aug{k:02}.json")));
        let b = rects(&f)[0].1;
        // The red pixels lie in the box, and the box is no bigger than the turned square: at
        // its corners pixel centres can miss the tip by up to ~1.6 px, and edges blend.
        let (w, _, px) = pixels(&d.path().join(format!("out/img.v1_aug{k:02}.png")));
        let mut ext = [f64::MAX, f64::MAX, f64::MIN, f64::MIN];
        for (i, p) in px.chunks(3).enumerate() {
            if p[0] > 200 && p[1] < 60 {
                let (x, y) = ((i % w as usize) as f64, (i / w as usize) as f64);
                ext = [ext[0].min(x), ext[1].min(y), ext[2].max(x + 1.0), ext[3].max(y + 1.0)];
            }
        }
        let inside = ext[0] >= b[0] - 0.5 && ext[1] >= b[1] - 0.5 && ext[2] <= b[2] + 0.5 && ext[3] <= b[3] + 0.5;
        let tight = (0..4).all(|i| (ext[i] - b[i]).abs() <= 2.0);
        assert!(inside && tight, "copy {k}: red pixels span {ext:?}, box {b:?}");
        // Not the untouched box: the copies really were turned or zoomed.
        assert!(b != [10.0, 8.0, 30.0, 28.0], "copy {k}");
    }
}

#[test]
fn the_same_seed_gives_the_same_files_whatever_the_threads() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    one_image(&src);
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::copy(fixtures().join("labelme/a.b.c.png"), src.join("sub/a.b.c.png")).unwrap();
    std::fs::copy(fixtures().join("labelme/a.b.c.json"), src.join("sub/a.b.c.json")).unwrap();
    let go = |out: &str, threads: &str, seed: &str| {
        let args = [
            "augment",
            "src",
            "--out",
            out,
            "--n",
            "4",
            "--seed",
            seed,
            "--threads",
            threads,
            "--blur",
            "0.5",
            "--noise",
            "0.5",
        ];
        let o = qdet(&args, d.path());
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let dir = d.path().join(out);
        tree(&dir).into_iter().map(|f| (std::fs::read(dir.join(&f)).unwrap(), f)).collect::<Vec<_>>()
    };
    let one = go("t1", "1", "9");
    assert_eq!(one.len(), 16);
    assert_eq!(one, go("t2", "2", "9"));
    let other = go("s10", "2", "10");
    assert_ne!(one.iter().map(|f| &f.0).collect::<Vec<_>>(), other.iter().map(|f| &f.0).collect::<Vec<_>>());
}

#[test]
fn existing_outputs_are_kept_and_mismatched_sizes_skipped() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    one_image(&src);
    // The EXIF-rotated image is 16 x 24; a JSON made on its raw 24 x 16 pixels does not fit.
    std::fs::copy(fixtures().join("labelme/sub/rot.jpg"), src.join("rot.jpg")).unwrap();
    std::fs::write(
        src.join("rot.json"),
        r#"{"version": "5.5.0", "shapes": [], "imagePath": "rot.jpg", "imageHeight": 16, "imageWidth": 24}"#,
    )
    .unwrap();
    let o = run(d.path(), &["--n", "1"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("annotated on a 24x16 image, but")
            && stderr(&o).contains("is 16x24 (after its EXIF rotation)"),
        "{}",
        stderr(&o)
    );
    assert_eq!(tree(&d.path().join("out")), vec!["img.v1_aug00.json", "img.v1_aug00.png"]);
    let first = std::fs::read(d.path().join("out/img.v1_aug00.png")).unwrap();
    let o = run(d.path(), &["--n", "1", "--fliplr", "1"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("img.v1_aug00.png: already exists"), "{}", stderr(&o));
    assert_eq!(std::fs::read(d.path().join("out/img.v1_aug00.png")).unwrap(), first);
    let o = run(d.path(), &["--n", "1", "--fliplr", "1", "--overwrite"]);
    assert_eq!(summary(&o)["written"], 2);
    assert_ne!(std::fs::read(d.path().join("out/img.v1_aug00.png")).unwrap(), first);
}
