//! The image of a channel concatenation written from its parts ([`Layout::concat`]) against
//! packing the concatenated tensor ([`pack::image`]).

use super::*;
use crate::kernels::pack::{Layout, Part};

/// Three parts (8 channels `[C][H][W]`, 16 already channels-last, 5 `[C][H][W]` ending in a
/// partial k-group), rows long and short of the 16-pixel interleave, asymmetric padding: the
/// same bytes as [`pack::image`] of the 29-channel tensor, whatever the buffer held before
/// (the op writes into memory it does not zero).
#[test]
fn concat_of_parts_equals_packing_the_concatenation() {
    let _team = crate::tests::team();
    let mut rng = Rng::for_item(31, "concat", 0);
    for isa in available() {
        for (h, w) in [(5, 21), (3, 7)] {
            let (a, b, c) = (pixels(&mut rng, 8 * h * w), pixels(&mut rng, 16 * h * w), pixels(&mut rng, 5 * h * w));
            let shape = |in_c, pad| ConvShape {
                in_c,
                in_h: h,
                in_w: w,
                out_c: 16,
                kh: 1,
                kw: 1,
                stride: (1, 1),
                pad,
                dilation: (1, 1),
            };
            let s = shape(29, [1, 2, 0, 1]);
            let mut want = Vec::new();
            pack::image(isa, &s, &[a.clone(), b.clone(), c.clone()].concat(), 9, &mut want);
            let mut b_packed = Vec::new();
            pack::image(isa, &shape(16, [0; 4]), &b, 9, &mut b_packed);
            let parts = [Part::Nchw(&a, 8), Part::Packed(&b_packed, 16), Part::Nchw(&c, 5)];
            let layout = Layout::of(isa, &s);
            for fill in [0u8, 0xab] {
                let mut got = vec![fill; layout.len()];
                layout.concat(9, &parts, &mut got);
                assert!(got == want, "{isa:?} {h}x{w}, buffer of {fill:#x}");
            }
        }
    }
}

/// A part but the last that does not fill whole k-groups would shift the next part's
/// channels inside each pixel: refused.
#[test]
#[should_panic(expected = "splits a k-group")]
fn a_part_splitting_a_k_group_is_refused() {
    let isa = available()[0];
    let s =
        ConvShape { in_c: 8, in_h: 2, in_w: 2, out_c: 16, kh: 1, kw: 1, stride: (1, 1), pad: [0; 4], dilation: (1, 1) };
    let (a, b) = (vec![1u8; 3 * 4], vec![2u8; 5 * 4]);
    let layout = Layout::of(isa, &s);
    let mut out = vec![0u8; layout.len()];
    layout.concat(0, &[Part::Nchw(&a, 3), Part::Nchw(&b, 5)], &mut out);
}
