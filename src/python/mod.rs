//! Python behaviours qdet reproduces exactly, because Ultralytics' outputs come from them:
//! the literals in ONNX metadata, `%g` number formatting and `str.splitlines()`.

mod literal;

pub use literal::{parse, PyValue};

/// Python's `"%.{precision}g" % v`. Ultralytics writes YOLO label numbers with `%g` (6
/// significant digits), so qdet's label files diff cleanly against `yolo predict
/// save_txt=True`; its val table uses `%.3g`.
pub fn format_g(v: f64, precision: usize) -> String {
    if v == 0.0 {
        return "0".into();
    }
    if !v.is_finite() {
        return v.to_string();
    }
    let p = precision.max(1);
    // The exponent after rounding to p significant digits decides fixed vs scientific.
    let sci = format!("{v:.*e}", p - 1);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if exp < -4 || exp >= p as i32 {
        let m = trim_zeros(mantissa);
        return format!("{m}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    }
    let decimals = (p as i32 - 1 - exp).max(0) as usize;
    trim_zeros(&format!("{v:.decimals$}")).to_string()
}

fn trim_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// Python's `str.splitlines()` line boundaries.
pub fn split_lines(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        match rest
            .find(['\n', '\r', '\u{0b}', '\u{0c}', '\u{1c}', '\u{1d}', '\u{1e}', '\u{85}', '\u{2028}', '\u{2029}'])
        {
            Some(i) => {
                out.push(&rest[..i]);
                let c = rest[i..].chars().next().unwrap_or('\n');
                let mut skip = c.len_utf8();
                if c == '\r' && rest[i + 1..].starts_with('\n') {
                    skip += 1;
                }
                rest = &rest[i + skip..];
            }
            None => {
                out.push(rest);
                break;
            }
        }
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
            assert_eq!(format_g(v, 6), want, "{v}");
        }
    }

    #[test]
    fn percent_3g_like_python() {
        for (v, want) in [
            (0.746, "0.746"),
            (0.57, "0.57"),
            (1.0, "1"),
            (0.0, "0"),
            (0.12345, "0.123"),
            (0.9996, "1"),
            (5e-5, "5e-05"),
            (0.00012, "0.00012"),
            (0.0009995, "0.000999"),
            (0.00099951, "0.001"),
            (123.4, "123"),
            (1234.5, "1.23e+03"),
        ] {
            assert_eq!(format_g(v, 3), want, "{v}");
        }
    }

    #[test]
    fn splitlines_boundaries() {
        // Python: "a\r\nb\rc\x0bd\u2028e\n".splitlines() == ['a', 'b', 'c', 'd', 'e']
        assert_eq!(split_lines("a\r\nb\rc\u{0b}d\u{2028}e\n"), ["a", "b", "c", "d", "e"]);
        assert_eq!(split_lines("\n\nx"), ["", "", "x"]);
        assert!(split_lines("").is_empty());
    }
}
