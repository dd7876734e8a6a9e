//! `junit.xml`: the run as JUnit test results, the format Jenkins (`junit` step) and
//! GitLab (`artifacts:reports:junit`) read. One test suite for the plan on its drive; one
//! test case per phase run × expectation, per fired event, and per phase run without
//! either. Names are unique within the file (GitLab keeps only the first of duplicates).

use std::fmt::Write;

use crate::exec::{Check, Outcome, PhaseSummary, Summary};

/// Text for an XML attribute or element: escaped, and without the characters XML 1.0
/// forbids (control characters other than tab, newline and carriage return).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => {}
            c => out.push(c),
        }
    }
    out
}

/// How a test case ended.
enum Verdict {
    Pass,
    /// Passed, with something to say (an event whose failure the plan allows).
    Noted(String),
    Failure {
        message: String,
        text: String,
    },
    Error {
        message: String,
    },
    Skipped {
        message: String,
    },
}

struct Case {
    name: String,
    time: f64,
    verdict: Verdict,
}

fn check_case(prefix: &str, c: &Check, time: f64) -> Case {
    let verdict = if c.pass {
        Verdict::Pass
    } else {
        Verdict::Failure {
            message: format!("{}: expected {}, measured {}", c.what, c.expected, c.actual),
            text: format!("expected: {}\nmeasured: {}", c.expected, c.actual),
        }
    };
    Case { name: format!("{prefix}: {}", c.what), time, verdict }
}

fn phase_cases(p: &PhaseSummary, out: &mut Vec<Case>) {
    let start = out.len();
    match p.outcome {
        Outcome::Skipped => {
            out.push(Case {
                name: p.label.clone(),
                time: 0.0,
                verdict: Verdict::Skipped { message: "not run: the run was interrupted or could not go on".into() },
            });
            return;
        }
        Outcome::Interrupted => {
            out.push(Case {
                name: format!("{}: complete", p.label),
                time: p.seconds,
                verdict: Verdict::Error { message: format!("interrupted after {:.1} s", p.seconds) },
            });
        }
        _ => {}
    }
    for c in &p.checks {
        out.push(check_case(&p.label, c, p.seconds));
    }
    for w in &p.workers {
        for c in &w.checks {
            out.push(check_case(&format!("{} / {}", p.label, w.name), c, p.seconds));
        }
    }
    for e in p.events.iter().filter(|e| e.outcome != Outcome::Skipped) {
        let verdict = if e.outcome == Outcome::Fail {
            let message = format!("event {} ({}, {}) failed: {}", e.name, e.kind, e.detail, e.error.as_deref().unwrap_or("no detail"));
            if e.allow_failure { Verdict::Noted(format!("{message} (allowed by the plan)")) } else { Verdict::Failure { text: message.clone(), message } }
        } else {
            Verdict::Pass
        };
        out.push(Case { name: format!("{} / event {} at {:.3} s", p.label, e.name, e.planned_s), time: e.duration_ms / 1000.0, verdict });
    }
    // Metamode: every check step, and any step that failed.
    for m in &p.metamode {
        let check = m.step.starts_with("expect_") || m.expected.is_some();
        let verdict = match m.outcome {
            Outcome::Fail => {
                let message = format!("step {} {} ({}): {}", m.index, m.step, m.detail, m.error.as_deref().unwrap_or("failed"));
                let text = format!("expected: {}\nactual: {}", m.expected.as_deref().unwrap_or("-"), m.actual.as_deref().unwrap_or("-"));
                Verdict::Failure { message, text }
            }
            Outcome::Skipped if check => Verdict::Skipped { message: "an earlier step failed".into() },
            _ if check => Verdict::Pass,
            _ => continue,
        };
        out.push(Case { name: format!("{} / metamode {} {}", p.label, m.index, m.step), time: m.duration_ms / 1000.0, verdict });
    }
    if out.len() == start {
        let verdict = if p.outcome == Outcome::Pass { Verdict::Pass } else { Verdict::Failure { message: "the phase failed".into(), text: String::new() } };
        out.push(Case { name: p.label.clone(), time: p.seconds, verdict });
    }
}

/// One `<testsuite>` element and its counts, to be put in a `<testsuites>` document.
#[derive(Debug, Clone)]
pub struct Suite {
    /// The element's text, indented by two spaces, ending with a newline.
    pub xml: String,
    /// Test cases.
    pub tests: usize,
    /// Failed test cases.
    pub failures: usize,
    /// Test cases in error.
    pub errors: usize,
    /// Skipped test cases.
    pub skipped: usize,
    /// Seconds.
    pub time: f64,
}

/// The JUnit XML of a summary; `charts` (paths relative to the report) go into the
/// suite's `system-out`, where GitLab and Jenkins show them as attachments.
pub fn junit(s: &Summary, charts: &[String]) -> String {
    document(&[suite(s, charts)])
}

