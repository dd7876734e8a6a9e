//! Random and mutated plans fed to loading and validation (`plan::load_bytes`, the target,
//! `plan::expand`), as `nvplan validate` does: no input makes them panic, every error is
//! positioned inside its input and names a field, and no input needs more memory than the
//! limits allow (counted by this test binary's allocator).
//!
//! The inputs come from a seeded generator: mutations of every plan in the repository
//! (bytes flipped, cut, repeated, spliced from another plan; values and keys replaced or
//! added; anchors and aliases added) and random documents built from the plan's own keys.
//! It runs for `NVPLAN_FUZZ_SECS` seconds (default 3) from seed `NVPLAN_FUZZ_SEED`
//! (default 1); a failing input is written under the test's temporary directory, as is
//! the slowest.

use std::alloc::{GlobalAlloc, Layout, System};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use nvplan::plan::bounds::{MAX_ALIAS_NODES, MAX_NODES};
use nvplan::plan::error::MAX_ERRORS;
use nvplan::plan::{Limits, PlanError, expand, load_bytes, sim_config};
use nvplan::sim::SimConfig;
use nvplan::util::rng::Rng;

/// Counts the bytes this process holds, and the most it held since the last reset.
struct Counting;

static HELD: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

impl Counting {
    fn grew(by: usize) {
        let now = HELD.fetch_add(by, Ordering::Relaxed) + by;
        PEAK.fetch_max(now, Ordering::Relaxed);
    }
}

// SAFETY: every call goes to the system allocator with the caller's layout and pointer
// unchanged; the counters are only bookkeeping beside it.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc` is `System.alloc`'s.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            Counting::grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator, that is from `System`, with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        HELD.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from `System` with `layout`; the caller's contract is `System`'s.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            HELD.fetch_sub(layout.size(), Ordering::Relaxed);
            Counting::grew(new_size);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// The counters are the whole process's: the tests measure one at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// Most memory one input may take: loading a plan whose aliases add all they may, and
/// expanding it, stays well under this.
const MEMORY_BOUND: usize = 100 << 20;

/// Generous: no input takes more than milliseconds; this only catches one that runs away.
const TIME_BOUND: Duration = Duration::from_secs(20);

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every plan of the repository, as bytes.
fn corpus() -> Vec<Vec<u8>> {
    let mut files = Vec::new();
    for d in ["plans", "plans/metamode", "plans/seed", "tests/plans/valid", "tests/plans/invalid", "tests/plans/run"] {
        for e in std::fs::read_dir(root().join(d)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "yaml") {
                files.push(p);
            }
        }
    }
    files.sort();
    files.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

/// Keys of the plan schema, and a few that are not.
fn keys() -> Vec<String> {
    let mut out = Vec::new();
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                if let Some(serde_json::Value::Object(p)) = m.get("properties") {
                    out.extend(p.keys().cloned());
                }
                m.values().for_each(|v| walk(v, out));
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    walk(&nvplan::plan::schema(), &mut out);
    out.sort();
    out.dedup();
    out.extend(["<<", "x", "qdeph", ""].map(String::from));
    out
}

const VALUES: &[&str] = &[
    "0",
    "1",
    "-1",
    "8",
    "4KiB",
    "1GiB",
    "100",
    "101",
    "65536",
    "4294967296",
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775809",
    "99999999999999999999999999999",
    "1e400",
    "-1e400",
    ".inf",
    ".nan",
    "0x",
    "0xffffffffffffffffff",
    "1.5",
    "1000h",
    "9999999h",
    "-0.5s",
    "30s",
    "abc",
    "~",
    "null",
    "true",
    "\"\"",
    "''",
    "[]",
    "{}",
    "[1, [2, [3]]]",
    "{a: {b: {c: 1}}}",
    "&a 1",
    "*a",
    "&b [1, 2]",
    "[*b, *b, *b]",
    "{<<: *a}",
    "{<<: [*b]}",
    "!!str 5",
    "!!binary aGk=",
    "|\n  text",
    ">-\n  folded",
    "read",
    "controller",
    "\t1",
    "\"\\u0000\"",
    "\"\\xff\"",
    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
];

