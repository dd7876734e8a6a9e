//! Block sizes: `bs`, `bsrange` and `bssplit` as the sizes fio picks and how often, for
//! the directions a job uses.

use super::job::{self, Dirs, Job, Report};
use super::values;

/// The sizes of a job's I/Os in bytes, with their weights.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Sizes {
    Fixed(u64),
    Weighted(Vec<(u64, u32)>),
}

impl Sizes {
    pub(crate) fn min(&self) -> u64 {
        match self {
            Sizes::Fixed(b) => *b,
            Sizes::Weighted(v) => v.iter().map(|s| s.0).min().unwrap_or(4096),
        }
    }
    pub(crate) fn max(&self) -> u64 {
        match self {
            Sizes::Fixed(b) => *b,
            Sizes::Weighted(v) => v.iter().map(|s| s.0).max().unwrap_or(4096),
        }
    }
    /// Average size, weighted.
    pub(crate) fn mean(&self) -> f64 {
        match self {
            Sizes::Fixed(b) => *b as f64,
            Sizes::Weighted(v) => {
                let w: f64 = v.iter().map(|s| s.1 as f64).sum();
                v.iter().map(|s| s.0 as f64 * s.1 as f64).sum::<f64>() / w.max(1.0)
            }
        }
    }
}

/// Most sizes one worker gets from a range.
const MAX_SIZES: u64 = 4096;

/// fio's default block size.
pub(crate) const DEFAULT_BS: u64 = 4096;

/// The job's sizes for its directions, from whichever of bs, bsrange, bssplit is written
/// last (each one sets the sizes in fio); 4 KiB when none is. The option's name comes
/// back for comments.
pub(crate) fn sizes(job: &Job, dirs: Dirs, report: &mut Report) -> Option<(Sizes, &'static str)> {
    let kb = job.kb_base;
    let last = ["bs", "bsrange", "bssplit"].into_iter().filter(|n| job.get(n).is_some()).max_by_key(|n| job.pos(n));
    let unaligned = job.flag("bs_unaligned", report).unwrap_or(false);
    let s = match last {
        None => return Some((Sizes::Fixed(DEFAULT_BS), "bs")),
        Some("bs") => job::per_direction(job, "bs", dirs, report, Some(DEFAULT_BS), |t| positive(values::bytes(t, kb)?))?.map(Sizes::Fixed),
        Some("bsrange") => job::per_direction(job, "bsrange", dirs, report, Some((DEFAULT_BS, DEFAULT_BS)), |t| range(t, kb))?
            .and_then(|(lo, hi)| from_range(lo, hi).map_err(|m| report.refuse(job.at("bsrange"), "bsrange", m)).ok()),
        Some(_) => job::per_direction(job, "bssplit", dirs, report, Some(Sizes::Fixed(DEFAULT_BS)), |t| split(t, kb, unaligned))?,
    };
    s.map(|s| (s, last.unwrap_or("bs")))
}

fn positive(b: u64) -> Result<u64, String> {
    if b == 0 { Err("a block size of 0".into()) } else { Ok(b) }
}

fn range(t: &str, kb: u64) -> Result<(u64, u64), String> {
    let (lo, hi) = values::range(t, kb)?;
    Ok((positive(lo)?, hi))
}

