//! `qdet split` end to end: pairing, the Ultralytics layout, determinism, and that no file is
//! ever lost or replaced, copying or moving.

use std::collections::BTreeMap;
use std::path::Path;

use crate::util::*;

/// A YOLO dataset: images/ + labels/ with 9 pairs named with several dots, plus an image
/// without a label, a label without an image and two images competing for one label.
fn yolo_dataset(ds: &Path) -> BTreeMap<String, (Vec<u8>, String)> {
    let mut pairs = BTreeMap::new();
    for i in 0..9 {
        let name = format!("img.{i}.v2");
        let png = ds.join(format!("images/{name}.png"));
        write_png(&png, 8 + i, 8, &[]);
        let label = format!("{} 0.5 0.5 0.{} 0.2\n", i % 2, i + 1);
        std::fs::create_dir_all(ds.join("labels")).unwrap();
        std::fs::write(ds.join(format!("labels/{name}.txt")), &label).unwrap();
        pairs.insert(name, (std::fs::read(&png).unwrap(), label));
    }
    write_png(&ds.join("images/nolabel.png"), 8, 8, &[]);
    std::fs::write(ds.join("labels/orphan.txt"), "0 0.5 0.5 0.1 0.1\n").unwrap();
    write_png(&ds.join("images/twin.png"), 8, 8, &[]);
    write_png(&ds.join("images/twin.jpg"), 8, 8, &[]);
    std::fs::write(ds.join("labels/twin.txt"), "1 0.5 0.5 0.1 0.1\n").unwrap();
    std::fs::write(ds.join("classes.txt"), "cat\ndog\n").unwrap();
    pairs
}

/// Which split each pair landed in, checking that image and label went together unchanged.
fn assignment(out: &Path, pairs: &BTreeMap<String, (Vec<u8>, String)>) -> BTreeMap<String, &'static str> {
    let mut got = BTreeMap::new();
    for (name, (png, label)) in pairs {
        let part = ["train", "val"].into_iter().find(|p| out.join(format!("images/{p}/{name}.png")).is_file());
        let part = part.unwrap_or_else(|| panic!("{name} not split: {:?}", tree(out)));
        assert_eq!(&std::fs::read(out.join(format!("images/{part}/{name}.png"))).unwrap(), png, "{name}");
        assert_eq!(&read(&out.join(format!("labels/{part}/{name}.txt"))), label, "{name}");
        got.insert(name.clone(), part);
    }
    got
}