/// A `<testsuites>` document of `suites`, in the order given.
pub fn document(suites: &[Suite]) -> String {
    let sum = |f: fn(&Suite) -> usize| suites.iter().map(f).sum::<usize>();
    let time: f64 = suites.iter().map(|s| s.time).sum();
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        x,
        "<testsuites name=\"nvplan\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{time:.3}\">",
        sum(|s| s.tests),
        sum(|s| s.failures),
        sum(|s| s.errors),
        sum(|s| s.skipped)
    );
    for s in suites {
        x.push_str(&s.xml);
    }
    x.push_str("</testsuites>\n");
    x
}

/// The `<testsuite>` of a summary: named after the plan, the drive and the host, with the
/// run's identity as properties and the host as `hostname`.
pub fn suite(s: &Summary, charts: &[String]) -> Suite {
    let mut cases = Vec::new();
    if let Some(e) = &s.error {
        cases.push(Case { name: "run".into(), time: s.seconds, verdict: Verdict::Error { message: e.clone() } });
    }
    if !s.complete && s.error.is_none() {
        let message = if s.outcome == Outcome::Interrupted {
            let ran = s.phases.iter().filter(|p| p.outcome != Outcome::Skipped).count();
            format!("interrupted after {:.1} s: {ran} of {} phase runs ran", s.seconds, s.phases.len())
        } else {
            "incomplete: the run had not ended when this report was written".into()
        };
        cases.push(Case { name: "run: complete".into(), time: s.seconds, verdict: Verdict::Error { message } });
    }
    for p in &s.phases {
        phase_cases(p, &mut cases);
    }
    let count = |f: fn(&Verdict) -> bool| cases.iter().filter(|c| f(&c.verdict)).count();
    let failures = count(|v| matches!(v, Verdict::Failure { .. }));
    let errors = count(|v| matches!(v, Verdict::Error { .. }));
    let skipped = count(|v| matches!(v, Verdict::Skipped { .. }));
    let device = s.device.as_ref().map(|d| format!(" on {} {} ({})", d.model, d.serial, d.firmware)).unwrap_or_default();
    let host = if s.identity.host.is_empty() { String::new() } else { format!(" at {}", s.identity.host) };
    let suite = format!("{}{device}{host}", s.plan);
    let classname = match &s.device {
        Some(d) => format!("{}.{}", s.plan, d.serial),
        None => s.plan.clone(),
    };
    let mut x = String::new();
    let totals = format!("tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"{skipped}\" time=\"{:.3}\"", cases.len(), s.seconds);
    let _ = writeln!(
        x,
        "  <testsuite name=\"{}\" {totals} timestamp=\"{}\" hostname=\"{}\">",
        escape(&suite),
        super::manifest::rfc3339(s.started_unix),
        escape(&s.identity.host)
    );
    x.push_str("    <properties>\n");
    let mut props = vec![
        ("plan".to_string(), s.file.clone()),
        ("seed".into(), s.seed.to_string()),
        ("time_scale".into(), s.time_scale.to_string()),
        ("target".into(), s.target.clone()),
    ];
    if let Some(d) = &s.device {
        props.extend([("model".into(), d.model.clone()), ("serial".into(), d.serial.clone()), ("firmware".into(), d.firmware.clone())]);
    }
    props.push(("complete".into(), s.complete.to_string()));
    let id = &s.identity;
    for (k, v) in
        [("run_id", &id.run_id), ("host", &id.host), ("pci_address", &id.pci_address), ("plan_crc32", &id.plan_crc32), ("nvplan_version", &id.nvplan_version)]
    {
        if !v.is_empty() {
            props.push((k.into(), v.clone()));
        }
    }
    for (k, v) in props {
        let _ = writeln!(x, "      <property name=\"{}\" value=\"{}\"/>", escape(&k), escape(&v));
    }
    x.push_str("    </properties>\n");
    for c in &cases {
        let head = format!("    <testcase name=\"{}\" classname=\"{}\" time=\"{:.3}\"", escape(&c.name), escape(&classname), c.time);
        match &c.verdict {
            Verdict::Pass => {
                let _ = writeln!(x, "{head}/>");
            }
            Verdict::Noted(note) => {
                let _ = writeln!(x, "{head}>\n      <system-out>{}</system-out>\n    </testcase>", escape(note));
            }
            Verdict::Failure { message, text } => {
                let _ = writeln!(x, "{head}>\n      <failure message=\"{}\" type=\"expectation\">{}</failure>\n    </testcase>", escape(message), escape(text));
            }
            Verdict::Error { message } => {
                let _ = writeln!(x, "{head}>\n      <error message=\"{}\" type=\"run\"/>\n    </testcase>", escape(message));
            }
            Verdict::Skipped { message } => {
                let _ = writeln!(x, "{head}>\n      <skipped message=\"{}\"/>\n    </testcase>", escape(message));
            }
        }
    }
    if !charts.is_empty() {
        let lines: Vec<String> = charts.iter().map(|c| format!("[[ATTACHMENT|{c}]]")).collect();
        let _ = writeln!(x, "    <system-out>{}</system-out>", escape(&lines.join("\n")));
    }
    x.push_str("  </testsuite>\n");
    Suite { xml: x, tests: cases.len(), failures, errors, skipped, time: s.seconds }
}
