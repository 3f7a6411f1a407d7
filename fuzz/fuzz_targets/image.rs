//! Image decoding as `detect` and `val` do it (JPEG through libjpeg-turbo, the rest through
//! the image crate), with a small pixel limit so that a header's claim is what is tested.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    qdet::internals::set_max_pixels(1 << 20);
    if let Ok(img) = qdet::decode_image(data) {
        assert_eq!(img.data.len(), img.width * img.height * 3);
        assert!((img.width * img.height) as u64 <= 1 << 20);
    }
});