/// fio picks `min + max x U` rounded down to a multiple of `min` and capped at `max`:
/// every multiple of `min` below `max` weighs `min`, and `max` takes the rest.
pub(crate) fn from_range(lo: u64, hi: u64) -> Result<Sizes, String> {
    if lo == hi {
        return Ok(Sizes::Fixed(lo));
    }
    let n = hi.div_ceil(lo);
    if n > MAX_SIZES {
        return Err(format!("{n} sizes between {lo} and {hi} bytes; a worker takes at most {MAX_SIZES}: use bssplit with the sizes that matter"));
    }
    // Values at or above the last multiple's start, n x lo, become `hi`: lo + hi - n x lo.
    let mut v: Vec<(u64, u64)> = (1..n).map(|k| (k * lo, lo)).collect();
    v.push((hi, (lo as u128 + hi as u128 - n as u128 * lo as u128) as u64));
    let g = v.iter().fold(0, |g, s| gcd(g, s.1));
    Ok(Sizes::Weighted(v.into_iter().map(|(s, w)| (s, (w / g.max(1)) as u32)).collect()))
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// One direction of `bssplit`: `size/percent:size/percent`, blanks filled as fio does
/// (what is left over, divided evenly), and what is still missing from 100 % going to the
/// size with the largest share, where fio's pick ends when the shares run out.
pub(crate) fn split(t: &str, kb: u64, unaligned: bool) -> Result<Sizes, String> {
    let entries = values::split_entries(t);
    if entries.is_empty() {
        return Ok(Sizes::Fixed(DEFAULT_BS));
    }
    if entries.len() > 64 {
        return Err(format!("{} sizes; fio takes at most 64", entries.len()));
    }
    let mut v: Vec<(u64, Option<u64>)> = Vec::new();
    for (s, p) in &entries {
        let b = positive(values::bytes(s, kb)?)?;
        // fio reads the share with atoi: leading digits, 0 (or none) is "fill in".
        let digits: String = p.as_deref().unwrap_or("").trim().chars().take_while(char::is_ascii_digit).collect();
        let perc = digits.parse::<u64>().unwrap_or(0).min(100);
        v.push((b, (perc > 0).then_some(perc)));
    }
    let given: u64 = v.iter().filter_map(|e| e.1).sum();
    let missing = v.iter().filter(|e| e.1.is_none()).count() as u64;
    if given > 100 {
        return Err(format!("the shares add up to {given}%, more than 100%"));
    }
    if v.len() == 1 {
        return Ok(Sizes::Fixed(v[0].0));
    }
    let fill = (100 - given).checked_div(missing).unwrap_or(0);
    let mut w: Vec<(u64, u64)> = v.iter().map(|&(b, p)| (b, p.unwrap_or(fill))).collect();
    let total: u64 = w.iter().map(|e| e.1).sum();
    if total < 100 {
        // The last of the largest shares in fio's sorted order gets the rest.
        let top = w.iter().map(|e| e.1).max().unwrap_or(0);
        if let Some(i) = w.iter().rposition(|e| e.1 == top) {
            w[i].1 += 100 - total;
        }
    }
    let (min, max) = (v.iter().map(|e| e.0).min().unwrap_or(1), v.iter().map(|e| e.0).max().unwrap_or(1));
    let mut out: Vec<(u64, u32)> = Vec::new();
    for (b, p) in w.into_iter().filter(|e| e.1 > 0) {
        let b = if unaligned { b } else { (b - b % min).min(max) };
        match out.iter_mut().find(|e| e.0 == b) {
            Some(e) => e.1 += p as u32,
            None => out.push((b, p as u32)),
        }
    }
    Ok(match out.as_slice() {
        [] => Sizes::Fixed(min),
        [(b, _)] => Sizes::Fixed(*b),
        _ => Sizes::Weighted(out),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_range_weighs_every_multiple_of_the_smallest_size_equally() {
        assert_eq!(from_range(4096, 16384), Ok(Sizes::Weighted(vec![(4096, 1), (8192, 1), (12288, 1), (16384, 1)])));
        // 4k-10k: 4k and 8k each 4/10, 10k the remaining 2/10.
        assert_eq!(from_range(4096, 10240), Ok(Sizes::Weighted(vec![(4096, 2), (8192, 2), (10240, 1)])));
        assert!(from_range(1, 1 << 20).unwrap_err().contains("at most"));
    }

    #[test]
    fn blank_shares_split_what_is_left_and_the_rest_goes_to_the_largest() {
        assert_eq!(split("4k/50:1k/:32k/", 1024, false), Ok(Sizes::Weighted(vec![(4096, 50), (1024, 25), (32768, 25)])));
        // 100 - 40 = 60 over three blanks: 20 each.
        assert_eq!(split("4k/40:8k:16k:32k", 1024, false), Ok(Sizes::Weighted(vec![(4096, 40), (8192, 20), (16384, 20), (32768, 20)])));
        // 10 + 10 = 20: fio's pick falls through to the last of the largest shares.
        assert_eq!(split("4k/10:8k/10", 1024, false), Ok(Sizes::Weighted(vec![(4096, 10), (8192, 90)])));
        assert!(split("4k/60:8k/60", 1024, false).is_err());
        assert_eq!(split("64k", 1024, false), Ok(Sizes::Fixed(65536)));
    }

    #[test]
    fn split_sizes_are_rounded_down_to_the_smallest_as_fio_does() {
        assert_eq!(split("4k/50:6k/50", 1024, false), Ok(Sizes::Fixed(4096)));
        assert_eq!(split("4k/50:6k/50", 1024, true), Ok(Sizes::Weighted(vec![(4096, 50), (6144, 50)])));
    }
}
