//! YOLO txt labels: one `class cx cy w h [conf]` line per box, normalized to the image size.

use crate::postprocess::Detection;

/// Ultralytics writes each number with Python's `%g` (6 significant digits); so does qdet,
/// so label files diff cleanly against `yolo predict save_txt=True`.
pub fn format_g(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    if !v.is_finite() {
        return v.to_string();
    }
    // The exponent after rounding to 6 significant digits decides fixed vs scientific.
    let sci = format!("{v:.5e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..6).contains(&exp) {
        let m = trim_zeros(mantissa);
        return format!("{m}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    }
    let decimals = (5 - exp).max(0) as usize;
    trim_zeros(&format!("{v:.decimals$}")).to_string()
}

fn trim_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// The label file text for detections on an image of `width` x `height` pixels.
/// No detections gives an empty string (an empty file: a background image for training).
pub fn detections_to_txt(dets: &[Detection], width: u32, height: u32, with_conf: bool) -> String {
    let (w, h) = (width as f32, height as f32);
    let mut out = String::new();
    for d in dets {
        let [x1, y1, x2, y2] = d.bbox;
        let nums = [((x1 + x2) / 2.0) / w, ((y1 + y2) / 2.0) / h, (x2 - x1) / w, (y2 - y1) / h];
        out.push_str(&d.class.to_string());
        for n in nums {
            out.push(' ');
            out.push_str(&format_g(n as f64));
        }
        if with_conf {
            out.push(' ');
            out.push_str(&format_g(d.score as f64));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_g_like_python() {
        // Each right-hand side is Python's '%g' % value.
        for (v, want) in [
            (0.5, "0.5"),
            (0.123456789, "0.123457"),
            (1.0, "1"),
            (12345678.0, "1.23457e+07"),
            (0.0001234567, "0.000123457"),
            (0.00001234567, "1.23457e-05"),
            (999999.5, "1e+06"),
            (0.99999949, "0.999999"),
            (0.9999996, "1"),
            (3.0, "3"),
            (100000.0, "100000"),
        ] {
            assert_eq!(format_g(v), want, "{v}");
        }
    }

    #[test]
    fn normalized_lines() {
        let d = Detection { bbox: [10.0, 20.0, 30.0, 60.0], score: 0.5, class: 3 };
        assert_eq!(detections_to_txt(&[d], 100, 200, false), "3 0.2 0.2 0.2 0.2\n");
        assert_eq!(detections_to_txt(&[d], 100, 200, true), "3 0.2 0.2 0.2 0.2 0.5\n");
        assert_eq!(detections_to_txt(&[], 100, 200, true), "");
    }
}
