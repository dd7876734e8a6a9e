//! fio's value syntax: sizes with its unit rules (`4k`, `1m`, `4kib`, `%`), times, ranges,
//! per-direction lists (`8k,32k`), `size/weight` splits, booleans, CPU lists, and the
//! arithmetic in parentheses. Every parser returns a message naming what is wrong; none
//! panics on any input.

use std::time::Duration;

/// A size as fio reads it: bytes, or a percentage of the file or device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Amount {
    /// Bytes.
    Bytes(u64),
    /// Percent of the file or device (fio takes 1 to 100).
    Percent(u64),
}

/// Longest text any value may have (fio's own limit on an option line is 8 KiB).
const MAX_VALUE: usize = 8192;

/// Parses an integer with fio's size suffixes. `kb_base` is 1024 (fio's default) or 1000.
///
/// fio reads the suffix case-insensitively: `k`, `m`, `g`, `t`, `p` (and `kb`, `mb`, ...)
/// are powers of `kb_base`; `kib`, `mib`, ... are powers of the other base (with the
/// default base, `4kib` is 4000 bytes, as fio's compatibility mode has it). fio's parser
/// reads `ki` without the `b` as `k`, so `4ki` is 4096 with the default base.
pub(crate) fn size(text: &str, kb_base: u64) -> Result<Amount, String> {
    let t = text.trim();
    if t.len() > MAX_VALUE {
        return Err("value too long".into());
    }
    if t.starts_with('(') {
        let v = expr(t)?;
        if !(v.is_finite() && (0.0..1.8e19).contains(&v)) {
            return Err(format!("`{t}` is {v}, not a size"));
        }
        return Ok(Amount::Bytes(v as u64));
    }
    if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        return u64::from_str_radix(h, 16).map(Amount::Bytes).map_err(|_| format!("`{t}` is not a hexadecimal number"));
    }
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, suffix) = t.split_at(split);
    if digits.is_empty() {
        return Err(format!("`{t}` is not a number (expected e.g. 4096, 4k, 1m, 50%)"));
    }
    if suffix.starts_with('.') {
        return Err(format!("`{t}`: fio takes whole numbers here and would read this as {digits}; write it in a smaller unit (e.g. 1536m for 1.5g)"));
    }
    let n: u64 = digits.parse().map_err(|_| format!("`{t}` is too large"))?;
    let suffix = suffix.trim().to_ascii_lowercase();
    if suffix == "%" {
        return Ok(Amount::Percent(n));
    }
    if suffix == "z" {
        return Err(format!("`{t}`: zones (z) count in zonemode=zbd, which has no equivalent"));
    }
    let other = if kb_base == 1000 { 1024 } else { 1000 };
    let (pow, base) = match suffix.as_str() {
        "" | "b" => (0, 1),
        s if s.len() == 3 && s.ends_with("ib") => match &s[..1] {
            "k" => (1, other),
            "m" => (2, other),
            "g" => (3, other),
            "t" => (4, other),
            "p" => (5, other),
            _ => return Err(unit_error(t)),
        },
        "k" | "kb" | "ki" => (1, kb_base),
        "m" | "mb" | "mi" => (2, kb_base),
        "g" | "gb" | "gi" => (3, kb_base),
        "t" | "tb" | "ti" => (4, kb_base),
        "p" | "pb" | "pi" => (5, kb_base),
        _ => return Err(unit_error(t)),
    };
    let mult = (0..pow).try_fold(1u64, |m, _| m.checked_mul(base)).ok_or_else(|| format!("`{t}` is too large"))?;
    n.checked_mul(mult).map(Amount::Bytes).ok_or_else(|| format!("`{t}` is too large"))
}

fn unit_error(t: &str) -> String {
    format!("`{t}`: unknown unit (fio's are k, m, g, t, p, with an optional b or ib, and %)")
}

/// A size that must be bytes (no percentage).
pub(crate) fn bytes(text: &str, kb_base: u64) -> Result<u64, String> {
    match size(text, kb_base)? {
        Amount::Bytes(b) => Ok(b),
        Amount::Percent(_) => Err(format!("`{}`: a percentage is not allowed here; give bytes", text.trim())),
    }
}

