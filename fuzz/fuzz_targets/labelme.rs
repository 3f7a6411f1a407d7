//! labelme JSON as `convert`, `split` and `augment` read it: parsed, then its shapes turned
//! into boxes (rectangles and polygon bounds).
#![no_main]
use std::path::Path;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz.json");
    if let Ok(file) = qdet::internals::parse_labelme_bytes(data, path) {
        let _ = qdet::internals::labelme_labeled_boxes(path, &file, true);
        let _ = qdet::internals::labelme_labeled_boxes(path, &file, false);
    }
});
