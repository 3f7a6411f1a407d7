//! YAML as qdet reads dataset files and class lists: bounded loading, then the names.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = qdet::internals::load_yaml(text);
        let _ = qdet::internals::names_from_yaml(text);
    }
});
