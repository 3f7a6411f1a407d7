//! The `qdet val` binary end to end on small copies of the fixture dataset: the table, the
//! JSON, bad label lines and corrupt images, and the exit status.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::util::*;

const NAMES: &str = "[circle, square, triangle, star, hexagon, cross]";

/// A dataset with `stems` copied from the fixture's val split, in `dir/ds`.
fn dataset(dir: &Path, stems: &[&str]) -> PathBuf {
    let ds = dir.join("ds");
    std::fs::create_dir_all(ds.join("images/val")).unwrap();
    std::fs::create_dir_all(ds.join("labels/val")).unwrap();
    let fixture = root().join("datasets/shapes");
    for s in stems {
        std::fs::copy(fixture.join(format!("images/val/{s}.jpg")), ds.join(format!("images/val/{s}.jpg"))).unwrap();
        std::fs::copy(fixture.join(format!("labels/val/{s}.txt")), ds.join(format!("labels/val/{s}.txt"))).unwrap();
    }
    std::fs::write(ds.join("data.yaml"), format!("path: .\ntrain: images/val\nval: images/val\nnames: {NAMES}\n"))
        .unwrap();
    ds
}

fn lines(p: &Path) -> usize {
    std::fs::read_to_string(p).unwrap().lines().filter(|l| !l.trim().is_empty()).count()
}

#[test]
fn bad_label_lines_and_corrupt_images_are_reported_and_skipped() {
    let d = tempfile::tempdir().unwrap();
    let ds = dataset(d.path(), &["val_0000", "val_0001", "val_0002"]);
    // val_0002: a box row with a missing value, after the good rows.
    let bad = ds.join("labels/val/val_0002.txt");
    let mut text = std::fs::read_to_string(&bad).unwrap();
    let bad_line = text.lines().count() + 1;
    text.push_str("1 0.5 0.5 0.2\n");
    std::fs::write(&bad, text).unwrap();
    // A corrupt image, and an image without a label file (a background image).
    std::fs::write(ds.join("images/val/broken.jpg"), b"not a jpeg").unwrap();
    std::fs::copy(root().join("datasets/shapes/images/val/val_0003.jpg"), ds.join("images/val/bg.jpg")).unwrap();

    let o = qdet(&["val", "--model", &model(), "--data", "ds/data.yaml", "--json"], d.path());
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains(&format!("val_0002.txt:{bad_line}: 4 values")), "{err}");
    assert!(err.contains("broken.jpg"), "{err}");
    let v: Value = serde_json::from_slice(&o.stdout).expect("JSON on stdout");
    assert_eq!(v["images_found"], 5);
    assert_eq!(v["images"], 3, "val_0000, val_0001 and the background image");
    let instances = lines(&ds.join("labels/val/val_0000.txt")) + lines(&ds.join("labels/val/val_0001.txt"));
    assert_eq!(v["instances"], instances);
    let skipped = v["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    let label_problem = skipped.iter().find(|p| p["path"].as_str().unwrap().ends_with("val_0002.txt")).unwrap();
    assert_eq!(label_problem["line"], bad_line);
    assert!(skipped.iter().any(|p| p["path"].as_str().unwrap().ends_with("broken.jpg")));
    for key in ["precision", "recall", "map50", "map50_95"] {
        let x = v[key].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&x), "{key} = {x}");
    }
    let classes = v["classes"].as_array().unwrap();
    assert!(!classes.is_empty());
    assert!(classes.iter().all(|c| c["name"].is_string() && c["instances"].as_u64().unwrap() > 0));
}

#[test]
fn prints_ultralytics_table_and_exits_0_on_a_clean_split() {
    let d = tempfile::tempdir().unwrap();
    let ds = dataset(d.path(), &["val_0000", "val_0001", "val_0002", "val_0003"]);
    // An exact duplicate row is dropped with a warning, as Ultralytics does; not an error.
    let first = std::fs::read_to_string(ds.join("labels/val/val_0000.txt")).unwrap();
    let row = first.lines().next().unwrap().to_string();
    std::fs::write(ds.join("labels/val/val_0000.txt"), format!("{first}{row}\n")).unwrap();

    let data = ds.join("data.yaml");
    let o = qdet(&["val", "--model", &model(), "--data", data.to_str().unwrap(), "--threads", "1"], d.path());
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let out = String::from_utf8(o.stdout).unwrap();
    let rows: Vec<&str> = out.lines().collect();
    assert_eq!(rows[0], "                 Class     Images  Instances      Box(P          R      mAP50  mAP50-95)");
    assert!(rows[1].starts_with("                   all          4"), "{out}");
    assert!(rows.len() > 2, "per-class rows for a 6-class model: {out}");
    assert!(err.contains("1 duplicate label rows ignored"), "{err}");
}

#[test]
fn unusable_datasets_fail_with_status_1_naming_the_file() {
    let d = tempfile::tempdir().unwrap();
    let ds = dataset(d.path(), &["val_0000"]);
    let o = qdet(&["val", "--model", &model(), "--data", "ds/data.yaml", "--split", "test"], d.path());
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("data.yaml") && stderr(&o).contains("'test:'"), "{}", stderr(&o));

    std::fs::write(ds.join("data.yaml"), format!("path: nowhere\nval: images/val\nnames: {NAMES}\n")).unwrap();
    let o = qdet(&["val", "--model", &model(), "--data", "ds/data.yaml"], d.path());
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("\"nowhere\""), "{}", stderr(&o));

    let o = qdet(&["val", "--model", &model(), "--data", "ds/missing.yaml"], d.path());
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("missing.yaml"), "{}", stderr(&o));
}

/// A dataset whose names list the model's classes in another order: the scores are then
/// meaningless for those classes, and val says which ids differ.
#[test]
fn class_names_that_differ_from_the_models_are_a_warning_naming_the_ids() {
    let d = tempfile::tempdir().unwrap();
    let ds = dataset(d.path(), &["val_0000", "val_0001"]);
    let yaml = ds.join("data.yaml");
    let text =
        std::fs::read_to_string(&yaml).unwrap().replace(NAMES, "[circle, square, triangle, star, cross, hexagon]");
    std::fs::write(&yaml, text).unwrap();
    let o = qdet(&["val", "--model", &model(), "--data", yaml.to_str().unwrap()], d.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("the model's class names differ from this dataset's (id 4 is 'hexagon' in the model, 'cross' here; id 5 is 'cross' in the model, 'hexagon' here)"),
        "{err}"
    );
    // The fixture's own names: no warning.
    let ds2 = dataset(&d.path().join("same"), &["val_0000"]);
    let o = qdet(&["val", "--model", &model(), "--data", ds2.join("data.yaml").to_str().unwrap()], d.path());
    assert!(!stderr(&o).contains("class names differ"), "{}", stderr(&o));
}