/// Bytes that mean something to YAML.
const SPECIAL: &[u8] = b"[]{}:,-&*!|>'\"#%@`?<\t\r\n \0\xff\xfe\xef\xbb\xbf\\";

struct Gen {
    rng: Rng,
    corpus: Vec<Vec<u8>>,
    keys: Vec<String>,
}

impl Gen {
    fn below(&mut self, n: usize) -> usize {
        self.rng.below(n.max(1) as u64) as usize
    }

    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }

    fn value(&mut self) -> String {
        let v = self.pick(VALUES).to_string();
        if self.below(8) == 0 { format!("&v{} {v}", self.below(4)) } else { v }
    }

    fn key(&mut self) -> String {
        let k = self.below(self.keys.len());
        self.keys[k].clone()
    }

    /// Positions just after `: ` (where a value starts).
    fn value_spots(t: &[u8]) -> Vec<usize> {
        t.windows(2).enumerate().filter(|(_, w)| w == b": ").map(|(i, _)| i + 2).collect()
    }

    fn mutate(&mut self, mut t: Vec<u8>) -> Vec<u8> {
        for _ in 0..1 + self.below(4) {
            let n = t.len();
            match self.below(12) {
                0 if n > 0 => {
                    let i = self.below(n);
                    t[i] ^= 1 << self.below(8);
                }
                1 if n > 0 => {
                    let i = self.below(n);
                    t[i] = *self.pick(SPECIAL);
                }
                2 => t.truncate(self.below(n + 1)),
                3 if n > 0 => {
                    // Repeat a range, up to a few times.
                    let a = self.below(n);
                    let b = (a + 1 + self.below(200)).min(n);
                    let piece = t[a..b].to_vec();
                    let at = self.below(n + 1);
                    for _ in 0..1 + self.below(3) {
                        t.splice(at..at, piece.iter().copied());
                    }
                }
                4 if n > 0 => {
                    let a = self.below(n);
                    let b = (a + 1 + self.below(100)).min(n);
                    t.drain(a..b);
                }
                5 => {
                    // Splice in a range of another plan.
                    let other = self.below(self.corpus.len());
                    let len = self.corpus[other].len();
                    if len > 0 {
                        let a = self.below(len);
                        let b = (a + 1 + self.below(400)).min(len);
                        let piece = self.corpus[other][a..b].to_vec();
                        let at = self.below(n + 1);
                        t.splice(at..at, piece);
                    }
                }
                6..=8 => {
                    let spots = Self::value_spots(&t);
                    if !spots.is_empty() {
                        let at = *self.pick(&spots);
                        let end = t[at..].iter().position(|b| b"\n,}]".contains(b)).map_or(t.len(), |e| at + e);
                        let v = self.value().into_bytes();
                        t.splice(at..end, v);
                    }
                }
                9 => {
                    // A line with a key, at some indentation.
                    let line = format!("{}{}: {}\n", " ".repeat(2 * self.below(5)), self.key(), self.value());
                    let starts: Vec<usize> = std::iter::once(0).chain(t.iter().enumerate().filter(|(_, b)| **b == b'\n').map(|(i, _)| i + 1)).collect();
                    let at = *self.pick(&starts);
                    t.splice(at..at, line.into_bytes());
                }
                10 => {
                    // An anchor on one value and aliases of it elsewhere.
                    let spots = Self::value_spots(&t);
                    if spots.len() > 1 {
                        let a = *self.pick(&spots);
                        let mut later: Vec<usize> = spots.iter().copied().filter(|&s| s > a).collect();
                        later.truncate(1 + self.below(4));
                        for &s in later.iter().rev() {
                            let end = t[s..].iter().position(|b| b"\n,}]".contains(b)).map_or(t.len(), |e| s + e);
                            t.splice(s..end, b"*z".iter().copied());
                        }
                        t.splice(a..a, b"&z ".iter().copied());
                    }
                }
                _ => {
                    // Line ends and indentation as other editors write them.
                    let s = String::from_utf8_lossy(&t).into_owned();
                    let s = match self.below(4) {
                        0 => s.replace('\n', "\r\n"),
                        1 => s.replace('\n', "\r"),
                        2 => format!("\u{feff}{s}"),
                        _ => s.replacen("  ", "\t", 1 + self.below(3)),
                    };
                    t = s.into_bytes();
                }
            }
        }
        t
    }

    /// A random document from the plan's keys and interesting values, with anchors and
    /// aliases, in block or flow style.
    fn document(&mut self) -> Vec<u8> {
        let mut out = String::new();
        let mut anchors = 0;
        self.node(&mut out, 0, &mut anchors);
        out.into_bytes()
    }

    fn node(&mut self, out: &mut String, depth: usize, anchors: &mut usize) {
        let indent = "  ".repeat(depth);
        if *anchors > 0 && self.below(6) == 0 {
            out.push_str(&format!(" *n{}\n", self.below(*anchors)));
            return;
        }
        let anchor = if self.below(5) == 0 {
            *anchors += 1;
            format!(" &n{}", *anchors - 1)
        } else {
            String::new()
        };
        match if depth >= 6 { 2 } else { self.below(3) } {
            0 => {
                out.push_str(&format!("{anchor}\n"));
                for _ in 0..1 + self.below(4) {
                    let k = self.key();
                    out.push_str(&format!("{indent}{k}:"));
                    self.node(out, depth + 1, anchors);
                }
            }
            1 => {
                out.push_str(&format!("{anchor}\n"));
                for _ in 0..1 + self.below(4) {
                    out.push_str(&format!("{indent}-"));
                    self.node(out, depth + 1, anchors);
                }
            }
            _ => {
                let v = self.pick(VALUES).replace('\n', " ");
                out.push_str(&format!("{anchor} {v}\n"));
            }
        }
    }

    fn input(&mut self) -> Vec<u8> {
        match self.below(10) {
            0 => {
                // A document of the plan's shape, its phases random.
                let mut d = self.document();
                let mut t = b"name: fuzz\nphases:\n  - name: a\n    ioworkers:\n      -".to_vec();
                t.append(&mut d);
                t
            }
            1 => self.document(),
            _ => {
                let i = self.below(self.corpus.len());
                let t = self.corpus[i].clone();
                self.mutate(t)
            }
        }
    }
}

