//! JPEG decoding with libjpeg-turbo's arithmetic (islow IDCT, fancy upsampling), the
//! decoder OpenCV bundles, so qdet sees the same pixels Ultralytics does.

use image::metadata::Orientation;

use crate::image_io::{orient, RgbImage};

/// Decodes a JPEG to upright RGB. `Ok(None)` means libjpeg cannot produce RGB from this
/// file's colour space (CMYK/YCCK): the caller falls back to the pure-Rust decoder.
pub fn decode(bytes: &[u8]) -> Result<Option<RgbImage>, String> {
    // libjpeg reports fatal errors by panicking out of its error handler (the `unwinding`
    // build of mozjpeg-sys); catch that here so a corrupt file is an error, not a crash.
    let result = std::panic::catch_unwind(|| decode_inner(bytes));
    match result {
        Ok(r) => r,
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "corrupt JPEG data".into());
            Err(format!("corrupt JPEG: {msg}"))
        }
    }
}

fn decode_inner(bytes: &[u8]) -> Result<Option<RgbImage>, String> {
    use mozjpeg::{ColorSpace, Decompress, Marker};
    let d = Decompress::with_markers(&[Marker::APP(1)]).from_mem(bytes).map_err(|e| e.to_string())?;
    if matches!(d.color_space(), ColorSpace::JCS_CMYK | ColorSpace::JCS_YCCK) {
        return Ok(None);
    }
    let orientation = d
        .markers()
        .filter_map(|m| m.data.strip_prefix(b"Exif\0\0"))
        .find_map(Orientation::from_exif_chunk)
        .unwrap_or(Orientation::NoTransforms);
    let mut started = d.rgb().map_err(|e| e.to_string())?;
    let (width, height) = (started.width(), started.height());
    let data = started.read_scanlines::<u8>().map_err(|e| e.to_string())?;
    // A truncated file yields fewer rows; OpenCV fails on it too, so report instead of padding.
    if data.len() != width * height * 3 {
        return Err(format!("truncated JPEG: decoded {} of {} rows", data.len() / (width * 3).max(1), height));
    }
    started.finish().map_err(|e| e.to_string())?;
    Ok(Some(orient(RgbImage { width, height, data }, orientation)))
}
