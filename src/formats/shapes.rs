//! labelme shapes as boxes: which shapes have one, and clipping boxes to the image.

use crate::formats::labelme::Shape;

/// `[xmin, ymin, xmax, ymax]` of some points; `None` when there are none or one is not finite.
pub fn bounds(points: impl IntoIterator<Item = [f64; 2]>) -> Option<[f64; 4]> {
    let mut b = [f64::INFINITY, f64::INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY];
    let mut any = false;
    for [x, y] in points {
        if !x.is_finite() || !y.is_finite() {
            return None;
        }
        b = [b[0].min(x), b[1].min(y), b[2].max(x), b[3].max(y)];
        any = true;
    }
    any.then_some(b)
}

/// The box of a labelme shape in pixels. Rectangles may have their two corners in any order
/// (labelme keeps the order they were dragged in) or all four corners (X-AnyLabeling);
/// polygons give their bounding box unless `polygons` is false. The error says why a shape
/// has no box, for the report.
pub fn shape_box(shape: &Shape, polygons: bool) -> Result<[f64; 4], String> {
    let n = shape.points.len();
    match shape.shape_type.as_str() {
        "rectangle" if n >= 2 => {}
        "rectangle" => return Err(format!("rectangle with {n} point{}", if n == 1 { "" } else { "s" })),
        "polygon" if !polygons => return Err("polygon left out (rectangles only asked for)".into()),
        "polygon" if n >= 3 => {}
        "polygon" => return Err(format!("polygon with {n} points")),
        other => return Err(format!("{other} shapes have no box (only rectangles and polygons convert)")),
    }
    bounds(shape.points.iter().copied()).ok_or_else(|| "a point is not a finite number".to_string())
}

/// The box clipped to a `width` x `height` image; `None` when nothing of it is left.
pub fn clip(b: [f64; 4], width: u32, height: u32) -> Option<[f64; 4]> {
    let (w, h) = (width as f64, height as f64);
    let c = [b[0].clamp(0.0, w), b[1].clamp(0.0, h), b[2].clamp(0.0, w), b[3].clamp(0.0, h)];
    (c[2] > c[0] && c[3] > c[1]).then_some(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(kind: &str, points: Vec<[f64; 2]>) -> Shape {
        let mut s: Shape = serde_json::from_str(r#"{"label": "a", "points": []}"#).unwrap();
        s.shape_type = kind.into();
        s.points = points;
        s
    }

    #[test]
    fn rectangles_in_any_corner_order_and_polygons() {
        let want = [10.0, 20.0, 30.0, 60.0];
        assert_eq!(shape_box(&shape("rectangle", vec![[10.0, 20.0], [30.0, 60.0]]), true), Ok(want));
        assert_eq!(shape_box(&shape("rectangle", vec![[30.0, 60.0], [10.0, 20.0]]), true), Ok(want));
        assert_eq!(shape_box(&shape("rectangle", vec![[30.0, 20.0], [10.0, 60.0]]), true), Ok(want));
        let poly = shape("polygon", vec![[12.0, 20.0], [30.0, 41.0], [10.0, 60.0]]);
        assert_eq!(shape_box(&poly, true), Ok(want));
        assert!(shape_box(&poly, false).unwrap_err().contains("polygon left out"));
        assert!(shape_box(&shape("point", vec![[1.0, 2.0]]), true).unwrap_err().contains("point shapes have no box"));
        assert!(shape_box(&shape("rectangle", vec![[1.0, 2.0]]), true).is_err());
    }

    #[test]
    fn clipping() {
        assert_eq!(clip([-5.0, 10.0, 120.0, 40.0], 100, 50), Some([0.0, 10.0, 100.0, 40.0]));
        assert_eq!(clip([110.0, 10.0, 120.0, 40.0], 100, 50), None);
        assert_eq!(clip([10.0, 10.0, 10.0, 40.0], 100, 50), None);
    }
}
