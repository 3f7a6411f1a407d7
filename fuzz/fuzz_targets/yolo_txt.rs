//! YOLO txt labels, by both readers: `convert`'s (boxes, polygons, a confidence column) and
//! `val`'s (Ultralytics' `verify_image_label` rules).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let path = std::path::Path::new("fuzz.txt");
        if let Ok(labels) = qdet::formats::yolo::parse(text, path) {
            for l in &labels {
                if let qdet::formats::yolo::Geometry::Box(_) = l.geometry {
                    let _ = l.pixel_box(640, 480);
                }
            }
        }
        let _ = qdet::formats::yolo::parse_labels(text, path, 80);
    }
});
