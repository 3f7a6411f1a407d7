//! Pascal VOC XML as `convert --from voc` reads it.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = qdet::formats::voc::parse(text, std::path::Path::new("fuzz.xml"));
    }
});
