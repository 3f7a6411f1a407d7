//! The association costs of Ultralytics' `matching`: IoU distance and its fusion with the
//! detection score, in float32 as there (`iou_distance` casts the boxes to float32 and
//! `bbox_ioa` adds an eps of 1e-7), so the costs lap compares with the threshold are the same
//! numbers.

/// `1 - IoU` of each pair, `a.len() × b.len()` row-major; boxes x1, y1, x2, y2.
pub(super) fn iou_distance(a: &[[f32; 4]], b: &[[f32; 4]]) -> Vec<f32> {
    let mut out = Vec::with_capacity(a.len() * b.len());
    for p in a {
        let area_p = (p[2] - p[0]) * (p[3] - p[1]);
        for q in b {
            let iw = (p[2].min(q[2]) - p[0].max(q[0])).max(0.0);
            let ih = (p[3].min(q[3]) - p[1].max(q[1])).max(0.0);
            let inter = iw * ih;
            let union = (q[2] - q[0]) * (q[3] - q[1]) + area_p - inter;
            out.push(1.0 - inter / (union + 1e-7));
        }
    }
    out
}

/// `fuse_score`: the IoU similarity scaled by each column's detection score.
pub(super) fn fuse_score(cost: &mut [f32], scores: &[f32]) {
    for row in cost.chunks_mut(scores.len().max(1)) {
        for (c, s) in row.iter_mut().zip(scores) {
            *c = 1.0 - (1.0 - *c) * s;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iou_of_known_boxes() {
        let d = iou_distance(&[[0.0, 0.0, 10.0, 10.0]], &[[5.0, 0.0, 15.0, 10.0], [20.0, 20.0, 30.0, 30.0]]);
        assert!((d[0] - (1.0 - 50.0 / 150.0)).abs() < 1e-6);
        assert_eq!(d[1], 1.0);
        let mut c = d.clone();
        fuse_score(&mut c, &[0.5, 0.9]);
        assert!((c[0] - (1.0 - 0.5 / 3.0)).abs() < 1e-6);
        assert_eq!(c[1], 1.0);
    }
}