#[test]
fn yolo_pairs_go_to_the_ultralytics_layout_the_same_way_for_the_same_seed() {
    let d = tempfile::tempdir().unwrap();
    let ds = d.path().join("ds");
    let pairs = yolo_dataset(&ds);
    let before = tree(&ds);
    let o = qdet(&["split", "ds", "--val", "0.2", "--seed", "42", "--out", "out", "--json"], d.path());
    // nolabel.png, orphan.txt and the twins' label are reported.
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let s = summary(&o);
    let skipped: Vec<String> = s["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{}: {}",
                Path::new(p["path"].as_str().unwrap()).file_name().unwrap().to_string_lossy(),
                p["reason"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(skipped.len(), 3, "{skipped:?}");
    assert!(skipped.iter().any(|l| l.starts_with("nolabel.png: image without a label file (looked for")));
    assert!(skipped.iter().any(|l| l.starts_with("orphan.txt: label file without an image")));
    assert!(skipped.iter().any(|l| l.starts_with("twin.txt: label file of several images")));
    assert_eq!(s["read"], 9);

    let out = d.path().join("out");
    let a = assignment(&out, &pairs);
    // round(9 * 0.2) = 2 to val.
    assert_eq!(a.values().filter(|p| **p == "val").count(), 2, "{a:?}");
    assert_eq!(tree(&out).len(), 2 * 9 + 1);
    let yaml = read(&out.join("data.yaml"));
    assert!(yaml.contains("\ntrain: images/train\nval: images/val\n"), "{yaml}");
    assert!(
        yaml.contains(&format!("path: \"{}\"", out.canonicalize().unwrap().display()))
            || yaml.contains(&format!("path: \"{}\"", out.display())),
        "{yaml}"
    );
    assert_eq!(yaml_names(&out.join("data.yaml")), vec!["cat", "dog"]);
    // Copying left the source as it was.
    assert_eq!(tree(&ds), before);

    // Same seed, same split; another seed, another split.
    let o = qdet(&["split", "ds", "--val", "0.2", "--seed", "42", "--out", "again"], d.path());
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(assignment(&d.path().join("again"), &pairs), a);
    let o = qdet(&["split", "ds", "--val", "0.2", "--seed", "7", "--out", "other"], d.path());
    assert_eq!(o.status.code(), Some(2));
    assert_ne!(assignment(&d.path().join("other"), &pairs), a);
}

#[test]
fn move_checks_every_destination_first_and_loses_nothing() {
    let d = tempfile::tempdir().unwrap();
    let ds = d.path().join("ds");
    let pairs = yolo_dataset(&ds);
    for f in ["images/nolabel.png", "labels/orphan.txt", "images/twin.png", "images/twin.jpg", "labels/twin.txt"] {
        std::fs::remove_file(ds.join(f)).unwrap();
    }
    let before = tree(&ds);
    // A file already where one pair would go, whichever side it is drawn for.
    for part in ["train", "val"] {
        std::fs::create_dir_all(d.path().join(format!("out/labels/{part}"))).unwrap();
        std::fs::write(d.path().join(format!("out/labels/{part}/img.3.v2.txt")), "mine\n").unwrap();
    }
    let o = qdet(&["split", "ds", "--out", "out", "--move", "--val", "0.3"], d.path());
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("img.3.v2.txt already exists") && err.contains("nothing was copied or moved"), "{err}");
    assert_eq!(tree(&ds), before);
    assert_eq!(read(&d.path().join("out/labels/val/img.3.v2.txt")), "mine\n");
    assert_eq!(tree(&d.path().join("out")), vec!["labels/train/img.3.v2.txt", "labels/val/img.3.v2.txt"]);

    std::fs::remove_dir_all(d.path().join("out")).unwrap();
    let o = qdet(&["split", "ds", "--out", "out", "--move", "--val", "0.3"], d.path());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // Every pair arrived intact and only the class list is left in the source.
    let a = assignment(&d.path().join("out"), &pairs);
    assert_eq!(a.values().filter(|p| **p == "val").count(), 3);
    assert_eq!(tree(&ds), vec!["classes.txt"]);
}

#[test]
fn labelme_pairs_become_yolo_labels_and_json_follows_its_image() {
    let d = tempfile::tempdir().unwrap();
    let ds = d.path().join("ds");
    let boxes = [
        ("cat", [4.0, 3.0, 14.0, 13.0]),
        ("dog", [20.0, 5.0, 30.0, 25.0]),
        ("cat", [0.0, 0.0, 40.0, 30.0]),
        ("dog", [10.0, 10.0, 20.0, 16.0]),
    ];
    for (i, (label, b)) in boxes.iter().enumerate() {
        write_png(&ds.join(format!("p.{i}.png")), 40, 30, &[]);
        let json = serde_json::json!({
            "version": "5.5.0", "flags": {}, "imagePath": format!("p.{i}.png"), "imageData": null,
            "imageHeight": 30, "imageWidth": 40,
            "shapes": [{"label": label, "points": [[b[2], b[3]], [b[0], b[1]]], "shape_type": "rectangle"}]
        });
        std::fs::write(ds.join(format!("p.{i}.json")), json.to_string()).unwrap();
    }
    // Annotated on the stored 24 x 16 pixels, but the EXIF-rotated image is 16 x 24.
    std::fs::copy(fixtures().join("labelme/sub/rot.jpg"), ds.join("rot.jpg")).unwrap();
    let rot = r#"{"version": "5.5.0", "shapes": [], "imagePath": "rot.jpg", "imageHeight": 16, "imageWidth": 24}"#;
    std::fs::write(ds.join("rot.json"), rot).unwrap();

    // In place, moving: SRC and OUT are the same folder.
    let o = qdet(&["split", "ds", "--out", "ds", "--move", "--val", "0.25", "--seed", "3", "--json"], d.path());
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let s = summary(&o);
    assert_eq!(s["skipped"].as_array().unwrap().len(), 1);
    let reason = s["skipped"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("annotated on a 24x16 image") && reason.contains("is 16x24"), "{reason}");

    // 40 x 30: cat (4,3)-(14,13) -> 0 0.225 0.266667 0.25 0.333333; dog (20,5)-(30,25) ->
    // 1 0.625 0.5 0.25 0.666667; cat (0,0)-(40,30) -> 0 0.5 0.5 1 1; dog (10,10)-(20,16) ->
    // 1 0.375 0.433333 0.25 0.2.
    let want = [
        "0 0.225 0.266667 0.25 0.333333\n",
        "1 0.625 0.5 0.25 0.666667\n",
        "0 0.5 0.5 1 1\n",
        "1 0.375 0.433333 0.25 0.2\n",
    ];
    let mut val = 0;
    for (i, line) in want.iter().enumerate() {
        let part = if ds.join(format!("images/val/p.{i}.png")).is_file() { "val" } else { "train" };
        val += (part == "val") as usize;
        assert_eq!(read(&ds.join(format!("labels/{part}/p.{i}.txt"))), *line);
        let moved = json(&ds.join(format!("images/{part}/p.{i}.json")));
        assert_eq!(moved["imagePath"], format!("p.{i}.png"));
        assert!(!ds.join(format!("p.{i}.png")).exists() && !ds.join(format!("p.{i}.json")).exists());
    }
    assert_eq!(val, 1);
    assert_eq!(yaml_names(&ds.join("data.yaml")), vec!["cat", "dog"]);
    // The pair that could not be split stays where it was.
    assert!(ds.join("rot.jpg").is_file() && ds.join("rot.json").is_file());
}

#[test]
fn convert_then_split_in_place_replaces_only_the_names_only_yaml() {
    let d = tempfile::tempdir().unwrap();
    let ds = d.path().join("ds");
    copy_tree(&fixtures().join("labelme"), &ds);
    let o = qdet(&["convert", "--from", "labelme", "--to", "yolo", "ds", "--out", "ds"], d.path());
    // 2: the fixture's point shape has no box.
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let labels = [read(&ds.join("a.b.c.txt")), read(&ds.join("sub/rot.txt"))];
    // txt labels beside the images: split picks YOLO; data.yaml from convert has the same names.
    let o = qdet(&["split", "ds", "--out", "ds", "--move", "--val", "0.5", "--seed", "1"], d.path());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let yaml = read(&ds.join("data.yaml"));
    assert!(yaml.contains("train: images/train"), "{yaml}");
    assert_eq!(yaml_names(&ds.join("data.yaml")), vec!["bird", "cat", "dog"]);
    let files = tree(&ds);
    let part = |name: &str| if files.contains(&format!("images/val/{name}")) { "val" } else { "train" };
    let (p1, p2) = (part("a.b.c.png"), part("sub/rot.jpg"));
    assert_ne!(p1, p2, "{files:?}");
    assert_eq!(read(&ds.join(format!("labels/{p1}/a.b.c.txt"))), labels[0]);
    assert_eq!(read(&ds.join(format!("labels/{p2}/sub/rot.txt"))), labels[1]);
    // The labelme files are not YOLO labels: they stay, and so does classes.txt.
    let left: Vec<&String> = files.iter().filter(|f| !f.starts_with("images/") && !f.starts_with("labels/")).collect();
    assert_eq!(left, ["a.b.c.json", "classes.txt", "data.yaml", "sub/rot.json"]);

    // A data.yaml with more in it than names is the user's: split refuses to replace it.
    copy_tree(&fixtures().join("yolo"), &d.path().join("other"));
    std::fs::remove_file(d.path().join("other/labels/train/orphan.txt")).unwrap();
    std::fs::create_dir_all(d.path().join("out")).unwrap();
    std::fs::write(d.path().join("out/data.yaml"), "path: /x\ntrain: a\nval: b\nnames: [cat, dog]\n").unwrap();
    let o = qdet(&["split", "other", "--out", "out", "--val", "0.5"], d.path());
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("data.yaml already exists with other content"), "{}", stderr(&o));
    assert_eq!(tree(&d.path().join("out")), vec!["data.yaml"]);
}
