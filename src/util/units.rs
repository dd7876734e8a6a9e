//! Parsing of sizes and durations written the way engineers write them (`4KiB`, `1GiB`,
//! `30s`, `500ms`).

use std::time::Duration;

/// Parses a byte size: a plain number is bytes; suffixes `K`/`KiB`, `M`/`MiB`, `G`/`GiB`,
/// `T`/`TiB` are powers of 1024, `KB`/`MB`/`GB`/`TB` powers of 1000. Hex (`0x1000`) is
/// accepted for plain numbers.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, suffix) = if let Some(hex) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        (u64::from_str_radix(&hex.replace('_', ""), 16).map_err(|e| format!("`{s}`: {e}"))?, "")
    } else {
        let split = t.find(|c: char| !(c.is_ascii_digit() || c == '_')).unwrap_or(t.len());
        let n: u64 = t[..split].replace('_', "").parse().map_err(|e: std::num::ParseIntError| match e.kind() {
            std::num::IntErrorKind::PosOverflow => format!("`{s}` is {} bytes or more, beyond any size nvplan counts; give a smaller size", u64::MAX),
            _ => format!("`{s}` is not a size (expected e.g. 4096, 4KiB, 1GiB)"),
        })?;
        (n, t[split..].trim())
    };
    let mult: u64 = match suffix.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => return Err(format!("`{s}`: unknown size unit `{suffix}` (use B, KiB, MiB, GiB, TiB, KB, MB, GB or TB)")),
    };
    num.checked_mul(mult).ok_or_else(|| format!("`{s}` is {} bytes or more, beyond any size nvplan counts; give a smaller size", u64::MAX))
}

/// Parses a duration: a plain number is seconds (fractions allowed); suffixes `ns`, `us`,
/// `ms`, `s`, `m`/`min`, `h`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_')).unwrap_or(t.len());
    let num: f64 = t[..split].replace('_', "").parse().map_err(|_| format!("`{s}` is not a duration (expected e.g. 30, 30s, 500ms, 2h)"))?;
    let secs = match t[split..].trim().to_ascii_lowercase().as_str() {
        "" | "s" | "sec" => num,
        "ns" => num / 1e9,
        "us" | "µs" => num / 1e6,
        "ms" => num / 1e3,
        "m" | "min" => num * 60.0,
        "h" => num * 3600.0,
        other => return Err(format!("`{s}`: unknown time unit `{other}` (use ns, us, ms, s, min or h)")),
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("`{s}` is not a valid duration"));
    }
    Duration::try_from_secs_f64(secs).map_err(|_| format!("`{s}` is longer than any duration nvplan counts; give a shorter one"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_and_decimal_units() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("4KiB"), Ok(4096));
        assert_eq!(parse_size("4k"), Ok(4096));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("2 TiB"), Ok(2 << 40));
        assert_eq!(parse_size("1GB"), Ok(1_000_000_000));
        assert_eq!(parse_size("0x100000"), Ok(0x100000));
        assert!(parse_size("4 parsecs").is_err());
        assert!(parse_size("").is_err());
    }

    #[test]
    fn durations_parse_with_units_and_plain_seconds() {
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("5 fortnights").is_err());
        assert!(parse_duration("99999999999999999999999h").is_err(), "too long for a Duration: an error, not a panic");
    }
}
