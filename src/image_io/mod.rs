//! Reading images the way Ultralytics (OpenCV `imdecode`, `IMREAD_COLOR`) sees them:
//! EXIF orientation applied, alpha dropped (not blended), grey replicated to three
//! channels, 16-bit samples reduced to their high byte, palettes expanded.
//!
//! JPEGs are decoded with libjpeg-turbo's code (through mozjpeg, which shares its
//! decoder): the pure-Rust decoder differs from OpenCV's libjpeg-turbo on ~10% of pixels
//! by up to 4 levels, which moved COCO yolov8n scores by up to 0.015 and boxes by 1.4 px.

mod jpeg;

use std::io::Cursor;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageReader};

use crate::error::{Error, Result};

/// An 8-bit RGB image, interleaved, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct RgbImage {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

impl RgbImage {
    /// `width` x `height` pixels from `data`, three bytes a pixel, row by row; refused unless
    /// both sides are positive and `data` holds exactly that many bytes.
    pub fn new(width: usize, height: usize, data: Vec<u8>) -> Result<RgbImage> {
        let img = RgbImage { width, height, data };
        img.check()?;
        Ok(img)
    }

    /// The error [`RgbImage::new`] would give for these fields, if any: the fields are public,
    /// so the detector checks them again rather than index out of the buffer.
    pub fn check(&self) -> Result<()> {
        if self.width == 0 || self.height == 0 {
            return Err(Error::Invalid(format!("an image of {} x {} pixels is empty", self.width, self.height)));
        }
        let needed = self.width.checked_mul(self.height).and_then(|n| n.checked_mul(3));
        if needed != Some(self.data.len()) {
            return Err(Error::Invalid(format!(
                "an RGB image of {} x {} pixels needs {} bytes, not {}",
                self.width,
                self.height,
                needed.map_or("more than usize::MAX".to_string(), |n| n.to_string()),
                self.data.len()
            )));
        }
        Ok(())
    }
}

/// The default of [`max_pixels`]: 100 megapixels, a 12000 x 8000 photo; decoded, 300 MB.
pub const DEFAULT_MAX_PIXELS: u64 = 100_000_000;

static MAX_PIXELS: AtomicU64 = AtomicU64::new(DEFAULT_MAX_PIXELS);

/// The largest image (decoded width x height) qdet decodes. A file's header claims its size
/// before any pixel is decoded, and a 154-byte BMP or a 10 MB PNG can claim 60000 x 60000
/// (10.8 GB decoded): such files are refused from the header, before anything is allocated.
pub fn max_pixels() -> u64 {
    MAX_PIXELS.load(Ordering::Relaxed)
}

/// Sets `max_pixels()` for the whole process (`--max-pixels`).
pub fn set_max_pixels(n: u64) {
    MAX_PIXELS.store(n, Ordering::Relaxed)
}

/// Why encoded bytes did not decode to an image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    #[error("the file is empty")]
    Empty,
    #[error("not a supported image format (jpeg, png, bmp, tiff, webp)")]
    UnknownFormat,
    /// Refused from the header, before decoding: more pixels, or more decoded bytes, than
    /// the process's pixel limit allows ([`set_max_pixels`], 100 million by default).
    #[error("{0}")]
    TooLarge(String),
    /// The decoder's reason: corrupt or truncated data, an unsupported variant.
    #[error("{0}")]
    Corrupt(String),
}

pub(crate) fn corrupt(e: impl std::fmt::Display) -> DecodeError {
    DecodeError::Corrupt(e.to_string())
}

/// How [`DecodeError::TooLarge`] names the limit, followed by its number (the command adds
/// its flag after it).
pub(crate) const PIXEL_LIMIT: &str = "more than the limit of ";

/// Refuses a `w` x `h` image above [`max_pixels`].
pub fn check_pixels(w: u64, h: u64) -> std::result::Result<(), DecodeError> {
    let max = max_pixels();
    if w.saturating_mul(h) > max {
        return Err(DecodeError::TooLarge(format!("{w} x {h} pixels, {PIXEL_LIMIT}{max}")));
    }
    Ok(())
}