/// A plain count (`number_ios`, `numjobs`): decimal or hex, fio's suffixes multiply.
pub(crate) fn count(text: &str, kb_base: u64) -> Result<u64, String> {
    bytes(text, kb_base)
}

/// A time: a number with `d`, `h`, `m`, `s`, `ms`/`msec`, `us`/`usec`; without a unit,
/// `default_unit` (seconds for most options, microseconds for a few).
pub(crate) fn time(text: &str, default_unit: Duration) -> Result<Duration, String> {
    let t = text.trim();
    if t.len() > MAX_VALUE {
        return Err("value too long".into());
    }
    if t.starts_with('(') {
        // fio evaluates time expressions in microseconds.
        let v = expr(t)?;
        return Duration::try_from_secs_f64(v / 1e6).map_err(|_| format!("`{t}` is {v}, not a time"));
    }
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, suffix) = t.split_at(split);
    let n: u64 = digits.parse().map_err(|_| format!("`{t}` is not a time (expected e.g. 30, 30s, 500ms, 2m, 1h)"))?;
    let unit = match suffix.trim().to_ascii_lowercase().as_str() {
        "" => default_unit,
        "us" | "usec" => Duration::from_micros(1),
        "ms" | "msec" => Duration::from_millis(1),
        "s" | "sec" => Duration::from_secs(1),
        "m" | "min" => Duration::from_secs(60),
        "h" => Duration::from_secs(3600),
        "d" => Duration::from_secs(86400),
        _ => return Err(format!("`{t}`: unknown time unit (fio's are d, h, m, s, ms, us)")),
    };
    u32::try_from(n).ok().and_then(|n| unit.checked_mul(n)).ok_or_else(|| format!("`{t}` is too long"))
}

/// A boolean: fio takes 0 and 1; `true`/`false`, `yes`/`no`, `on`/`off` are read too.
pub(crate) fn boolean(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        t => match t.parse::<i64>() {
            Ok(n) => Ok(n != 0),
            Err(_) => Err(format!("`{}` is not a boolean; use 1 or 0", text.trim())),
        },
    }
}

/// An integer percentage 0-100.
pub(crate) fn percent(text: &str) -> Result<u8, String> {
    let t = text.trim();
    match t.parse::<u64>() {
        Ok(n) if n <= 100 => Ok(n as u8),
        Ok(n) => Err(format!("{n} is above 100 (a percentage)")),
        Err(_) => Err(format!("`{t}` is not a whole percentage (0 to 100)")),
    }
}

/// Values for reads, writes and trims, as fio's comma lists work: `a` is all three; `a,b`
/// reads `a`, writes and trims `b`; `a,b,c` one each; an empty entry keeps the default,
/// and a list that ends in a comma leaves the later directions at their defaults.
pub(crate) fn per_direction(text: &str) -> [Option<String>; 3] {
    let parts: Vec<&str> = text.split(',').map(str::trim).collect();
    let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
    match parts.as_slice() {
        [a] => [some(a), some(a), some(a)],
        [a, b] => [some(a), some(b), some(b)],
        [a, b, c, ..] => [some(a), some(b), some(c)],
        [] => [None, None, None],
    }
}

/// `low-high` or `low:high` (swapped when given the wrong way round, as fio does).
pub(crate) fn range(text: &str, kb_base: u64) -> Result<(u64, u64), String> {
    let t = text.trim();
    let (a, b) = t.split_once(['-', ':']).ok_or_else(|| format!("`{t}` is not a range; write low-high, e.g. 4k-128k"))?;
    let (a, b) = (bytes(a, kb_base)?, bytes(b, kb_base)?);
    Ok((a.min(b), a.max(b)))
}

