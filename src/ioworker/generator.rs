//! Address, size and opcode generation (PyNVMe's `ioworker.c` semantics, with the
//! deviations documented on [`Generator::next`]).

use super::config::{IoWorkerConfig, Resolved, SeqIo};
use crate::util::rng::Rng;

/// One I/O to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Io {
    /// Starting LBA.
    pub slba: u64,
    /// Number of LBAs (1-based).
    pub nlb: u32,
    /// Opcode.
    pub opcode: u8,
    /// For `io_sequence` entries: send time, µs after the start.
    pub at_us: Option<u64>,
}

/// Deterministic generator of the I/O stream of one worker.
#[derive(Debug)]
pub(crate) struct Generator {
    rng: Rng,
    /// 10000 slots: one opcode per 1/100 %.
    op_table: Vec<u8>,
    /// `(size, align)` and cumulative weights.
    sizes: Vec<(u32, u32)>,
    size_cum: Vec<u64>,
    lba_random: u64,
    step: Option<i64>,
    regions: Vec<(u64, u64)>,
    region_cum: Vec<u64>,
    cursor: u64,
    region: usize,
    /// 10000 slots: one 1 % bucket index per 1/10000 of the I/Os.
    dist: Option<Vec<u8>>,
    nsze: u64,
    seq: Option<(Vec<SeqIo>, usize)>,
}

// Alignments are nearly always powers of two: a mask then, not a division per I/O.
#[inline]
fn align_up(n: u64, a: u64) -> u64 {
    if a.is_power_of_two() { (n + a - 1) & !(a - 1) } else { n.div_ceil(a) * a }
}

#[inline]
fn align_down(n: u64, a: u64) -> u64 {
    if a.is_power_of_two() { n & !(a - 1) } else { n - n % a }
}

impl Generator {
    pub(crate) fn new(c: &IoWorkerConfig, r: &Resolved, nsze: u64) -> Self {
        let (lba_start, lba_random, lba_step, seed) = (c.lba_start, c.lba_random, c.lba_step, c.seed);
        let (distribution, sequence) = (c.distribution.as_deref(), c.io_sequence.as_deref());
        let mut op_table = Vec::with_capacity(10000);
        for &(op, w) in &r.ops {
            op_table.extend(std::iter::repeat_n(op, w as usize));
        }
        let mut acc = 0u64;
        let size_cum = r.sizes.iter().map(|s| {
            acc += s.1 as u64;
            acc
        });
        let size_cum: Vec<u64> = size_cum.collect();
        let mut acc = 0u64;
        let region_cum: Vec<u64> = r
            .regions
            .iter()
            .map(|&(s, e)| {
                acc += e - s;
                acc
            })
            .collect();
        let dist = distribution.map(|d| {
            let mut t = Vec::with_capacity(10000);
            for (i, &w) in d.iter().enumerate() {
                t.extend(std::iter::repeat_n(i as u8, w as usize));
            }
            t
        });
        // The sequential cursor starts at lba_start, in the region that holds it (or the
        // first region when it lies before every region).
        let start = lba_start.unwrap_or(r.regions[0].0);
        let region = r.regions.iter().position(|&(s, e)| start >= s && start < e).unwrap_or(0);
        let cursor = start.max(r.regions[region].0);
        Generator {
            rng: Rng::new(seed),
            op_table,
            sizes: r.sizes.iter().map(|s| (s.0, s.2)).collect(),
            size_cum,
            lba_random: lba_random as u64,
            step: lba_step,
            regions: r.regions.clone(),
            region_cum,
            cursor,
            region,
            dist,
            nsze,
            seq: sequence.map(|s| (s.to_vec(), 0)),
        }
    }

