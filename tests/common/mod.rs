//! Shared by the integration tests: reference detections and the matching rule.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use qdet::postprocess::Detection;
use serde::Deserialize;

/// Boxes must agree to within one pixel of the source image.
pub const BOX_TOL_PX: f32 = 1.0;
/// Confidences must agree to within this.
pub const CONF_TOL: f32 = 2e-3;

#[derive(Deserialize)]
pub struct Reference {
    pub conf: f32,
    pub images: std::collections::BTreeMap<String, RefImage>,
}

#[derive(Deserialize)]
pub struct RefImage {
    pub width: usize,
    pub height: usize,
    pub detections: Vec<RefDet>,
}

#[derive(Deserialize, Clone, Debug)]
pub struct RefDet {
    pub class: usize,
    pub conf: f32,
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn load_reference(rel: &str) -> Reference {
    let p = root().join(rel);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn close(d: &Detection, r: &RefDet, box_tol: f32, conf_tol: f32) -> bool {
    d.class == r.class
        && (d.score - r.conf).abs() <= conf_tol
        && d.bbox.iter().zip(r.bbox).all(|(a, b)| (a - b).abs() <= box_tol)
}

/// Pairs qdet's detections with the reference's. Every detection clearly above the
/// threshold on either side must have a partner; ones within `conf_tol` of the threshold
/// may legitimately exist on one side only. Returns a list of problems (empty when equal).
pub fn compare(image: &Path, got: &[Detection], want: &[RefDet], thr: f32, box_tol: f32, conf_tol: f32) -> Vec<String> {
    let mut problems = Vec::new();
    let mut used = vec![false; got.len()];
    for r in want {
        let partner = (0..got.len()).find(|&i| !used[i] && close(&got[i], r, box_tol, conf_tol));
        match partner {
            Some(i) => used[i] = true,
            None if r.conf <= thr + conf_tol => {}
            None => problems.push(format!("{}: reference {:?} has no match in {:?}", image.display(), r, got)),
        }
    }
    for (i, d) in got.iter().enumerate() {
        if !used[i] && d.score > thr + conf_tol {
            problems.push(format!("{}: qdet {:?} is not in the reference {:?}", image.display(), d, want));
        }
    }
    problems
}