/// Refuses an image whose decoded buffer, in the decoder's own format, is larger than an
/// 8-bit RGB image of [`max_pixels`]: the limit is on memory, so a 16-bit RGBA image (8 bytes
/// a pixel) may have 3/8 of the pixels an 8-bit RGB one may.
fn check_decoded_bytes(
    w: u32,
    h: u32,
    color: image::ColorType,
    max_pixels: u64,
) -> std::result::Result<(), DecodeError> {
    let bytes = u64::from(w) * u64::from(h) * u64::from(color.bytes_per_pixel());
    let budget = max_pixels.saturating_mul(3);
    if bytes > budget {
        return Err(DecodeError::TooLarge(format!(
            "{w} x {h} pixels of {color:?} take {bytes} bytes decoded, more than the {budget} of {max_pixels} \
             8-bit RGB pixels (--max-pixels)"
        )));
    }
    Ok(())
}

/// Decodes an image file into upright RGB. Only a regular file is read, and at most 3 bytes
/// per allowed pixel (what it may decode to, uncompressed) plus 16 MB of metadata.
pub fn read_rgb(path: &Path) -> Result<RgbImage> {
    let limit = max_pixels().saturating_mul(3).saturating_add(16 << 20);
    let bytes = crate::input::read(path, limit)?;
    decode_rgb(&bytes).map_err(|e| Error::Image { path: path.into(), reason: e.to_string() })
}

/// Decodes encoded image bytes into upright RGB. Images above `max_pixels()` are refused
/// from their header.
pub fn decode_rgb(bytes: &[u8]) -> std::result::Result<RgbImage, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    let mut reader = ImageReader::new(Cursor::new(bytes)).with_guessed_format().map_err(corrupt)?;
    if reader.format().is_none() {
        return Err(DecodeError::UnknownFormat);
    }
    if reader.format() == Some(image::ImageFormat::Jpeg) {
        if let Some(img) = jpeg::decode(bytes)? {
            return Ok(img);
        }
    }
    // The decoders' own limits too: what they allocate besides the image (a TIFF's strips,
    // a PNG's rows) stays within the allowed decoded size.
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(max_pixels().saturating_mul(3).saturating_add(16 << 20));
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(corrupt)?;
    let (w, h) = decoder.dimensions();
    check_pixels(w.into(), h.into())?;
    check_decoded_bytes(w, h, decoder.color_type(), max_pixels())?;
    // A broken EXIF block must not cost the image: OpenCV ignores it too.
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder).map_err(corrupt)?;
    img.apply_orientation(orientation);
    Ok(to_rgb8_like_opencv(img))
}

/// Applies an EXIF orientation to an RGB image.
pub fn orient(img: RgbImage, orientation: Orientation) -> RgbImage {
    if orientation == Orientation::NoTransforms {
        return img;
    }
    let Some(buf) = image::RgbImage::from_raw(img.width as u32, img.height as u32, img.data) else {
        unreachable!("RgbImage always holds width * height * 3 bytes")
    };
    let mut d = DynamicImage::ImageRgb8(buf);
    d.apply_orientation(orientation);
    let (width, height) = (d.width() as usize, d.height() as usize);
    RgbImage { width, height, data: d.into_rgb8().into_raw() }
}

fn to_rgb8_like_opencv(img: DynamicImage) -> RgbImage {
    let (width, height) = (img.width() as usize, img.height() as usize);
    let hi = |v: u16| (v >> 8) as u8;
    let data: Vec<u8> = match img {
        DynamicImage::ImageRgb8(b) => b.into_raw(),
        DynamicImage::ImageRgba8(b) => b.pixels().flat_map(|p| [p[0], p[1], p[2]]).collect(),
        DynamicImage::ImageLuma8(b) => b.pixels().flat_map(|p| [p[0]; 3]).collect(),
        DynamicImage::ImageLumaA8(b) => b.pixels().flat_map(|p| [p[0]; 3]).collect(),
        DynamicImage::ImageRgb16(b) => b.pixels().flat_map(|p| [hi(p[0]), hi(p[1]), hi(p[2])]).collect(),
        DynamicImage::ImageRgba16(b) => b.pixels().flat_map(|p| [hi(p[0]), hi(p[1]), hi(p[2])]).collect(),
        DynamicImage::ImageLuma16(b) => b.pixels().flat_map(|p| [hi(p[0]); 3]).collect(),
        DynamicImage::ImageLumaA16(b) => b.pixels().flat_map(|p| [hi(p[0]); 3]).collect(),
        other => other.to_rgb8().into_raw(),
    };
    RgbImage { width, height, data }
}

