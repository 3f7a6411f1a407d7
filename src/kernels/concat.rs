//! Concatenation of f32 tensors along one axis into a new tensor, copied in pieces on the
//! kernels' team, each piece optionally transformed in place while it is in cache.

use tract_onnx::prelude::*;

/// Floats per parallel piece.
const PIECE: usize = 1 << 14;

/// An in-place transform of a copied piece (a sigmoid).
pub type Then<'a> = &'a (dyn Fn(&mut [f32]) + Sync);

/// One input: its values, `outer` blocks in order, and what to apply to them once copied.
pub struct Part<'a> {
    pub src: &'a [f32],
    pub then: Option<Then<'a>>,
}

/// A new tensor of `shape` holding, for each of `outer` blocks in turn, each part's block
/// (`src.len() / outer` values): a Concat along the axis after the `outer` ones. It is not
/// zeroed first (zeroing 7.6 MB of a COCO head's outputs cost more than the copies saved).
///
/// # Errors
/// If the tensor cannot be allocated.
///
/// # Panics
/// If the parts do not split into `outer` blocks or do not fill `shape` exactly.
pub fn concat_f32(shape: &[usize], outer: usize, parts: &[Part]) -> TractResult<Tensor> {
    let total: usize = shape.iter().product();
    assert!(outer > 0 && parts.iter().all(|p| p.src.len() % outer == 0), "parts do not split into {outer} blocks");
    assert_eq!(parts.iter().map(|p| p.src.len()).sum::<usize>(), total, "parts do not fill {shape:?}");
    // SAFETY: f32 has no invalid bit patterns, and every element is written below before the
    // tensor is returned: the pieces are consecutive `split_at_mut`s of the whole buffer,
    // `outer` blocks of every part, whose lengths sum to `total` (asserted above; the buffer
    // is checked empty after the split), and each piece is `copy_from_slice`d.
    let mut out = unsafe { Tensor::uninitialized::<f32>(shape)? };
    {
        let mut plain = out.try_as_plain_ram_mut()?;
        let mut rest = plain.as_slice_mut::<f32>()?;
        let mut pieces = Vec::new();
        for o in 0..outer {
            for p in parts {
                let n = p.src.len() / outer;
                let (mine, next) = std::mem::take(&mut rest).split_at_mut(n);
                pieces
                    .extend(p.src[o * n..][..n].chunks(PIECE).zip(mine.chunks_mut(PIECE)).map(|(s, d)| (s, d, p.then)));
                rest = next;
            }
        }
        assert!(rest.is_empty(), "concat pieces leave {} values unwritten", rest.len());
        super::threads::for_each_item(pieces, |(s, d, then)| {
            d.copy_from_slice(s);
            if let Some(f) = then {
                f(d);
            }
        });
    }
    Ok(out)
}
