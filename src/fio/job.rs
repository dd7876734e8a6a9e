//! One fio job with its options resolved (aliases, the last of repeated options wins), the
//! options with nothing to carry over reported, and typed access to the rest.

use std::collections::BTreeMap;

use super::Note;
use super::jobfile::{Loc, RawJob, RawOption};
use super::options::{self, Support};
use super::values;

/// Everything the import says, collected; each note once.
#[derive(Debug)]
pub(crate) struct Report {
    names: Vec<String>,
    pub errors: Vec<Note>,
    pub warnings: Vec<Note>,
}

impl Report {
    pub(crate) fn new(names: Vec<String>) -> Self {
        Report { names, errors: Vec::new(), warnings: Vec::new() }
    }

    pub(crate) fn note(&self, at: Loc, option: &str, message: impl Into<String>) -> Note {
        let file = self.names.get(at.file).cloned().unwrap_or_default();
        Note { file, line: at.line, option: option.into(), message: message.into() }
    }

    /// Left out or approximated: the plan gets a comment, stderr a warning.
    pub(crate) fn warn(&mut self, at: Loc, option: &str, message: impl Into<String>) {
        let n = self.note(at, option, message);
        if !self.warnings.contains(&n) {
            self.warnings.push(n);
        }
    }

    /// Cannot be expressed, or wrong: the import fails.
    pub(crate) fn refuse(&mut self, at: Loc, option: &str, message: impl Into<String>) {
        let n = self.note(at, option, message);
        if !self.errors.contains(&n) {
            self.errors.push(n);
        }
    }

    pub(crate) fn finish(mut self) -> (Vec<Note>, Vec<Note>) {
        self.errors.sort();
        self.warnings.sort();
        (self.errors, self.warnings)
    }

    pub(crate) fn file_name(&self, at: Loc) -> &str {
        self.names.get(at.file).map_or("", String::as_str)
    }
}

/// A job's options by fio's canonical name.
#[derive(Clone, Debug)]
pub(crate) struct Job {
    /// fio's name for it: `name=` or the section.
    pub name: String,
    pub at: Loc,
    pub file_stonewall: bool,
    /// The last occurrence of each option and its position among the job's options.
    opts: BTreeMap<&'static str, (usize, RawOption)>,
    pub kb_base: u64,
}

impl Job {
    /// Resolves the job's options; unknown, refused and ignored ones are reported here.
    pub(crate) fn new(raw: &RawJob, report: &mut Report) -> Job {
        let mut opts: BTreeMap<&'static str, (usize, RawOption)> = BTreeMap::new();
        for (i, o) in raw.options.iter().enumerate() {
            match options::lookup(&o.name) {
                Some(def) => {
                    opts.insert(def.name, (i, o.clone()));
                }
                None => {
                    let all = options::OPTIONS.iter().flat_map(|o| std::iter::once(o.name).chain(o.aliases.iter().copied()));
                    let hint = match crate::plan::error::suggest(&o.name, all) {
                        Some(s) => format!("; did you mean `{s}`?"),
                        None => " (an option of an ioengine the import does not take, or not a fio option)".into(),
                    };
                    report.refuse(o.at, &o.name, format!("unknown fio option `{}`{hint}", o.name));
                }
            }
        }
        let mut job = Job { name: raw.section.clone(), at: raw.at, file_stonewall: raw.file_stonewall, opts, kb_base: 1024 };
        if let Some(n) = job.text("name").filter(|n| !n.is_empty()) {
            job.name = n.to_string();
        }
        if let Some(k) = job.get("kb_base").cloned() {
            match k.value.as_deref().map(str::trim) {
                Some("1000") => job.kb_base = 1000,
                Some("1024") => {}
                _ => report.refuse(k.at, "kb_base", "kb_base is 1024 or 1000"),
            }
        }
        job.classify(report);
        job
    }

