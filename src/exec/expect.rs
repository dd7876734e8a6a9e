//! Pass/fail: a plan's expectations checked against what the workers did.

use crate::ioworker::{IoWorkerResult, code};
use crate::nvme::Status;
use crate::plan::model::ExpectSpec;
use crate::plan::units::parse_status;

use super::summary::Check;

/// I/O of one worker, for the checks.
#[derive(Debug)]
pub struct Measured<'a> {
    /// The result.
    pub result: &'a IoWorkerResult,
    /// LBA size of its namespace.
    pub lba_size: usize,
}

impl Measured<'_> {
    /// Bytes read and written.
    pub fn bytes(&self) -> u64 {
        (self.result.lba_count_read + self.result.lba_count_write) * self.lba_size as u64
    }
    /// MB/s (10^6 bytes) over the worker's run time.
    pub fn mbps(&self) -> f64 {
        if self.result.mseconds == 0 { 0.0 } else { self.bytes() as f64 / 1e3 / self.result.mseconds as f64 }
    }
}

fn check(what: impl Into<String>, expected: impl Into<String>, actual: impl Into<String>, pass: bool) -> Check {
    Check { what: what.into(), expected: expected.into(), actual: actual.into(), pass }
}

/// Status of the first failure of a worker, `SCT/SC`.
fn first_status(r: &IoWorkerResult) -> Option<(u8, u8)> {
    if r.error == 0 || r.error_cpl == [0; 4] {
        return None;
    }
    let s = Status::from_dw3(r.error_cpl[3]);
    Some((s.sct(), s.sc()))
}

fn fmt_status(s: Option<(u8, u8)>) -> String {
    s.map_or("none".into(), |(t, c)| format!("{t:02x}/{c:02x}"))
}

/// The checks of one worker: its own expectations, and unless they say otherwise, that it
/// ended without error (a stop by a planned reset or power loss, with `on_reset: stop`,
/// is no error: `stopped_by` names the event).
pub fn worker(m: &Measured<'_>, e: Option<&ExpectSpec>, stopped_by: Option<&str>) -> Vec<Check> {
    let r = m.result;
    let mut v = Vec::new();
    let explicit = e.is_some_and(|e| e.error_code.is_some() || e.error_status.is_some());
    if !explicit {
        let stopped = stopped_by.filter(|_| r.error == code::TERMINATED);
        let expected = match stopped {
            Some(ev) => format!("0, or -7 when stopped by event `{ev}`"),
            None => "0".into(),
        };
        let actual = match &r.error_message {
            Some(m) => format!("{}: {m}", r.error),
            None => r.error.to_string(),
        };
        v.push(check("error", expected, actual, r.error == 0 || stopped.is_some()));
    }
    if let Some(e) = e {
        v.extend(common(e, std::slice::from_ref(m)));
    }
    v
}

/// The checks of a phase, over all its workers.
pub fn phase(workers: &[Measured<'_>], e: &ExpectSpec) -> Vec<Check> {
    common(e, workers)
}

/// Checks that read the same over one worker or all workers of a phase.
fn common(e: &ExpectSpec, ws: &[Measured<'_>]) -> Vec<Check> {
    let mut v = Vec::new();
    if let Some(n) = e.errors {
        let got: u64 = ws.iter().map(|m| m.result.error_count).sum();
        v.push(check("errors", n.to_string(), got.to_string(), got == n));
    }
    if let Some(c) = e.error_code {
        let got: Vec<i32> = ws.iter().map(|m| m.result.error).collect();
        let text = got.iter().map(|g| g.to_string()).collect::<Vec<_>>().join(", ");
        v.push(check("error_code", c.to_string(), text, got.contains(&c)));
    }
    if let Some(s) = &e.error_status {
        match parse_status(s) {
            Ok(want) => {
                let got: Vec<Option<(u8, u8)>> = ws.iter().map(|m| first_status(m.result)).collect();
                let text = got.iter().map(|g| fmt_status(*g)).collect::<Vec<_>>().join(", ");
                v.push(check("error_status", s.clone(), text, got.contains(&Some(want))));
            }
            Err(err) => v.push(check("error_status", s.clone(), err, false)),
        }
    }
    if let Some(min) = e.iops_min {
        let got: f64 = ws.iter().map(|m| m.result.iops()).sum();
        v.push(check("iops_min", format!("{min}"), format!("{got:.0}"), got >= min));
    }
    if let Some(min) = e.mbps_min {
        let got: f64 = ws.iter().map(Measured::mbps).sum();
        v.push(check("mbps_min", format!("{min}"), format!("{got:.1}"), got >= min));
    }
    if let Some(lat) = &e.latency_us {
        let mut merged: Option<hdrhistogram::Histogram<u64>> = None;
        for m in ws {
            if let Some(h) = &m.result.histogram {
                match &mut merged {
                    Some(acc) => {
                        let _ = acc.add(h);
                    }
                    None => merged = Some(h.clone()),
                }
            }
        }
        for (p, max) in lat {
            let what = format!("latency_us[{p}]");
            let Ok(q) = p.parse::<f64>() else {
                v.push(check(what, format!("<= {max}"), "not a percentile", false));
                continue;
            };
            match merged.as_ref().filter(|h| !h.is_empty()) {
                Some(h) => {
                    let us = h.value_at_quantile(q / 100.0) as f64 / 1000.0;
                    v.push(check(what, format!("<= {max}"), format!("{us:.1}"), us <= *max));
                }
                None => v.push(check(what, format!("<= {max}"), "no I/O completed", false)),
            }
        }
    }
    v
}
