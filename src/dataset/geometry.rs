//! Plane geometry for augmentation: 3x3 homographies, and moving labelme shapes with them.
//!
//! Coordinates are continuous pixel coordinates as labelme uses them: (0, 0) is the top-left
//! corner of the first pixel and pixel (i, j) has its centre at (i + 0.5, j + 0.5). In these
//! a horizontal flip is exactly x -> width - x, for the image and for the boxes alike.

/// Row-major 3x3 matrix acting on column vectors (x, y, 1).
pub type Mat3 = [[f64; 3]; 3];

pub const IDENTITY: Mat3 = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];

pub fn mul(a: &Mat3, b: &Mat3) -> Mat3 {
    let mut m = [[0.0; 3]; 3];
    for (i, row) in m.iter_mut().enumerate() {
        for (j, v) in row.iter_mut().enumerate() {
            *v = (0..3).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    m
}

/// The inverse, or `None` for a singular matrix.
pub fn invert(m: &Mat3) -> Option<Mat3> {
    let c = |r0: usize, r1: usize, c0: usize, c1: usize| m[r0][c0] * m[r1][c1] - m[r0][c1] * m[r1][c0];
    let cof = [
        [c(1, 2, 1, 2), -c(1, 2, 0, 2), c(1, 2, 0, 1)],
        [-c(0, 2, 1, 2), c(0, 2, 0, 2), -c(0, 2, 0, 1)],
        [c(0, 1, 1, 2), -c(0, 1, 0, 2), c(0, 1, 0, 1)],
    ];
    let det = m[0][0] * cof[0][0] + m[0][1] * cof[0][1] + m[0][2] * cof[0][2];
    if det.abs() < 1e-12 || !det.is_finite() {
        return None;
    }
    // The inverse is the transposed cofactor matrix over the determinant.
    let mut inv = [[0.0; 3]; 3];
    for (i, row) in inv.iter_mut().enumerate() {
        for (j, v) in row.iter_mut().enumerate() {
            *v = cof[j][i] / det;
        }
    }
    Some(inv)
}

/// Applies `m` to a point; `None` when the point goes to or behind the horizon (w <= 0),
/// which a strong perspective can do to far corners.
pub fn apply(m: &Mat3, [x, y]: [f64; 2]) -> Option<[f64; 2]> {
    let w = m[2][0] * x + m[2][1] * y + m[2][2];
    if w <= 1e-9 {
        return None;
    }
    Some([(m[0][0] * x + m[0][1] * y + m[0][2]) / w, (m[1][0] * x + m[1][1] * y + m[1][2]) / w])
}

/// The geometric part of one augmentation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Warp {
    pub flip: bool,
    /// Degrees, counter-clockwise on screen (as Ultralytics' `degrees`).
    pub degrees: f64,
    pub scale: f64,
    /// Perspective terms, in 1/pixels.
    pub perspective: [f64; 2],
}

impl Warp {
    /// The matrix taking source coordinates to output coordinates for a `width` x `height`
    /// image (the output has the same size): flip, then move the centre to the origin, apply
    /// perspective, rotate and scale about it, and move it back; Ultralytics'
    /// `random_perspective` composes the same way (T @ R @ P @ C).
    pub fn matrix(&self, width: f64, height: f64) -> Mat3 {
        let flip = if self.flip { [[-1.0, 0.0, width], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]] } else { IDENTITY };
        let (cx, cy) = (width / 2.0, height / 2.0);
        let c = [[1.0, 0.0, -cx], [0.0, 1.0, -cy], [0.0, 0.0, 1.0]];
        let p = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [self.perspective[0], self.perspective[1], 1.0]];
        // Image y points down, so a counter-clockwise turn on screen is -angle in y-up maths.
        let (s, co) = (-self.degrees.to_radians()).sin_cos();
        let r = [[self.scale * co, -self.scale * s, 0.0], [self.scale * s, self.scale * co, 0.0], [0.0, 0.0, 1.0]];
        let t = [[1.0, 0.0, cx], [0.0, 1.0, cy], [0.0, 0.0, 1.0]];
        mul(&t, &mul(&r, &mul(&p, &mul(&c, &flip))))
    }
}

/// Moves a box by its four corners: the result is the axis-aligned box around them.
pub fn transform_box(m: &Mat3, [x1, y1, x2, y2]: [f64; 4]) -> Option<[f64; 4]> {
    let corners = [[x1, y1], [x2, y1], [x2, y2], [x1, y2]];
    let moved: Option<Vec<[f64; 2]>> = corners.iter().map(|&p| apply(m, p)).collect();
    crate::formats::shapes::bounds(moved?)
}

