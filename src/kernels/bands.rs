//! Splitting a convolution's output rows into bands for the threads, and writing a
//! pixel-major tile row back to `[C][H][W]` channel rows; shared by the int8 and fp32 convs.

use std::ops::Range;

use super::epilogue::Lane;
use super::OC_BLOCK;

/// Each band's rows of every channel of a `[C][H][W]` buffer.
pub(crate) fn band_rows<'a, T>(
    out: &'a mut [T],
    plane: usize,
    ow: usize,
    bands: &[Range<usize>],
) -> Vec<Vec<&'a mut [T]>> {
    let mut per_band: Vec<Vec<&mut [T]>> = bands.iter().map(|_| Vec::new()).collect();
    for channel in out.chunks_mut(plane) {
        let mut rest = channel;
        for (band, r) in per_band.iter_mut().zip(bands) {
            let (mine, next) = std::mem::take(&mut rest).split_at_mut(r.len() * ow);
            band.push(mine);
            rest = next;
        }
    }
    per_band
}

/// Rows `y` of up to 16 channel rows (`ow` values each, per channel a band's rows) from
/// pixel-major values.
pub(crate) fn transpose_into<T: Lane>(t: &[T], channels: &mut [&mut [T]], y: usize, ow: usize) {
    let n = channels.len();
    let mut rows: [&mut [T]; OC_BLOCK] = Default::default();
    for (row, d) in rows.iter_mut().zip(channels.iter_mut()) {
        *row = &mut d[y * ow..][..ow];
    }
    T::transpose(t, &mut rows[..n]);
}
