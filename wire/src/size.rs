//! The size spelling of limits (`herd run --memory 64m`): shared by the CLI,
//! which parses what users type, and the agent.

/// Parse "64m", "1.5g", "64MiB", "64MB", "512k", "1048576" (bytes) into
/// bytes: k/m/g/t are powers of 1024 (as Docker's and Podman's `--memory`),
/// spelled alone, with `b`, or with `ib`, in any case; a decimal is rounded
/// down to a byte. None for anything else, a negative or an overflow.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    let s = s
        .strip_suffix("ib")
        .or_else(|| s.strip_suffix('b'))
        .unwrap_or(&s);
    let (num, shift) = match s.chars().last()? {
        'k' => (&s[..s.len() - 1], 10),
        'm' => (&s[..s.len() - 1], 20),
        'g' => (&s[..s.len() - 1], 30),
        't' => (&s[..s.len() - 1], 40),
        _ => (s, 0),
    };
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    if let Ok(n) = num.parse::<u64>() {
        return n.checked_mul(1u64 << shift);
    }
    let v: f64 = num.parse().ok()?;
    let bytes = v * (1u64 << shift) as f64;
    (bytes.is_finite() && bytes < u64::MAX as f64).then_some(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64m"), Some(64 << 20));
        assert_eq!(parse_size("1G"), Some(1 << 30));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("12x"), None);
        assert_eq!(parse_size("1.5g"), Some(3 << 29));
        assert_eq!(parse_size("64MiB"), Some(64 << 20));
        assert_eq!(parse_size("64MB"), Some(64 << 20));
        assert_eq!(parse_size("512KiB"), Some(512 << 10));
        assert_eq!(parse_size("-1m"), None);
        assert_eq!(parse_size("m"), None);
        assert_eq!(parse_size("1.2.3m"), None);
        assert_eq!(parse_size("99999999999t"), None);
        assert_eq!(parse_size(""), None);
    }
}
