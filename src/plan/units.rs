//! Values with units in plans: LBA amounts, durations, opcodes and status codes.

use std::time::Duration;

use super::model::{DurationValue, LbaValue};
use crate::util::units::{parse_duration, parse_size};

/// Opcode names a plan may use (I/O command set).
pub const OPCODE_NAMES: [(&str, u8); 9] = [
    ("flush", 0x00),
    ("write", 0x01),
    ("read", 0x02),
    ("write_uncorrectable", 0x04),
    ("compare", 0x05),
    ("write_zeroes", 0x08),
    ("dsm", 0x09),
    ("deallocate", 0x09),
    ("verify", 0x0c),
];

/// An opcode written as a name (`read`), a number (`2`) or hex (`0x02`).
pub fn opcode(text: &str) -> Result<u8, String> {
    let t = text.trim();
    let lower = t.to_ascii_lowercase();
    if let Some(&(_, op)) = OPCODE_NAMES.iter().find(|n| n.0 == lower) {
        return Ok(op);
    }
    let n = match lower.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => lower.parse::<u64>().ok(),
    };
    match n {
        Some(n) => u8::try_from(n).map_err(|_| format!("opcode {t} is above 0xff")),
        None => {
            let names = OPCODE_NAMES.iter().map(|n| n.0).collect::<Vec<_>>();
            let hint = super::error::suggest(&lower, names.iter().copied()).map(|s| format!("did you mean `{s}`? ")).unwrap_or_default();
            Err(format!("unknown opcode `{t}`; {hint}opcodes are numbers (2, 0x02) or {}", names.join(", ")))
        }
    }
}

/// An amount as written: LBAs, or bytes that need the LBA size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Amount {
    /// LBAs (a number, a number in a string, or hex).
    Lbas(u64),
    /// Bytes (a number with a unit).
    Bytes(u64),
}

/// Reads an LBA value without converting units. A bare number, quoted or not, counts LBAs;
/// bytes need a unit (`512B`, `4KiB`).
pub fn amount(v: &LbaValue) -> Result<Amount, String> {
    let t = match v {
        LbaValue::Lbas(n) => return Ok(Amount::Lbas(*n)),
        LbaValue::Text(t) => t.trim(),
    };
    let clean = t.replace('_', "");
    if let Some(h) = clean.strip_prefix("0x").or_else(|| clean.strip_prefix("0X")) {
        return u64::from_str_radix(h, 16).map(Amount::Lbas).map_err(|_| {
            if !h.is_empty() && h.bytes().all(|b| b.is_ascii_hexdigit()) {
                format!("`{t}` is above 0xffffffffffffffff, the largest LBA count")
            } else {
                format!("`{t}` is not a hexadecimal LBA count (digits 0-9 and a-f after 0x)")
            }
        });
    }
    if !clean.is_empty() && clean.bytes().all(|b| b.is_ascii_digit()) {
        return clean.parse().map(Amount::Lbas).map_err(|_| format!("`{t}` is above {}, the largest LBA count", u64::MAX));
    }
    parse_size(t).map(Amount::Bytes)
}

/// Bytes in words: `4 KiB`, `1 MiB`, or plain bytes.
pub fn bytes(b: u64) -> String {
    for (shift, unit) in [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")] {
        if b >= 1 << shift && b.is_multiple_of(1 << shift) {
            return format!("{} {unit}", b >> shift);
        }
    }
    format!("{b} bytes")
}

/// An LBA value in LBAs of `lba_size` bytes; bytes that are not whole LBAs are an error
/// that names the nearest values that are.
pub fn to_lbas(v: &LbaValue, lba_size: usize) -> Result<u64, String> {
    match amount(v)? {
        Amount::Lbas(n) => Ok(n),
        Amount::Bytes(b) => {
            let l = lba_size.max(1) as u64;
            if b % l == 0 {
                return Ok(b / l);
            }
            let down = b / l * l;
            let up = down + l;
            let lower = if down > 0 { format!("{} ({}) or ", bytes(down), lbas(down / l)) } else { String::new() };
            Err(format!("{} is not a whole number of {l}-byte LBAs; use {lower}{} ({})", bytes(b), bytes(up), lbas(up / l)))
        }
    }
}

/// `1 LBA`, `8 LBAs`.
pub fn lbas(n: u64) -> String {
    if n == 1 { "1 LBA".into() } else { format!("{n} LBAs") }
}

/// Longest duration a plan may give anything (as the I/O worker's longest run).
pub const MAX_DURATION: Duration = crate::ioworker::config::MAX_TIME;

/// A duration as written (seconds, or with a unit).
pub fn duration(v: &DurationValue) -> Result<Duration, String> {
    let d = match v {
        DurationValue::Seconds(s) => {
            if !s.is_finite() || *s < 0.0 {
                return Err(format!("{s} is not a duration; give seconds (0 or more) or a number with a unit like 30s"));
            }
            Duration::try_from_secs_f64(*s).map_err(|_| format!("{s} seconds is more than 1000 hours; split the run"))?
        }
        DurationValue::Text(t) => parse_duration(t)?,
    };
    if d > MAX_DURATION {
        return Err(format!("{} is more than 1000 hours; split the run", fmt_duration(d)));
    }
    Ok(d)
}