    /// The next I/O, or `None` when an `io_sequence` is exhausted.
    ///
    /// Per I/O the random draws come in PyNVMe's order: opcode, size, random or
    /// sequential, distribution bucket, LBA. The starting LBA is aligned up (or down when
    /// that would leave the region) and the size truncated at the region end.
    /// Deviations from PyNVMe, on purpose:
    /// - a negative `lba_step` that walks below the region start continues from the top of
    ///   the region, instead of sticking at the region start;
    /// - with several regions, random I/O picks a region in proportion to its size, and
    ///   sequential I/O walks them in order, moving on at each region's end.
    ///
    /// `uncorrectable(lba)` tells whether an LBA is marked uncorrectable; sequential I/O
    /// steps over such starting LBAs, as PyNVMe does.
    #[inline]
    pub(crate) fn next(&mut self, uncorrectable: impl Fn(u64) -> bool) -> Option<Io> {
        if let Some((seq, i)) = &mut self.seq {
            let s = *seq.get(*i)?;
            *i += 1;
            return Some(Io { slba: s.slba, nlb: s.nlb, opcode: s.opcode, at_us: Some(s.time_sent_us) });
        }
        let opcode = self.op_table[self.rng.below(self.op_table.len() as u64) as usize];
        let si = if self.sizes.len() == 1 {
            0
        } else {
            let total = *self.size_cum.last().expect("sizes");
            let x = self.rng.below(total);
            self.size_cum.partition_point(|&c| c <= x)
        };
        let (nlb, align) = self.sizes[si];
        let (nlb, align) = (nlb as u64, align as u64);
        let random = self.lba_random == 100 || (self.lba_random > 0 && self.rng.below(100) < self.lba_random);
        let (slba, (rs, re)) = if random { self.random_lba() } else { self.sequential_lba(&uncorrectable) };
        let mut slba = align_up(slba, align);
        if slba >= re {
            slba = align_down(slba - 1, align).max(rs);
        }
        if !random {
            let next = match self.step {
                None => slba as i128 + nlb as i128,
                Some(s) => slba as i128 + s as i128,
            };
            self.advance(next);
        }
        let nlb = nlb.min(re - slba) as u32;
        Some(Io { slba, nlb, opcode, at_us: None })
    }

    fn random_lba(&mut self) -> (u64, (u64, u64)) {
        if let Some(d) = &self.dist {
            let bucket = d[self.rng.below(d.len() as u64) as usize] as u64;
            let section = self.nsze / 100;
            let start = section * bucket;
            let end = if bucket == 99 { self.nsze } else { start + section };
            let slba = start + self.rng.below((end - start).max(1));
            return (slba, (0, self.nsze));
        }
        let r = if self.regions.len() == 1 {
            0
        } else {
            let x = self.rng.below(*self.region_cum.last().expect("regions"));
            self.region_cum.partition_point(|&c| c <= x)
        };
        let (s, e) = self.regions[r];
        (s + self.rng.below(e - s), (s, e))
    }

    fn sequential_lba(&mut self, uncorrectable: &impl Fn(u64) -> bool) -> (u64, (u64, u64)) {
        let (s, e) = self.regions[self.region];
        let mut slba = self.cursor;
        if slba >= e {
            // Ran past the region's end: continue at the next region (or wrap).
            self.region = (self.region + 1) % self.regions.len();
            slba = self.regions[self.region].0;
        } else if slba < s {
            slba = s;
        }
        let (s, e) = self.regions[self.region];
        while slba + 1 < e && uncorrectable(slba) {
            slba += 1;
        }
        (slba, (s, e))
    }