/// What is wrong with the errors of `input`, if anything.
fn bad_errors(input: &[u8], errors: &[PlanError]) -> Option<String> {
    let text = String::from_utf8_lossy(input);
    let lines = text.split("\r\n").flat_map(|l| l.split(['\r', '\n'])).count().max(1);
    if errors.is_empty() {
        return Some("an error result without an error".into());
    }
    if errors.len() > MAX_ERRORS + 1 {
        return Some(format!("{} errors, more than {MAX_ERRORS} and the count of the rest", errors.len()));
    }
    for e in errors {
        if e.line == 0 || e.col == 0 || e.line > lines + 1 || e.field.is_empty() || e.message.trim().is_empty() {
            return Some(format!("an error outside the input ({lines} lines) or without a field or message: {e}"));
        }
        // Messages of deserialisation say neither where nor what to do.
        if ["invalid type:", "invalid value:", "expected u", "expected i", "missing field"].iter().any(|m| e.message.starts_with(m)) {
            return Some(format!("an error in a deserialiser's words: {e}"));
        }
    }
    None
}

/// Loads and validates one input as `nvplan validate` does, against the plan's target
/// and a small one; what went wrong, if anything.
fn check(input: &[u8], small: &Limits) -> Option<String> {
    match load_bytes("fuzz.yaml", input) {
        Err(e) => bad_errors(input, &e),
        Ok(p) => {
            match sim_config(&p, None) {
                Ok(c) => {
                    if let Err(e) = expand(&p, &Limits::from_sim(&c), None, 1.0) {
                        return bad_errors(input, &e);
                    }
                }
                Err(e) => return bad_errors(input, &[e]),
            }
            match expand(&p, small, Some(3), 0.01) {
                Err(e) => bad_errors(input, &e),
                Ok(_) => None,
            }
        }
    }
}