/// One `value/percent` entry of a split (`bssplit`, `zoned`); the percent is `None` when
/// left blank (fio divides what remains among the blank ones).
pub(crate) fn split_entries(text: &str) -> Vec<(String, Option<String>)> {
    text.split(':')
        .map(str::trim)
        .take_while(|s| !s.is_empty())
        .map(|e| match e.split_once('/') {
            Some((v, p)) => (v.trim().to_string(), Some(p.trim().to_string())),
            None => (e.to_string(), None),
        })
        .collect()
}

/// A colon-separated list of floats (`percentile_list=99:99.9`).
pub(crate) fn float_list(text: &str) -> Result<Vec<f64>, String> {
    text.split(':')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<f64>().ok().filter(|f| f.is_finite()).ok_or_else(|| format!("`{s}` is not a number")))
        .collect()
}

/// Evaluates fio's arithmetic: `+ - * / % ^` and parentheses over numbers.
pub(crate) fn expr(text: &str) -> Result<f64, String> {
    let tokens: Vec<char> = text.chars().filter(|c| !c.is_whitespace()).collect();
    if tokens.len() > 1024 {
        return Err("expression too long".into());
    }
    let mut p = Expr { t: &tokens, i: 0, depth: 0 };
    let v = p.sum()?;
    if p.i != tokens.len() {
        return Err(format!("`{}`: cannot read the expression from `{}`", text.trim(), tokens[p.i..].iter().collect::<String>()));
    }
    Ok(v)
}

struct Expr<'a> {
    t: &'a [char],
    i: usize,
    depth: usize,
}

impl Expr<'_> {
    fn peek(&self) -> Option<char> {
        self.t.get(self.i).copied()
    }
    fn sum(&mut self) -> Result<f64, String> {
        let mut v = self.product()?;
        while let Some(c @ ('+' | '-')) = self.peek() {
            self.i += 1;
            let r = self.product()?;
            v = if c == '+' { v + r } else { v - r };
        }
        Ok(v)
    }
    fn product(&mut self) -> Result<f64, String> {
        let mut v = self.power()?;
        while let Some(c @ ('*' | '/' | '%')) = self.peek() {
            self.i += 1;
            let r = self.power()?;
            if c != '*' && r == 0.0 {
                return Err("division by zero in an expression".into());
            }
            v = match c {
                '*' => v * r,
                '/' => v / r,
                _ => v % r,
            };
        }
        Ok(v)
    }
    fn power(&mut self) -> Result<f64, String> {
        let b = self.unary()?;
        if self.peek() == Some('^') {
            self.i += 1;
            let e = self.power()?;
            return Ok(b.powf(e));
        }
        Ok(b)
    }
    fn unary(&mut self) -> Result<f64, String> {
        if self.peek() == Some('-') {
            self.i += 1;
            return Ok(-self.unary()?);
        }
        self.atom()
    }
    fn atom(&mut self) -> Result<f64, String> {
        if self.peek() == Some('(') {
            self.depth += 1;
            if self.depth > 64 {
                return Err("expression nested too deeply".into());
            }
            self.i += 1;
            let v = self.sum()?;
            if self.peek() != Some(')') {
                return Err("missing `)` in an expression".into());
            }
            self.i += 1;
            self.depth -= 1;
            return Ok(v);
        }
        let start = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_digit() || c == '.') {
            self.i += 1;
        }
        let s: String = self.t[start..self.i].iter().collect();
        s.parse::<f64>().map_err(|_| if s.is_empty() { "a number is missing in an expression".into() } else { format!("`{s}` is not a number") })
    }
}

