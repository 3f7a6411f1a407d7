//! JPEG pixels as Ultralytics sees them: `read_image` against `cv2.imread` (OpenCV's bundled
//! libjpeg-turbo) on fixture photos and small JPEGs of each chroma layout, baseline and
//! progressive, and greyscale (tests/data/decode/, written with their references by
//! tools/fixtures/make_decode_golden.py). Every byte must agree: a pixel off by one moves
//! low scores and NMS ties against Ultralytics.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::util::*;

#[derive(Deserialize)]
struct Reference {
    height: usize,
    width: usize,
    fnv1a64: String,
}

#[derive(Deserialize)]
struct References {
    images: BTreeMap<String, Reference>,
}

/// 64-bit FNV-1a, as the generator computes it.
fn fnv1a64(data: &[u8]) -> String {
    let h = data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    format!("{h:016x}")
}

#[test]
fn jpeg_pixels_equal_opencv() {
    let refs: References = load_json("tests/data/decode/opencv.json");
    assert!(refs.images.len() >= 9, "the references cover the layouts");
    for (rel, want) in &refs.images {
        let img = qdet::read_image(&root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
        assert_eq!((img.height, img.width), (want.height, want.width), "{rel}");
        assert_eq!(fnv1a64(&img.data), want.fnv1a64, "{rel}: pixels differ from cv2.imread");
    }
}
