//! Greedy non-maximum suppression with torchvision's arithmetic (`torchvision.ops.nms`,
//! CPU kernel), which Ultralytics calls: stable descending sort by score, float32 areas and
//! IoU, suppression when IoU is strictly greater than the threshold.

use std::cmp::Ordering;

/// IoU of two `[x1, y1, x2, y2]` boxes; zero-area boxes have IoU 0 with everything.
pub fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let area_a = (a[2] - a[0]) * (a[3] - a[1]);
    let area_b = (b[2] - b[0]) * (b[3] - b[1]);
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = w * h;
    let union = area_a + area_b - inter;
    if union > 0.0 {
        inter / union
    } else {
        0.0
    }
}

/// Indices of the kept boxes, highest score first. NaN scores sort last and never
/// suppress anything useful; they do not panic.
pub fn nms(boxes: &[[f32; 4]], scores: &[f32], iou_threshold: f32) -> Vec<usize> {
    debug_assert_eq!(boxes.len(), scores.len());
    let mut order: Vec<usize> = (0..boxes.len()).collect();
    order.sort_by(|&a, &b| descending(scores[a], scores[b]));
    let mut suppressed = vec![false; boxes.len()];
    let mut keep = Vec::new();
    for (pos, &i) in order.iter().enumerate() {
        if suppressed[i] {
            continue;
        }
        keep.push(i);
        for &j in &order[pos + 1..] {
            if !suppressed[j] && iou(&boxes[i], &boxes[j]) > iou_threshold {
                suppressed[j] = true;
            }
        }
    }
    keep
}

/// Descending order that puts NaN last (stable sort keeps ties in input order).
pub fn descending(a: f32, b: f32) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ => b.partial_cmp(&a).unwrap_or(Ordering::Equal),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iou_hand_checked() {
        // Two 10x10 boxes overlapping in a 5x10 strip: 50 / (100 + 100 - 50) = 1/3.
        assert!((iou(&[0.0, 0.0, 10.0, 10.0], &[5.0, 0.0, 15.0, 10.0]) - 1.0 / 3.0).abs() < 1e-7);
        assert_eq!(iou(&[0.0, 0.0, 10.0, 10.0], &[10.0, 0.0, 20.0, 10.0]), 0.0);
        assert_eq!(iou(&[0.0, 0.0, 10.0, 10.0], &[0.0, 0.0, 10.0, 10.0]), 1.0);
        // Zero-area boxes: no division by zero, no suppression.
        assert_eq!(iou(&[5.0, 5.0, 5.0, 5.0], &[5.0, 5.0, 5.0, 5.0]), 0.0);
        assert_eq!(iou(&[0.0, 0.0, 10.0, 10.0], &[5.0, 5.0, 5.0, 9.0]), 0.0);
    }

    #[test]
    fn suppresses_overlaps_above_threshold_only() {
        let boxes = [[0.0, 0.0, 10.0, 10.0], [1.0, 0.0, 11.0, 10.0], [5.0, 0.0, 15.0, 10.0], [20.0, 20.0, 30.0, 30.0]];
        let scores = [0.9, 0.8, 0.7, 0.6];
        // IoU(0,1) = 90/110 = 0.818 > 0.7: suppressed; IoU(0,2) = 1/3: kept.
        assert_eq!(nms(&boxes, &scores, 0.7), vec![0, 2, 3]);
        // IoU exactly equal to the threshold is not suppressed (torchvision uses `>`).
        assert_eq!(nms(&boxes[..3], &scores[..3], 1.0 / 3.0), vec![0, 2]);
    }

    #[test]
    fn ties_keep_input_order_and_suppressed_boxes_do_not_suppress() {
        // Equal scores: the earlier box wins, as torchvision's stable sort gives.
        let boxes = [[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 10.0]];
        assert_eq!(nms(&boxes, &[0.5, 0.5], 0.5), vec![0]);
        // Chain A-B-C: B is suppressed by A, so B cannot suppress C.
        let chain = [[0.0, 0.0, 10.0, 10.0], [4.0, 0.0, 14.0, 10.0], [8.0, 0.0, 18.0, 10.0]];
        // IoU(A,B) = 60/140 = 0.43, IoU(B,C) = 0.43, IoU(A,C) = 20/180 = 0.11.
        assert_eq!(nms(&chain, &[0.9, 0.8, 0.7], 0.4), vec![0, 2]);
    }

    #[test]
    fn nan_scores_do_not_panic() {
        let boxes = [[0.0, 0.0, 1.0, 1.0], [5.0, 5.0, 6.0, 6.0]];
        assert_eq!(nms(&boxes, &[f32::NAN, 0.3], 0.5), vec![1, 0]);
    }
}
