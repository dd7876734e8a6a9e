//! fio's `random_distribution` as nvplan's `distribution`: 100 weights, one per 1 % of the
//! namespace, summing to 10000.
//!
//! `zoned` and `zoned_abs` zones whose edges fall on 1 % of the namespace carry over
//! exactly: each zone's share of the I/O is spread evenly over its buckets (a share that
//! does not divide evenly puts the remainder in its first buckets, one unit of 1/10000
//! each). `zipf`, `pareto` and `normal` carry over as the mass of their documented
//! distributions per 1 % of fio's value range, hottest values first; fio scatters those
//! values over the file with a hash, nvplan lays them out in order, and all LBAs of one
//! bucket are equally likely.

use super::job::{self, Dirs, Job, Report};
use super::region::Region;
use super::values;

/// One zone: its share of the I/O in percent and where it lies, in LBAs of the namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Zone {
    pub access: u32,
    pub start: u64,
    pub end: u64,
}

/// A distribution mapped onto 100 buckets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Buckets {
    pub weights: Vec<u32>,
    /// Every zone edge fell on a bucket edge (zoned) / always false for the others.
    pub exact: bool,
}

/// Splits `total` units over `n` slots as evenly as whole units allow, the remainder in the
/// first slots.
fn even(total: u64, n: usize) -> Vec<u64> {
    let n64 = n.max(1) as u64;
    (0..n as u64).map(|i| total / n64 + u64::from(i < total % n64)).collect()
}

/// Rounds masses (summing to about 1) to whole units of 1/10000 that sum to exactly
/// 10000: each bucket gets its floor, the units left go to the largest remainders.
pub(crate) fn quantize(mass: &[f64]) -> Vec<u32> {
    let total: f64 = mass.iter().sum();
    let scaled: Vec<f64> = mass.iter().map(|m| if total > 0.0 { m / total * 10000.0 } else { 100.0 }).collect();
    let mut w: Vec<u32> = scaled.iter().map(|x| x.floor().max(0.0) as u32).collect();
    let mut left = 10000i64 - w.iter().map(|&x| x as i64).sum::<i64>();
    let mut order: Vec<usize> = (0..w.len()).collect();
    order.sort_by(|&a, &b| (scaled[b] - scaled[b].floor()).total_cmp(&(scaled[a] - scaled[a].floor())).then(a.cmp(&b)));
    let mut i = 0;
    while left > 0 && !order.is_empty() {
        w[order[i % order.len()]] += 1;
        left -= 1;
        i += 1;
    }
    w
}

/// The LBA where bucket `k` (0..=100) begins, as nvplan's generator cuts the namespace.
pub(crate) fn bucket_edge(nsze: u64, k: u64) -> u64 {
    if k >= 100 { nsze } else { nsze / 100 * k }
}

/// Maps zones (in LBAs of a namespace of `nsze` LBAs) onto buckets.
pub(crate) fn zones(z: &[Zone], nsze: u64) -> Buckets {
    // A zone edge is on a bucket edge when it is at most one LBA from one.
    let on_edge = |lba: u64| -> Option<u64> {
        let k = ((lba as f64) * 100.0 / nsze.max(1) as f64).round() as u64;
        let k = k.min(100);
        let e = nsze as f64 * k as f64 / 100.0;
        ((lba as f64 - e).abs() <= 1.0).then_some(k)
    };
    let edges: Option<Vec<(u64, u64)>> = z.iter().map(|z| Some((on_edge(z.start)?, on_edge(z.end)?))).collect();
    if let Some(edges) = edges
        && z.iter().zip(&edges).all(|(z, &(a, b))| b > a || z.access == 0)
    {
        let mut w = vec![0u64; 100];
        for (z, &(a, b)) in z.iter().zip(&edges) {
            if b > a {
                for (i, x) in even(z.access as u64 * 100, (b - a) as usize).into_iter().enumerate() {
                    w[a as usize + i] += x;
                }
            }
        }
        if w.iter().sum::<u64>() == 10000 {
            return Buckets { weights: w.into_iter().map(|x| x as u32).collect(), exact: true };
        }
    }
    // Edges inside buckets: each bucket gets the zones' I/O in proportion to its overlap.
    let mut mass = vec![0f64; 100];
    for z in z.iter().filter(|z| z.end > z.start) {
        let len = (z.end - z.start) as f64;
        for (k, m) in mass.iter_mut().enumerate() {
            let (bs, be) = (bucket_edge(nsze, k as u64), bucket_edge(nsze, k as u64 + 1));
            let overlap = z.end.min(be).saturating_sub(z.start.max(bs)) as f64;
            *m += z.access as f64 / 100.0 * overlap / len;
        }
    }
    Buckets { weights: quantize(&mass), exact: false }
}