/// Clips a polygon to the rectangle [0, width] x [0, height] (Sutherland-Hodgman: exact for
/// any polygon against a convex window).
pub fn clip_polygon(points: &[[f64; 2]], width: f64, height: f64) -> Vec<[f64; 2]> {
    // Each edge of the window as (inside test, intersection with the segment a-b).
    type Inside = fn(&[f64; 2], f64, f64) -> bool;
    let edges: [(Inside, usize, bool); 4] = [
        (|p, _, _| p[0] >= 0.0, 0, false),
        (|p, w, _| p[0] <= w, 0, true),
        (|p, _, _| p[1] >= 0.0, 1, false),
        (|p, _, h| p[1] <= h, 1, true),
    ];
    let mut out = points.to_vec();
    for (inside, axis, far) in edges {
        if out.is_empty() {
            break;
        }
        let bound = if far {
            if axis == 0 {
                width
            } else {
                height
            }
        } else {
            0.0
        };
        let input = std::mem::take(&mut out);
        for i in 0..input.len() {
            let a = input[(i + input.len() - 1) % input.len()];
            let b = input[i];
            let (ia, ib) = (inside(&a, width, height), inside(&b, width, height));
            if ia != ib {
                let t = (bound - a[axis]) / (b[axis] - a[axis]);
                let mut p = [a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1])];
                p[axis] = bound;
                out.push(p);
            }
            if ib {
                out.push(b);
            }
        }
    }
    out
}

/// Area of a simple polygon (shoelace formula).
pub fn polygon_area(points: &[[f64; 2]]) -> f64 {
    let n = points.len();
    let twice: f64 = (0..n)
        .map(|i| {
            let (a, b) = (points[i], points[(i + 1) % n]);
            a[0] * b[1] - b[0] * a[1]
        })
        .sum();
    twice.abs() / 2.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &[f64], b: &[f64], tol: f64) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= tol)
    }

    #[test]
    fn flip_mirrors_a_known_box() {
        let m = Warp { flip: true, degrees: 0.0, scale: 1.0, perspective: [0.0; 2] }.matrix(100.0, 80.0);
        // x in [10, 30] on a 100-wide image goes to [70, 90]; y is untouched.
        assert_eq!(transform_box(&m, [10.0, 20.0, 30.0, 60.0]), Some([70.0, 20.0, 90.0, 60.0]));
    }

    #[test]
    fn small_rotation_moves_corners_as_computed_by_hand() {
        // 10 degrees counter-clockwise about the centre (50, 40) of a 100 x 80 image.
        // Corner (30, 20) is (-20, -20) from the centre; on screen (y down) a counter-
        // clockwise turn by a maps (dx, dy) to (dx cos a + dy sin a, -dx sin a + dy cos a):
        // cos 10 = 0.98480775, sin 10 = 0.17364818 -> (-23.169119, -16.223191)
        // -> (26.830881, 23.776809). OpenCV's getRotationMatrix2D turns the same way.
        let m = Warp { flip: false, degrees: 10.0, scale: 1.0, perspective: [0.0; 2] }.matrix(100.0, 80.0);
        let p = apply(&m, [30.0, 20.0]).unwrap();
        assert!(close(&p, &[26.830881, 23.776809], 1e-5), "{p:?}");
        // The box (30,20)-(70,60) is the square of half-side 20 about the centre: turned, its
        // corners reach 20 (cos + sin) = 23.169119 from the centre on each axis.
        let b = transform_box(&m, [30.0, 20.0, 70.0, 60.0]).unwrap();
        assert!(close(&b, &[26.830881, 16.830881, 73.169119, 63.169119], 1e-5), "{b:?}");
        // Scale 2 about the centre doubles distances from it.
        let m = Warp { flip: false, degrees: 0.0, scale: 2.0, perspective: [0.0; 2] }.matrix(100.0, 80.0);
        assert!(close(&transform_box(&m, [40.0, 30.0, 60.0, 50.0]).unwrap(), &[30.0, 20.0, 70.0, 60.0], 1e-9));
    }

    #[test]
    fn perspective_divides_by_w() {
        // P = [1 0 0; 0 1 0; 0.001 0 1]: the point 100 px right of the centre has w = 1.1.
        let m = Warp { flip: false, degrees: 0.0, scale: 1.0, perspective: [0.001, 0.0] }.matrix(400.0, 200.0);
        let p = apply(&m, [300.0, 150.0]).unwrap();
        assert!(close(&p, &[200.0 + 100.0 / 1.1, 100.0 + 50.0 / 1.1], 1e-9), "{p:?}");
        let inv = invert(&m).unwrap();
        assert!(close(&apply(&inv, p).unwrap(), &[300.0, 150.0], 1e-9));
        // Behind the horizon: w = 1 + 0.001 * (x - 200) <= 0 for x <= -800.
        assert_eq!(apply(&m, [-900.0, 0.0]), None);
    }

    #[test]
    fn polygons_are_clipped_to_the_image() {
        // A triangle poking out of the right edge of a 10 x 10 image.
        let clipped = clip_polygon(&[[5.0, 2.0], [15.0, 2.0], [5.0, 8.0]], 10.0, 10.0);
        assert!(close(&clipped.concat(), &[5.0, 2.0, 10.0, 2.0, 10.0, 5.0, 5.0, 8.0], 1e-12), "{clipped:?}");
        assert_eq!(polygon_area(&clipped), 22.5); // the triangle's 30 less the 7.5 cut off
        assert!(clip_polygon(&[[11.0, 1.0], [12.0, 1.0], [12.0, 2.0]], 10.0, 10.0).is_empty());
    }
}