/// Width and height after EXIF orientation, read from the header only (no pixel decode).
pub fn upright_dimensions(path: &Path) -> Result<(u32, u32)> {
    let bad = |reason: String| Error::Image { path: path.into(), reason };
    let reader = ImageReader::open(path).map_err(|e| Error::io(path, e))?;
    let reader = reader.with_guessed_format().map_err(|e| Error::io(path, e))?;
    let mut decoder = reader.into_decoder().map_err(|e| bad(e.to_string()))?;
    let (w, h) = decoder.dimensions();
    use Orientation::*;
    Ok(match decoder.orientation().unwrap_or(NoTransforms) {
        Rotate90 | Rotate270 | Rotate90FlipH | Rotate270FlipH => (h, w),
        _ => (w, h),
    })
}
/// Encodes `img` in the format of `path`'s extension (PNG, BMP, else JPEG at quality 95, as
/// Ultralytics saves its images: drawn boxes and augmented copies should not gain visible
/// JPEG blocks).
pub fn encode(img: &RgbImage, path: &Path) -> Result<Vec<u8>> {
    use image::ImageEncoder;
    let mut buf = Vec::new();
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    let (w, h) = (img.width as u32, img.height as u32);
    let rgb = image::ExtendedColorType::Rgb8;
    let res = match ext.as_str() {
        "png" => image::codecs::png::PngEncoder::new(&mut buf).write_image(&img.data, w, h, rgb),
        "bmp" => image::codecs::bmp::BmpEncoder::new(&mut buf).write_image(&img.data, w, h, rgb),
        _ => image::codecs::jpeg::JpegEncoder::new_with_quality(&mut buf, 95).write_image(&img.data, w, h, rgb),
    };
    res.map_err(|e| Error::format(path, format!("cannot encode the image: {e}")))?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::ColorType;

    #[test]
    fn decode_errors_say_which_kind_of_failure() {
        assert_eq!(decode_rgb(&[]).unwrap_err(), DecodeError::Empty);
        assert_eq!(decode_rgb(b"plain text, not an image").unwrap_err(), DecodeError::UnknownFormat);
        // A BMP header claiming 60000 x 60000 pixels: refused from the header.
        let mut bmp = b"BM".to_vec();
        bmp.extend_from_slice(&[0; 8]);
        bmp.extend_from_slice(&54u32.to_le_bytes());
        bmp.extend_from_slice(&40u32.to_le_bytes());
        bmp.extend_from_slice(&60000i32.to_le_bytes());
        bmp.extend_from_slice(&60000i32.to_le_bytes());
        bmp.extend_from_slice(&1u16.to_le_bytes());
        bmp.extend_from_slice(&24u16.to_le_bytes());
        bmp.extend_from_slice(&[0; 24]);
        assert!(matches!(decode_rgb(&bmp), Err(DecodeError::TooLarge(_))), "{:?}", decode_rgb(&bmp));
        // A JPEG cut in the middle: the decoder's reason.
        let jpeg = std::fs::read("datasets/shapes/images/val/val_0000.jpg").unwrap();
        let cut = decode_rgb(&jpeg[..jpeg.len() / 2]).unwrap_err();
        assert!(matches!(&cut, DecodeError::Corrupt(r) if r.contains("truncated JPEG")), "{cut:?}");
    }

    #[test]
    fn the_pixel_limit_counts_decoded_bytes() {
        // 100 x 100 16-bit RGBA: 80000 bytes, over the 60000 of 20000 RGB pixels, though
        // its 10000 pixels are under 20000.
        let e = check_decoded_bytes(100, 100, ColorType::Rgba16, 20_000).unwrap_err().to_string();
        assert_eq!(e, "100 x 100 pixels of Rgba16 take 80000 bytes decoded, more than the 60000 of 20000 8-bit RGB pixels (--max-pixels)");
        assert!(check_decoded_bytes(100, 100, ColorType::Rgb8, 10_000).is_ok());
        assert!(check_decoded_bytes(100, 100, ColorType::Rgba8, 10_000).is_err());
        assert!(check_decoded_bytes(100, 150, ColorType::Rgba8, 20_000).is_ok());
        // The 10000 x 10000 16-bit RGBA PNG of issue 27 under the default limit.
        assert!(check_decoded_bytes(10_000, 10_000, ColorType::Rgba16, DEFAULT_MAX_PIXELS).is_err());
    }
}