    /// Reports the options that carry nothing over: ignored ones, refused ones (unless off).
    fn classify(&self, report: &mut Report) {
        for (name, (_, o)) in &self.opts {
            let Some(def) = options::lookup(name) else { continue };
            match def.support {
                Support::Ignored => report.warn(o.at, &o.name, format!("ignored: {}", def.note)),
                Support::Refused => {
                    let v = o.value.as_deref().map(str::trim).unwrap_or_default().to_ascii_lowercase();
                    if o.value.is_some() && def.neutral.iter().any(|n| *n == v) {
                        report.warn(o.at, &o.name, format!("ignored: `{v}` is off"));
                    } else {
                        report.refuse(o.at, &o.name, format!("cannot be expressed: {}", def.note));
                    }
                }
                Support::Exact | Support::Approximated => {}
            }
        }
    }

    pub(crate) fn get(&self, name: &str) -> Option<&RawOption> {
        self.opts.get(name).map(|o| &o.1)
    }

    /// Position of the option among the job's options (later overrides earlier).
    pub(crate) fn pos(&self, name: &str) -> Option<usize> {
        self.opts.get(name).map(|o| o.0)
    }

    /// The value; `""` for a bare flag.
    pub(crate) fn text(&self, name: &str) -> Option<&str> {
        self.get(name).map(|o| o.value.as_deref().unwrap_or(""))
    }

    pub(crate) fn at(&self, name: &str) -> Loc {
        self.get(name).map_or(self.at, |o| o.at)
    }

    /// A boolean option: given bare it is set; with a value, fio's 0/1.
    pub(crate) fn flag(&self, name: &str, report: &mut Report) -> Option<bool> {
        let o = self.get(name)?;
        match o.value.as_deref() {
            None | Some("") => Some(true),
            Some(v) => match values::boolean(v) {
                Ok(b) => Some(b),
                Err(m) => {
                    report.refuse(o.at, &o.name, m);
                    None
                }
            },
        }
    }

    /// Parses an option's value; a value that does not parse is reported and gives `None`.
    pub(crate) fn parse<T>(&self, name: &str, report: &mut Report, f: impl FnOnce(&str) -> Result<T, String>) -> Option<T> {
        let o = self.get(name)?;
        match f(o.value.as_deref().unwrap_or("")) {
            Ok(v) => Some(v),
            Err(m) => {
                report.refuse(o.at, &o.name, m);
                None
            }
        }
    }
}

/// Which of fio's three directions a job does: reads, writes, trims.
pub(crate) type Dirs = [bool; 3];

/// Directions in fio's order, for messages.
pub(crate) const DIR_NAMES: [&str; 3] = ["reads", "writes", "trims"];

/// The value of a per-direction option for the directions a job uses: one value, or the
/// option is reported (an ioworker has one value for all its I/O). `default` stands for
/// entries left empty; `None` when the option is not given.
pub(crate) fn per_direction<T: Clone + PartialEq + std::fmt::Debug>(
    job: &Job,
    name: &str,
    dirs: Dirs,
    report: &mut Report,
    default: Option<T>,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Option<Option<T>> {
    let o = job.get(name)?;
    let parts = values::per_direction(o.value.as_deref().unwrap_or(""));
    let mut chosen: Vec<(usize, Option<T>, String)> = Vec::new();
    for d in (0..3).filter(|&d| dirs[d]) {
        let v = match &parts[d] {
            Some(t) => match parse(t) {
                Ok(v) => Some(v),
                Err(m) => {
                    report.refuse(o.at, &o.name, m);
                    return Some(None);
                }
            },
            None => default.clone(),
        };
        chosen.push((d, v, parts[d].clone().unwrap_or_else(|| "the default".into())));
    }
    if let [(d0, v0, t0), rest @ ..] = chosen.as_slice()
        && let Some((d1, _, t1)) = rest.iter().find(|c| &c.1 != v0)
    {
        report.refuse(
            o.at,
            &o.name,
            format!(
                "{} use {t0} and {} use {t1}; an ioworker has one {} for all its I/O: split the job into one job per direction",
                DIR_NAMES[*d0],
                DIR_NAMES[*d1],
                options::lookup(name).map_or(name, |d| d.nvplan.split([' ', ',']).next().unwrap_or(name))
            ),
        );
        return Some(None);
    }
    Some(chosen.into_iter().next().and_then(|c| c.1))
}
