//! JPEG decoding with libjpeg-turbo's arithmetic (islow IDCT, fancy upsampling), the
//! decoder OpenCV bundles, so qdet sees the same pixels Ultralytics does.

use image::metadata::Orientation;

use super::{corrupt, orient, DecodeError, RgbImage};

/// Decodes a JPEG to upright RGB. `Ok(None)` means libjpeg cannot produce RGB from this
/// file's colour space (CMYK/YCCK): the caller falls back to the pure-Rust decoder.
pub fn decode(bytes: &[u8]) -> Result<Option<RgbImage>, DecodeError> {
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
            Err(corrupt(format!("corrupt JPEG: {msg}")))
        }
    }
}

fn decode_inner(bytes: &[u8]) -> Result<Option<RgbImage>, DecodeError> {
    use mozjpeg::{ColorSpace, Decompress, Marker};
    // libjpeg only warns on a cut-off file and pads it with grey; such an image would get
    // detections on made-up pixels, so it is refused here.
    if !reaches_end_marker(bytes) {
        return Err(corrupt("truncated JPEG: the data ends before the end-of-image marker"));
    }
    let d = Decompress::with_markers(&[Marker::APP(1)]).from_mem(bytes).map_err(corrupt)?;
    // The header is read: refuse a huge claim before a row is decoded.
    super::check_pixels(d.width() as u64, d.height() as u64)?;
    if matches!(d.color_space(), ColorSpace::JCS_CMYK | ColorSpace::JCS_YCCK) {
        return Ok(None);
    }
    let orientation = d
        .markers()
        .filter_map(|m| m.data.strip_prefix(b"Exif\0\0"))
        .find_map(Orientation::from_exif_chunk)
        .unwrap_or(Orientation::NoTransforms);
    let mut started = d.rgb().map_err(corrupt)?;
    let (width, height) = (started.width(), started.height());
    let data = started.read_scanlines::<u8>().map_err(corrupt)?;
    if data.len() != width * height * 3 {
        return Err(corrupt(format!("truncated JPEG: decoded {} of {} rows", data.len() / (width * 3).max(1), height)));
    }
    started.finish().map_err(corrupt)?;
    Ok(Some(orient(RgbImage { width, height, data }, orientation)))
}

/// Walks the marker segments and entropy-coded scans of a JPEG and reports whether the
/// end-of-image marker is reached inside the data. Embedded thumbnails live inside APP
/// segments, which are skipped by length, so their markers cannot fool the walk.
pub fn reaches_end_marker(b: &[u8]) -> bool {
    if b.len() < 4 || b[0] != 0xFF || b[1] != 0xD8 {
        return false;
    }
    let mut pos = 2;
    loop {
        // Fill bytes: any number of 0xFF may precede a marker code.
        while pos < b.len() && b[pos] == 0xFF && b.get(pos + 1) == Some(&0xFF) {
            pos += 1;
        }
        if pos + 1 >= b.len() || b[pos] != 0xFF {
            return false;
        }
        let marker = b[pos + 1];
        match marker {
            0xD9 => return true,
            0x01 | 0xD0..=0xD7 => pos += 2,
            _ => {
                let Some(len) = b.get(pos + 2..pos + 4).map(|l| u16::from_be_bytes([l[0], l[1]]) as usize) else {
                    return false;
                };
                pos += 2 + len;
                if marker == 0xDA {
                    pos = match skip_entropy_data(b, pos) {
                        Some(p) => p,
                        None => return false,
                    };
                }
            }
        }
    }
}

/// Position of the first marker after entropy-coded data starting at `pos`
/// (0xFF 0x00 is a stuffed byte and RSTn markers belong to the scan).
fn skip_entropy_data(b: &[u8], mut pos: usize) -> Option<usize> {
    while pos + 1 < b.len() {
        if b[pos] == 0xFF {
            match b[pos + 1] {
                0x00 | 0xD0..=0xD7 | 0xFF => pos += if b[pos + 1] == 0xFF { 1 } else { 2 },
                _ => return Some(pos),
            }
        } else {
            pos += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(rel: &str) -> Vec<u8> {
        std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)).unwrap()
    }

    #[test]
    fn complete_and_truncated_files() {
        for rel in
            ["datasets/shapes/images/val/val_0000.jpg", "tests/data/odd/exif_rot90.jpg", "tests/data/odd/gray.jpg"]
        {
            let b = fixture(rel);
            assert!(reaches_end_marker(&b), "{rel}");
            for cut in [b.len() - 2, b.len() * 2 / 3, b.len() / 3, 100, 3] {
                assert!(!reaches_end_marker(&b[..cut]), "{rel} cut at {cut}");
            }
            let err = decode(&b[..b.len() / 2]).unwrap_err();
            assert!(err.to_string().contains("truncated"), "{err}");
        }
    }

    #[test]
    fn libjpeg_fatal_errors_are_errors_not_crashes() {
        let mut b = fixture("datasets/shapes/images/val/val_0000.jpg");
        // Zero the frame's height and width: libjpeg's error_exit fires, must come back as Err.
        let sof = b.windows(2).position(|w| w == [0xFF, 0xC0]).expect("baseline SOF0 marker");
        b[sof + 5..sof + 9].fill(0);
        let err = decode(&b).unwrap_err();
        assert!(err.to_string().contains("corrupt JPEG"), "{err}");
    }
}