/// `slow_latency`: a plain number is microseconds, as in the seed
/// (`slow_latency=2_000_000` is 2 s); with a unit, any duration.
pub fn slow_latency(v: &DurationValue) -> Result<Duration, String> {
    match v {
        DurationValue::Seconds(us) => duration(&DurationValue::Seconds(us / 1e6)),
        DurationValue::Text(_) => duration(v),
    }
}

/// `d` times `scale`, for `--time-scale`.
pub fn scale(d: Duration, scale: f64) -> Duration {
    Duration::try_from_secs_f64(d.as_secs_f64() * scale).unwrap_or(MAX_DURATION)
}

/// A duration in the shortest plain form (`1.5s`, `200ms`).
pub fn fmt_duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 1.0 || s == 0.0 {
        format!("{}s", (s * 1e6).round() / 1e6)
    } else if s >= 1e-3 {
        format!("{}ms", (s * 1e9).round() / 1e6)
    } else {
        format!("{}us", (s * 1e9).round() / 1e3)
    }
}

/// An NVMe status written `SCT/SC` in hex (`02/81`, `0x2/0x81`): (status code type, status
/// code).
pub fn parse_status(text: &str) -> Result<(u8, u8), String> {
    let bad = || format!("`{text}` is not a status; write SCT/SC in hex, e.g. 00/00 (success) or 02/81 (unrecovered read error)");
    let (sct, sc) = text.trim().split_once('/').ok_or_else(bad)?;
    let hex = |s: &str| {
        let s = s.trim();
        let s = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")).unwrap_or(s);
        if s.is_empty() || s.len() > 2 { None } else { u8::from_str_radix(s, 16).ok() }
    };
    let (sct, sc) = (hex(sct).ok_or_else(bad)?, hex(sc).ok_or_else(bad)?);
    if sct > 7 {
        return Err(format!("`{text}`: status code type {sct:#x} is above 7 (it is 3 bits)"));
    }
    Ok((sct, sc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_latency_plain_numbers_are_microseconds_as_in_the_seed() {
        assert_eq!(slow_latency(&DurationValue::Seconds(2_000_000.0)), Ok(Duration::from_secs(2)));
        assert_eq!(slow_latency(&DurationValue::Text("2s".into())), Ok(Duration::from_secs(2)));
        assert_eq!(slow_latency(&DurationValue::Text("500us".into())), Ok(Duration::from_micros(500)));
    }

    #[test]
    fn lba_values_convert_with_the_lba_size() {
        let t = |s: &str| LbaValue::Text(s.into());
        assert_eq!(to_lbas(&LbaValue::Lbas(8), 4096), Ok(8));
        assert_eq!(to_lbas(&t("8"), 512), Ok(8), "a quoted number counts LBAs");
        assert_eq!(to_lbas(&t("0x100"), 512), Ok(0x100));
        assert_eq!(to_lbas(&t("4KiB"), 512), Ok(8));
        assert_eq!(to_lbas(&t("4KiB"), 4096), Ok(1));
        assert_eq!(to_lbas(&t("1GB"), 512), Ok(1_953_125));
        assert_eq!(to_lbas(&t("512B"), 512), Ok(1));
        let e = to_lbas(&t("6KiB"), 4096).unwrap_err();
        assert_eq!(e, "6 KiB is not a whole number of 4096-byte LBAs; use 4 KiB (1 LBA) or 8 KiB (2 LBAs)");
        let e = to_lbas(&t("100B"), 512).unwrap_err();
        assert_eq!(e, "100 bytes is not a whole number of 512-byte LBAs; use 512 bytes (1 LBA)");
        assert!(to_lbas(&t("4 parsecs"), 512).is_err());
    }

    #[test]
    fn opcodes_by_name_number_or_hex() {
        assert_eq!(opcode("read"), Ok(2));
        assert_eq!(opcode("Deallocate"), Ok(9));
        assert_eq!(opcode("9"), Ok(9));
        assert_eq!(opcode("0x0c"), Ok(12));
        assert!(opcode("256").is_err());
        assert!(opcode("reed").unwrap_err().contains("did you mean `read`?"));
    }

    #[test]
    fn durations_and_statuses() {
        assert_eq!(duration(&DurationValue::Seconds(1.5)), Ok(Duration::from_millis(1500)));
        assert_eq!(duration(&DurationValue::Text("250ms".into())), Ok(Duration::from_millis(250)));
        assert!(duration(&DurationValue::Seconds(1e300)).is_err());
        assert!(duration(&DurationValue::Text("1001h".into())).is_err());
        assert_eq!(scale(Duration::from_secs(10), 0.1), Duration::from_secs(1));
        assert_eq!(fmt_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(fmt_duration(Duration::from_millis(200)), "200ms");
        assert_eq!(parse_status("02/81"), Ok((2, 0x81)));
        assert_eq!(parse_status("0x2/0x81"), Ok((2, 0x81)));
        assert_eq!(parse_status(" 0/0 "), Ok((0, 0)));
        assert!(parse_status("0281").is_err());
        assert!(parse_status("8/00").is_err());
        assert!(parse_status("02/181").is_err());
    }
}