/// Sums of k^-theta for k = 1..=e at each of the ascending `edges`, in one pass: exact up
/// to 10000 terms, then the integral of the rest (midpoint rule; its error is far below
/// 1/10000 of the total).
fn harmonic_at(edges: &[u64], theta: f64) -> Vec<f64> {
    const EXACT: u64 = 10_000;
    let integral = |a: f64, b: f64| if (theta - 1.0).abs() < 1e-12 { (b / a).ln() } else { (b.powf(1.0 - theta) - a.powf(1.0 - theta)) / (1.0 - theta) };
    let mut out = Vec::with_capacity(edges.len());
    let (mut k, mut s) = (0u64, 0f64);
    for &e in edges {
        while k < e.min(EXACT) {
            k += 1;
            s += (k as f64).powf(-theta);
        }
        out.push(if e > EXACT { s + integral(EXACT as f64 + 0.5, e as f64 + 0.5) } else { s });
    }
    out
}

fn rotate(mut w: Vec<f64>, by: f64) -> Vec<f64> {
    let k = (by * 100.0).round().rem_euclid(100.0) as usize;
    w.rotate_right(k);
    w
}

/// zipf:theta over `n` values (blocks of the smallest size): rank 1 is the hottest.
pub(crate) fn zipf(theta: f64, center: Option<f64>, n: u64) -> Buckets {
    let n = n.max(1);
    let edges: Vec<u64> = (0..=100u64).map(|j| (n as u128 * j as u128 / 100) as u64).collect();
    let h = harmonic_at(&edges, theta);
    let total = h[100];
    let mass: Vec<f64> = (0..100).map(|j| (h[j + 1] - h[j]) / total).collect();
    Buckets { weights: quantize(&rotate(mass, center.unwrap_or(0.0))), exact: false }
}

/// pareto:h: fio draws (n-1) * U^p with p = ln(h)/ln(1-h), so a value fraction x has
/// probability x^(1/p) of being below it.
pub(crate) fn pareto(h: f64, center: Option<f64>) -> Buckets {
    let p = h.ln() / (1.0 - h).ln();
    let cdf = |x: f64| x.powf(1.0 / p);
    let mass: Vec<f64> = (0..100).map(|j| cdf((j + 1) as f64 / 100.0) - cdf(j as f64 / 100.0)).collect();
    Buckets { weights: quantize(&rotate(mass, center.unwrap_or(0.0))), exact: false }
}

/// Cumulative distribution of the mean of 12 uniform values on [0, 1] (Irwin-Hall / 12).
fn mean12_cdf(x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    // The sum below cancels badly near 1: use the symmetry around 1/2.
    if x > 0.5 {
        return 1.0 - mean12_cdf(1.0 - x);
    }
    let y = 12.0 * x;
    let mut s = 0.0;
    let mut binom = 1.0;
    let mut fact = 1.0;
    for i in 1..=12 {
        fact *= i as f64;
    }
    for k in 0..=12u32 {
        if (k as f64) > y {
            break;
        }
        let term = binom * (y - k as f64).powi(12);
        s += if k % 2 == 0 { term } else { -term };
        binom = binom * (12 - k) as f64 / (k + 1) as f64;
    }
    (s / fact).clamp(0.0, 1.0)
}

/// normal:dev: fio averages 12 uniform values over its range and adds a uniform spread of
/// `dev` % of the range (at most half of it), centred on `center` (default the middle).
pub(crate) fn normal(dev: f64, center: Option<f64>) -> Buckets {
    let d = (dev / 100.0).min(0.5);
    let cdf = |x: f64| {
        if d == 0.0 {
            return mean12_cdf(x);
        }
        // Average over the spread (Simpson's rule on 200 intervals).
        let n = 200;
        let h = d / n as f64;
        let mut s = 0.0;
        for i in 0..=n {
            let u = -d / 2.0 + i as f64 * h;
            let w = if i == 0 || i == n {
                1.0
            } else if i % 2 == 1 {
                4.0
            } else {
                2.0
            };
            s += w * mean12_cdf(x - u);
        }
        s * h / 3.0 / d
    };
    let at: Vec<f64> = (0..=100).map(|j| cdf(j as f64 / 100.0)).collect();
    let mass: Vec<f64> = at.windows(2).map(|w| w[1] - w[0]).collect();
    Buckets { weights: quantize(&rotate(mass, center.map_or(0.0, |c| c - 0.5))), exact: false }
}

