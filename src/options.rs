//! Option values as users type them, checked the same way on the command line and in the
//! HTTP API: inference sizes and thresholds.

/// An inference size: `640` or `H,W` (also `HxW`), each side from 1 to [`crate::model::MAX_IMGSZ`].
pub fn parse_imgsz(s: &str) -> Result<(usize, usize), String> {
    let bad = || format!("{s:?} is not a size like 640 or 384,640");
    let nums: Vec<usize> =
        s.split([',', 'x']).map(|p| p.trim().parse::<usize>().map_err(|_| bad())).collect::<Result<_, _>>()?;
    let max = crate::model::MAX_IMGSZ;
    if nums.iter().any(|&n| n > max) {
        return Err(format!("{s:?} is larger than {max}"));
    }
    match nums.as_slice() {
        [n] if *n > 0 => Ok((*n, *n)),
        [h, w] if *h > 0 && *w > 0 => Ok((*h, *w)),
        _ => Err(bad()),
    }
}

/// A rate such as frames per second: a finite number above 0.
pub fn parse_positive(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(v),
        _ => Err(format!("{s:?} is not a number above 0")),
    }
}

/// A confidence or IoU threshold: a number from 0 to 1.
pub fn parse_unit(s: &str) -> Result<f32, String> {
    match s.trim().parse::<f32>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("{s:?} is not a number between 0 and 1")),
    }
}

/// An address to listen on, `HOST:PORT`: an IP address (`0.0.0.0:32168`, `[::]:80`) or a
/// name the system resolves (`localhost:8080`), its first address.
pub fn parse_bind(s: &str) -> Result<std::net::SocketAddr, String> {
    use std::net::ToSocketAddrs;
    if let Ok(a) = s.parse() {
        return Ok(a);
    }
    let bad =
        |why: String| format!("{s:?} is not an address to listen on like 0.0.0.0:32168 or localhost:8080 ({why})");
    s.to_socket_addrs().map_err(|e| bad(e.to_string()))?.next().ok_or_else(|| bad("no address".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_addresses_by_ip_or_name() {
        assert_eq!(parse_bind("0.0.0.0:32168"), Ok("0.0.0.0:32168".parse().unwrap()));
        assert_eq!(parse_bind("[::1]:80"), Ok("[::1]:80".parse().unwrap()));
        let local = parse_bind("localhost:8080").unwrap();
        assert!(local.ip().is_loopback() && local.port() == 8080, "{local}");
        assert!(parse_bind("localhost").unwrap_err().contains("like 0.0.0.0:32168 or localhost:8080"));
        assert!(parse_bind("127.0.0.1:99999").is_err());
    }

    #[test]
    fn imgsz_forms() {
        assert_eq!(parse_imgsz("640"), Ok((640, 640)));
        assert_eq!(parse_imgsz("384,640"), Ok((384, 640)));
        assert_eq!(parse_imgsz("384x640"), Ok((384, 640)));
        assert!(parse_imgsz("0").is_err());
        assert!(parse_imgsz("640,0").is_err());
        assert!(parse_imgsz("1,2,3").is_err());
        assert!(parse_imgsz("4097").unwrap_err().contains("larger than 4096"));
        assert!(parse_imgsz("abc").is_err());
    }

    #[test]
    fn unit_range() {
        assert_eq!(parse_unit("0"), Ok(0.0));
        assert_eq!(parse_unit("1"), Ok(1.0));
        assert_eq!(parse_unit("0.25"), Ok(0.25));
        assert!(parse_unit("1.01").is_err());
        assert!(parse_unit("-0.1").is_err());
        assert!(parse_unit("NaN").is_err());
    }
}
