//! YAML as qdet reads dataset files and class lists: bounded loading, then the names.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = qdet::yaml::load(text);
        let _ = qdet::meta::names_from_yaml(text);
    }
});