#[test]
fn random_and_mutated_plans_never_panic_and_stay_within_time_and_memory() {
    let _one = serial();
    let secs: f64 = std::env::var("NVPLAN_FUZZ_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(3.0);
    let seed: u64 = std::env::var("NVPLAN_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(1);
    let small = Limits::from_sim(&SimConfig::parse_options("ns=1MiB,lba=4096,mdts=2,mqes=64,queues=2,sgl=off").unwrap());
    let mut g = Gen { rng: Rng::new(seed), corpus: corpus(), keys: keys() };
    let findings_dir: PathBuf = Path::new(env!("CARGO_TARGET_TMPDIR")).join("plan-fuzz");
    let _ = std::fs::remove_dir_all(&findings_dir);
    // The corpus itself first, then generated inputs until the time is up.
    let mut queue: Vec<Vec<u8>> = g.corpus.clone();
    let (start, budget) = (Instant::now(), Duration::from_secs_f64(secs));
    let (mut count, mut findings, mut slowest, mut most) = (0u64, Vec::new(), Duration::ZERO, 0usize);
    let mut slowest_input = Vec::new();
    let quiet = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    while let Some(input) = queue.pop().or_else(|| (start.elapsed() < budget).then(|| g.input())) {
        count += 1;
        let base = HELD.load(Ordering::Relaxed);
        PEAK.store(base, Ordering::Relaxed);
        let t = Instant::now();
        let outcome = catch_unwind(AssertUnwindSafe(|| check(&input, &small)));
        let took = t.elapsed();
        let used = PEAK.load(Ordering::Relaxed).saturating_sub(base);
        if took > slowest {
            slowest = took;
            slowest_input.clone_from(&input);
        }
        most = most.max(used);
        let finding = match outcome {
            Err(p) => Some(format!(
                "panicked: {}",
                p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default()
            )),
            Ok(Some(bad)) => Some(bad),
            Ok(None) if used > MEMORY_BOUND => Some(format!("needed {} MiB", used >> 20)),
            Ok(None) if took > TIME_BOUND => Some(format!("took {took:?}")),
            Ok(None) => None,
        };
        if let Some(f) = finding {
            std::fs::create_dir_all(&findings_dir).unwrap();
            let path = findings_dir.join(format!("{}.yaml", findings.len()));
            std::fs::write(&path, &input).unwrap();
            findings.push(format!("{}: {f}", path.display()));
        }
    }
    std::panic::set_hook(quiet);
    // Kept to look at: on a loaded machine the slowest is often only the unluckiest.
    std::fs::create_dir_all(&findings_dir).unwrap();
    std::fs::write(findings_dir.join("slowest.yaml"), &slowest_input).unwrap();
    eprintln!(
        "plan fuzz: seed {seed}, {:.1} s: {count} inputs, {} findings; slowest {slowest:?}, most memory {} KiB",
        start.elapsed().as_secs_f64(),
        findings.len(),
        most >> 10
    );
    assert!(findings.is_empty(), "{} of {count} inputs:\n{}", findings.len(), findings.join("\n"));
    assert!(count > 100, "only {count} inputs");
}

/// The memory bound above holds for what the limits allow: an alias bomb stopped at the
/// limit on what aliases add, and a list at the node limit, each fit in it.
#[test]
fn inputs_at_the_limits_fit_the_memory_bound() {
    let _one = serial();
    let bomb = std::fs::read(root().join("tests/plans/invalid/alias-bomb.yaml")).unwrap();
    // Ten copies of a list of 9,999 items: just within what aliases may add.
    let copies = format!("name: x\na: &a [{}]\nb: [{}]\nphases: []\n", vec!["1"; MAX_ALIAS_NODES / 10 - 1].join(","), ["*a"; 10].join(","));
    let list = format!("name: x\nphases: [{}]\n", vec!["{}"; MAX_NODES - 10].join(","));
    for (what, input) in [("bomb", bomb), ("copies", copies.into_bytes()), ("list", list.into_bytes())] {
        let base = HELD.load(Ordering::Relaxed);
        PEAK.store(base, Ordering::Relaxed);
        let r = load_bytes("limit.yaml", &input);
        let used = PEAK.load(Ordering::Relaxed).saturating_sub(base);
        assert!(r.is_err(), "{what}: none of these is a valid plan");
        assert!(used < MEMORY_BOUND, "{what}: {} MiB", used >> 20);
        eprintln!("{what}: {} KiB", used >> 10);
    }
}