/// A job's `random_distribution` as 100 bucket weights, or why not (reported).
#[allow(clippy::too_many_arguments)]
pub(crate) fn from_job(job: &Job, dirs: Dirs, reg: &Region, ns_bytes: u64, lba: u64, min_bs: u64, pct_random: u8, report: &mut Report) -> Option<Vec<u32>> {
    let text = job.text("random_distribution")?.trim();
    let at = job.at("random_distribution");
    let (kind, arg) = match text.split_once([':', '=']) {
        Some((k, a)) => (k.trim(), a.trim()),
        None => (text, ""),
    };
    if kind == "random" {
        return None;
    }
    if pct_random == 0 {
        report.warn(at, "random_distribution", "ignored: the job does no random I/O");
        return None;
    }
    if pct_random != 100 {
        report.refuse(at, "random_distribution", "nvplan's distribution places random I/O only: it needs percentage_random=100");
        return None;
    }
    let nsze = ns_bytes / lba;
    let (rs, re) = (reg.start / lba, reg.end / lba);
    let one_arg = |a: &str| -> Result<(f64, Option<f64>), String> {
        let mut p = a.split(':').map(str::trim);
        let v = p.next().filter(|s| !s.is_empty()).map(|s| s.parse::<f64>().map_err(|_| format!("`{s}` is not a number"))).transpose()?;
        let c = p.next().map(|s| s.parse::<f64>().map_err(|_| format!("`{s}` is not a number"))).transpose()?;
        if c.is_some_and(|c| !(0.0..=1.0).contains(&c)) {
            return Err("the center is between 0 and 1".into());
        }
        Ok((v.unwrap_or(f64::NAN), c))
    };
    let buckets = match kind {
        "zoned" | "zoned_abs" => {
            let abs = kind == "zoned_abs";
            let parsed = job::per_direction(job, "random_distribution", dirs, report, None, |t| {
                let t = t.strip_prefix(kind).map(|t| t.trim_start_matches([':', '='])).unwrap_or(t);
                zones_of(t, abs, job.kb_base, rs, re, lba)
            });
            // No zones for the job's directions: fio draws uniformly (or the error is reported).
            let Some(Some(z)) = parsed else { return None };
            zones(&z, nsze)
        }
        "zipf" | "pareto" | "normal" | "gauss" => {
            if !reg.whole {
                report.refuse(
                    at,
                    "random_distribution",
                    "nvplan's distribution spreads over the whole namespace; this job has a region (size/offset): leave them out, or use a zoned distribution",
                );
                return None;
            }
            let (v, c) = match one_arg(arg) {
                Ok(x) => x,
                Err(m) => {
                    report.refuse(at, "random_distribution", m);
                    return None;
                }
            };
            let b = match kind {
                "zipf" => {
                    let t = if v.is_nan() { 1.1 } else { v };
                    if t == 1.0 || t < 0.0 {
                        report.refuse(at, "random_distribution", "zipf theta is 0 or more and not 1");
                        return None;
                    }
                    zipf(t, c, (re - rs) * lba / min_bs.max(1))
                }
                "pareto" => {
                    let h = if v.is_nan() { 0.2 } else { v };
                    if !(h > 0.0 && h < 1.0) {
                        report.refuse(at, "random_distribution", "pareto's h is between 0 and 1");
                        return None;
                    }
                    pareto(h, c)
                }
                _ => {
                    let d = if v.is_nan() { 0.0 } else { v };
                    if !(0.0..100.0).contains(&d) {
                        report.refuse(at, "random_distribution", "normal's deviation is 0 to 100");
                        return None;
                    }
                    normal(d, c)
                }
            };
            report.warn(
                at,
                "random_distribution",
                format!("{kind}: the plan gives each 1 % of the namespace the share of I/O fio's {kind} gives 1 % of its values, hottest first; fio scatters hot blocks with a hash, and within each 1 % nvplan's offsets are uniform"),
            );
            b
        }
        _ => {
            report.refuse(at, "random_distribution", format!("`{kind}` is not one of fio's distributions (random, zipf, pareto, normal, zoned, zoned_abs)"));
            return None;
        }
    };
    if !buckets.exact && kind.starts_with("zoned") {
        report.warn(at, "random_distribution", "a zone edge falls inside a 1 % bucket of the namespace: that bucket's share is split by overlap");
    }
    Some(buckets.weights)
}

