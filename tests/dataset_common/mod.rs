//! Shared by the dataset command tests: running the binary, copying fixtures, reading outputs.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/dataset")
}

pub fn qdet(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_qdet")).args(args).current_dir(cwd).output().expect("qdet runs")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The `--json` summary of a run.
pub fn summary(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("no JSON summary ({e}): {}", stderr(o)))
}

/// Copies a fixture folder into `dest` (tests never write into the repository).
pub fn copy_tree(from: &Path, dest: &Path) {
    for entry in walkdir::WalkDir::new(from) {
        let entry = entry.unwrap();
        let to = dest.join(entry.path().strip_prefix(from).unwrap());
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&to).unwrap();
        } else {
            std::fs::copy(entry.path(), &to).unwrap();
        }
    }
}

pub fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

pub fn json(p: &Path) -> Value {
    serde_json::from_str(&read(p)).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Every file under `dir`, relative, sorted.
pub fn tree(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = walkdir::WalkDir::new(dir)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .map(|e| e.path().strip_prefix(dir).unwrap().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// The rectangles of a labelme file as (label, [x1, y1, x2, y2]).
pub fn rects(file: &Value) -> Vec<(String, [f64; 4])> {
    file["shapes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let p = s["points"].as_array().unwrap();
            let xy = |i: usize, j: usize| p[i][j].as_f64().unwrap();
            (s["label"].as_str().unwrap().to_string(), [xy(0, 0), xy(0, 1), xy(1, 0), xy(1, 1)])
        })
        .collect()
}

/// A small PNG: background grey-blue, with filled rectangles `[x1, y1, x2, y2)` in colours.
pub fn write_png(path: &Path, w: u32, h: u32, rects: &[([u32; 4], [u8; 3])]) {
    let mut img = image::RgbImage::from_pixel(w, h, image::Rgb([40, 60, 80]));
    for (r, c) in rects {
        for y in r[1]..r[3] {
            for x in r[0]..r[2] {
                img.put_pixel(x, y, image::Rgb(*c));
            }
        }
    }
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    img.save(path).unwrap();
}
