//! The metadata Ultralytics writes into an ONNX export (Python literals: `names`, `imgsz`,
//! `stride`, ...), as qdet reads it when loading a model.
#![no_main]
use std::collections::BTreeMap;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = qdet::internals::parse_python_literal(text);
        // The same text as each property qdet reads.
        let mut props = BTreeMap::new();
        for key in ["names", "imgsz", "stride", "task", "end2end"] {
            props.insert(key.to_string(), text.to_string());
        }
        let _ = qdet::ModelMeta::from_props(props, std::path::Path::new("fuzz.onnx"));
    }
});