/// `access/size:access/size` in LBAs of the namespace, within the region.
fn zones_of(t: &str, abs: bool, kb: u64, rs: u64, re: u64, lba: u64) -> Result<Vec<Zone>, String> {
    let entries = values::split_entries(t);
    if entries.is_empty() || entries.len() > 256 {
        return Err("give 1 to 256 zones as access/size, e.g. zoned:60/10:30/20:10/70".into());
    }
    let mut parsed: Vec<(u32, Option<u64>)> = Vec::new();
    for (a, s) in &entries {
        let access = values::percent(a)? as u32;
        let size = match s.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(s) if abs => Some(values::bytes(s, kb)? / lba),
            Some(s) => {
                let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
                digits.parse::<u64>().ok().map(|p| p.min(100)).filter(|&p| p > 0)
            }
        };
        parsed.push((access, size));
    }
    let access: u32 = parsed.iter().map(|p| p.0).sum();
    if access != 100 {
        return Err(format!("the zones' accesses add up to {access}%; fio wants exactly 100%"));
    }
    let len = re - rs;
    let mut out = Vec::new();
    if abs {
        let mut at = rs;
        for (a, s) in parsed {
            let s = s.unwrap_or(0);
            if s == 0 && a > 0 {
                return Err("a zone with accesses needs a size (access/size)".into());
            }
            let end = at.saturating_add(s);
            if end > re {
                return Err("the zones are larger than the region (fio stops: zoned_abs sizes exceed file size)".into());
            }
            out.push(Zone { access: a, start: at, end });
            at = end;
        }
        return Ok(out);
    }
    let given: u64 = parsed.iter().filter_map(|p| p.1).sum();
    if given > 100 {
        return Err(format!("the zones' sizes add up to {given}%, more than 100%"));
    }
    let missing = parsed.iter().filter(|p| p.1.is_none()).count() as u64;
    let fill = (100 - given).checked_div(missing).unwrap_or(0);
    let mut perc = 0u64;
    for (a, s) in parsed {
        let s = s.unwrap_or(fill);
        if s == 0 && a > 0 {
            return Err("a zone with accesses has no size left (the sizes already add up to 100%)".into());
        }
        let start = rs + len * perc / 100;
        perc += s;
        out.push(Zone { access: a, start, end: rs + len * perc / 100 });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(w: &[u32]) -> u32 {
        w.iter().sum()
    }

    #[test]
    fn jesd219_zones_give_the_reference_distribution() {
        let n = 2_097_152; // 1 GiB of 512-byte LBAs
        let at = |p: u64| n * p / 100;
        let z = [Zone { access: 50, start: 0, end: at(5) }, Zone { access: 30, start: at(5), end: at(20) }, Zone { access: 20, start: at(20), end: n }];
        let b = zones(&z, n);
        assert!(b.exact);
        let mut want = vec![1000; 5];
        want.extend([200; 15]);
        want.extend([25; 80]);
        assert_eq!(b.weights, want);
    }

    #[test]
    fn zones_that_do_not_divide_evenly_keep_their_share_exactly() {
        let n = 1000;
        let z = [Zone { access: 50, start: 0, end: 30 }, Zone { access: 50, start: 30, end: 1000 }];
        let b = zones(&z, n);
        assert!(b.exact);
        assert_eq!(b.weights[..3], [1667, 1667, 1666]);
        assert_eq!(sum(&b.weights[..3]), 5000);
        assert_eq!(sum(&b.weights), 10000);
    }

    #[test]
    fn zone_edges_inside_buckets_are_spread_by_overlap_and_flagged() {
        let b = zones(&[Zone { access: 60, start: 0, end: 15 }, Zone { access: 40, start: 15, end: 1000 }], 1000);
        assert!(!b.exact);
        assert_eq!(sum(&b.weights), 10000);
        assert_eq!(b.weights[0], 4000);
        assert!((2020..=2021).contains(&b.weights[1]), "{:?}", &b.weights[..3]);
    }

    #[test]
    fn zipf_pareto_and_normal_are_skewed_as_documented() {
        let z = zipf(1.2, None, 327_680);
        assert_eq!(sum(&z.weights), 10000);
        assert!(z.weights[0] > 5000, "{:?}", &z.weights[..5]);
        assert!(z.weights.windows(2).all(|w| w[0] >= w[1]), "hottest first");
        let flat = zipf(0.0, None, 1_000_000);
        assert!(flat.weights.iter().all(|&w| w == 100), "{:?}", flat.weights);
        let p = pareto(0.2, None);
        assert_eq!(sum(&p.weights), 10000);
        assert!(p.weights[0] > p.weights[99]);
        let g = normal(0.0, None);
        assert_eq!(sum(&g.weights), 10000);
        // The mean of 12 uniform values has a deviation of 1/12: about 4.8 % per 1 % at the peak.
        assert!((460..=490).contains(&g.weights[49]) && g.weights[0] == 0 && g.weights[99] == 0, "{:?}", g.weights);
        assert_eq!(g.weights[..50].iter().rev().collect::<Vec<_>>(), g.weights[50..].iter().collect::<Vec<_>>(), "symmetric");
        let wide = normal(50.0, None);
        assert!(wide.weights[49] < g.weights[49], "a spread flattens the peak");
        let moved = normal(0.0, Some(0.75));
        assert_eq!(moved.weights[74], g.weights[49]);
    }
}