/// Bytes in the plan's notation: `4KiB`, `1GiB`, or `1536B` when no binary unit fits.
pub(crate) fn plan_bytes(b: u64) -> String {
    for (shift, unit) in [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")] {
        if b >= 1 << shift && b.is_multiple_of(1 << shift) {
            return format!("{}{unit}", b >> shift);
        }
    }
    format!("{b}B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_fios_unit_rules_with_kb_base_1024() {
        let b = |t: &str| size(t, 1024).unwrap();
        assert_eq!(b("4096"), Amount::Bytes(4096));
        assert_eq!(b("4k"), Amount::Bytes(4096));
        assert_eq!(b("4K"), Amount::Bytes(4096));
        assert_eq!(b("4kb"), Amount::Bytes(4096));
        assert_eq!(b("1m"), Amount::Bytes(1 << 20));
        assert_eq!(b("10G"), Amount::Bytes(10 << 30));
        assert_eq!(b("4ki"), Amount::Bytes(4096), "fio's parser reads ki as k");
        assert_eq!(b("4kib"), Amount::Bytes(4000), "IEC prefixes are decimal in fio's compatibility mode");
        assert_eq!(b("1MiB"), Amount::Bytes(1_000_000));
        assert_eq!(b("0x1000"), Amount::Bytes(4096));
        assert_eq!(b("50%"), Amount::Percent(50));
        assert_eq!(b("(8*512)"), Amount::Bytes(4096));
    }

    #[test]
    fn kb_base_1000_swaps_the_meaning_of_the_prefixes() {
        assert_eq!(size("4k", 1000), Ok(Amount::Bytes(4000)));
        assert_eq!(size("4kib", 1000), Ok(Amount::Bytes(4096)));
    }

    #[test]
    fn bad_sizes_are_errors_that_say_why() {
        assert!(size("1.5g", 1024).unwrap_err().contains("whole numbers"));
        assert!(size("4x", 1024).unwrap_err().contains("unknown unit"));
        assert!(size("", 1024).is_err());
        assert!(size("99999999999999999999", 1024).is_err());
        assert!(size("100000000p", 1024).unwrap_err().contains("too large"));
    }

    #[test]
    fn times_take_fios_units_and_a_default_unit() {
        let s = Duration::from_secs(1);
        assert_eq!(time("900", s), Ok(Duration::from_secs(900)));
        assert_eq!(time("10m", s), Ok(Duration::from_secs(600)), "m is minutes for times");
        assert_eq!(time("500ms", s), Ok(Duration::from_millis(500)));
        assert_eq!(time("2h", s), Ok(Duration::from_secs(7200)));
        assert_eq!(time("1d", s), Ok(Duration::from_secs(86400)));
        assert_eq!(time("500", Duration::from_micros(1)), Ok(Duration::from_micros(500)));
        assert!(time("5 fortnights", s).is_err());
        assert!(time("99999999999999999999", s).is_err());
    }

    #[test]
    fn per_direction_lists_fill_later_directions_unless_ended_by_a_comma() {
        let s = |v: [Option<String>; 3]| v.map(|x| x.unwrap_or_else(|| "-".into())).join(" ");
        assert_eq!(s(per_direction("256k")), "256k 256k 256k");
        assert_eq!(s(per_direction("8k,32k")), "8k 32k 32k");
        assert_eq!(s(per_direction("8k,32k,")), "8k 32k -");
        assert_eq!(s(per_direction(",8k")), "- 8k 8k");
        assert_eq!(s(per_direction(",8k,")), "- 8k -");
    }

    #[test]
    fn ranges_splits_cpus_and_expressions() {
        assert_eq!(range("4k-128k", 1024), Ok((4096, 131072)));
        assert_eq!(range("128k:4k", 1024), Ok((4096, 131072)), "swapped as fio does");
        assert_eq!(split_entries("4k/50:1k/:32k"), vec![("4k".into(), Some("50".into())), ("1k".into(), Some("".into())), ("32k".into(), None)]);
        assert_eq!(expr("(1+2)*3^2"), Ok(27.0));
        assert_eq!(expr("(10%4)"), Ok(2.0));
        assert!(expr("(1/0)").is_err());
        assert!(expr("((((1").is_err());
        assert_eq!(float_list("99:99.9"), Ok(vec![99.0, 99.9]));
    }

    #[test]
    fn plan_bytes_uses_the_largest_exact_binary_unit() {
        assert_eq!(plan_bytes(4096), "4KiB");
        assert_eq!(plan_bytes(1536), "1536B");
        assert_eq!(plan_bytes(10 << 30), "10GiB");
        assert_eq!(plan_bytes(0), "0B");
    }
}