    /// Moves the sequential cursor; walking below the region start continues at the top.
    fn advance(&mut self, next: i128) {
        let (s, e) = self.regions[self.region];
        if next < s as i128 {
            // Downward past the start: the previous region's (or the last region's) top.
            self.region = (self.region + self.regions.len() - 1) % self.regions.len();
            let (_, pe) = self.regions[self.region];
            self.cursor = pe - 1;
        } else if next >= e as i128 {
            self.cursor = e;
        } else {
            self.cursor = next as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ioworker::config::IoSize;
    use std::time::Duration;

    fn gen_for(c: IoWorkerConfig, nsze: u64) -> Generator {
        let r = c.resolve(nsze, 4096).unwrap();
        Generator::new(&c, &r, nsze)
    }

    fn seq(c: IoWorkerConfig, nsze: u64, n: usize) -> Vec<(u64, u32)> {
        let mut g = gen_for(c, nsze);
        (0..n).map(|_| g.next(|_| false).map(|io| (io.slba, io.nlb)).unwrap()).collect()
    }

    fn base() -> IoWorkerConfig {
        IoWorkerConfig { time: Some(Duration::from_secs(1)), lba_random: 0, ..Default::default() }
    }

    #[test]
    fn lba_step_negative_walks_down() {
        let c = IoWorkerConfig { io_size: IoSize::Fixed(1), lba_start: Some(10), lba_step: Some(-1), ..base() };
        let v: Vec<u64> = seq(c, 1000, 10).into_iter().map(|x| x.0).collect();
        assert_eq!(v, (1..=10).rev().collect::<Vec<_>>());
    }

    #[test]
    fn lba_step_negative_below_region_start_continues_at_the_top() {
        let c = IoWorkerConfig { io_size: IoSize::Fixed(1), lba_start: Some(1), lba_step: Some(-1), region_end: vec![100], ..base() };
        let v: Vec<u64> = seq(c, 1000, 4).into_iter().map(|x| x.0).collect();
        assert_eq!(v, vec![1, 0, 99, 98]);
    }

    #[test]
    fn lba_step_zero_repeats_one_lba_and_positive_steps_leave_gaps() {
        let c = IoWorkerConfig { lba_start: Some(100), lba_step: Some(0), ..base() };
        assert!(seq(c, 1000, 20).iter().all(|&(l, n)| l == 100 && n == 8));
        let c = IoWorkerConfig { io_size: IoSize::Fixed(8), lba_step: Some(16), ..base() };
        assert_eq!(seq(c, 1000, 4), vec![(0, 8), (16, 8), (32, 8), (48, 8)]);
        let c = IoWorkerConfig { io_size: IoSize::Fixed(1), lba_step: Some(5), ..base() };
        assert_eq!(seq(c, 1000, 10).last().unwrap().0, 45);
    }

    #[test]
    fn sequential_truncates_at_region_end_and_wraps() {
        let c = IoWorkerConfig { io_size: IoSize::Fixed(8), region_end: vec![41], ..base() };
        let v = seq(c, 1000, 7);
        assert_eq!(v[5], (40, 1));
        assert_eq!(v[6], (0, 8));
        let c = IoWorkerConfig { io_size: IoSize::Fixed(128), region_end: vec![129], ..base() };
        assert_eq!(seq(c, 1000, 4), vec![(0, 128), (128, 1), (0, 128), (128, 1)]);
    }

    #[test]
    fn random_io_stays_aligned_and_inside_the_region() {
        let c = IoWorkerConfig { lba_random: 100, io_size: IoSize::Fixed(128), region_end: vec![100], ..base() };
        assert!(seq(c, 1000, 200).iter().all(|&(l, n)| l + n as u64 == 100), "every I/O is truncated at the region end");
        let c = IoWorkerConfig { lba_random: 100, lba_align: vec![8], region_start: vec![3], region_end: vec![1003], ..base() };
        for (l, n) in seq(c, 2000, 2000) {
            assert_eq!(l % 8, 0);
            assert!(l >= 8 && l + n as u64 <= 1003);
        }
    }

    #[test]
    fn two_regions_both_get_io_and_nothing_leaves_them() {
        let c = IoWorkerConfig { lba_random: 100, region_start: vec![0x10, 0x1010], region_end: vec![0x100, 0x1100], ..base() };
        let v = seq(c, 0x2000, 2000);
        let in_a = v.iter().filter(|x| (0x10..0x100).contains(&x.0)).count();
        let in_b = v.iter().filter(|x| (0x1010..0x1100).contains(&x.0)).count();
        assert_eq!(in_a + in_b, 2000);
        assert!(in_a > 800 && in_b > 800, "{in_a} {in_b}");
        assert!(v.iter().all(|&(l, n)| l + n as u64 <= 0x100 || (l >= 0x1010 && l + n as u64 <= 0x1100)));
    }

    #[test]
    fn sequential_walks_regions_in_order_exactly_once_per_pass() {
        let c = IoWorkerConfig { io_size: IoSize::Fixed(8), region_start: vec![0, 100], region_end: vec![20, 116], ..base() };
        assert_eq!(seq(c, 1000, 6), vec![(0, 8), (8, 8), (16, 4), (100, 8), (108, 8), (0, 8)]);
    }

    #[test]
    fn sequential_steps_over_uncorrectable_start_lbas() {
        let c = IoWorkerConfig { io_size: IoSize::Fixed(1), ..base() };
        let mut g = gen_for(c, 100);
        let unc = |l: u64| (3..6).contains(&l);
        let v: Vec<u64> = (0..6).map(|_| g.next(unc).unwrap().slba).collect();
        assert_eq!(v, vec![0, 1, 2, 6, 7, 8]);
    }

    #[test]
    fn jedec_distribution_puts_half_the_io_in_the_first_5_percent() {
        let mut d = vec![1000u32; 5];
        d.extend([200; 15]);
        d.extend([25; 80]);
        let c = IoWorkerConfig { lba_random: 100, distribution: Some(d), ..base() };
        let nsze = 1_000_000;
        let v = seq(c, nsze, 100_000);
        let first5 = v.iter().filter(|x| x.0 < nsze / 20).count() as f64 / 1e5;
        let next15 = v.iter().filter(|x| x.0 >= nsze / 20 && x.0 < nsze / 5).count() as f64 / 1e5;
        assert!((first5 - 0.5).abs() < 0.01, "{first5}");
        assert!((next15 - 0.3).abs() < 0.01, "{next15}");
    }

    #[test]
    fn size_and_opcode_mixes_follow_their_weights() {
        let c = IoWorkerConfig {
            lba_random: 100,
            io_size: IoSize::Weighted(vec![(8, 50), (16, 25), (256, 25)]),
            op_percentage: Some(vec![(2, 40.0), (1, 30.0), (9, 30.0)]),
            ..base()
        };
        let mut g = gen_for(c, 1 << 30);
        let ios: Vec<Io> = (0..100_000).map(|_| g.next(|_| false).unwrap()).collect();
        let frac = |f: &dyn Fn(&Io) -> bool| ios.iter().filter(|i| f(i)).count() as f64 / 1e5;
        assert!((frac(&|i| i.nlb == 8) - 0.5).abs() < 0.01);
        assert!((frac(&|i| i.nlb == 256) - 0.25).abs() < 0.01);
        assert!((frac(&|i| i.opcode == 9) - 0.3).abs() < 0.01);
        assert!((frac(&|i| i.opcode == 2) - 0.4).abs() < 0.01);
    }

    #[test]
    fn same_seed_same_stream_and_half_random_mixes() {
        let c = IoWorkerConfig { lba_random: 50, ..base() };
        let a = seq(c.clone(), 1 << 20, 1000);
        assert_eq!(a, seq(c.clone(), 1 << 20, 1000));
        assert_ne!(a, seq(IoWorkerConfig { seed: 2, ..c }, 1 << 20, 1000));
        // Sequential ones continue where the previous sequential one ended.
        let seqs: Vec<u64> = a.iter().map(|x| x.0).filter(|l| l % 8 == 0 && *l < 8000).collect();
        assert!(seqs.len() > 400);
    }

    #[test]
    fn io_sequence_is_replayed_then_ends() {
        let s = vec![SeqIo { slba: 0, nlb: 1, opcode: 2, time_sent_us: 0 }, SeqIo { slba: 0, nlb: 1, opcode: 1, time_sent_us: 1_000_000 }];
        let c = IoWorkerConfig { io_sequence: Some(s), time: None, ..base() };
        let mut g = gen_for(c, 100);
        assert_eq!(g.next(|_| false).unwrap(), Io { slba: 0, nlb: 1, opcode: 2, at_us: Some(0) });
        assert_eq!(g.next(|_| false).unwrap().at_us, Some(1_000_000));
        assert_eq!(g.next(|_| false), None);
    }
}
