//! fio's job-file format: INI sections, `[global]` defaults for the jobs below them,
//! `include` inside a section, `${VAR}` from the environment and fio's `$pagesize`,
//! `$mb_memory`, `$ncpus` (with arithmetic), comments with `;` and `#` anywhere on a line.
//! Several files read as fio reads them: globals carry on, and the first job of every file
//! after the first waits for the jobs before it.

use std::path::{Path, PathBuf};

use super::Note;
use super::values;

/// Largest job file read (fio job files are a few KiB).
pub(crate) const MAX_FILE_BYTES: u64 = 1 << 20;
/// Deepest `include` nesting (a file that includes itself stops here).
pub(crate) const MAX_INCLUDE_DEPTH: usize = 16;
/// Most files read, includes counted.
pub(crate) const MAX_FILES: usize = 256;
/// Most job sections (fio's own limit on jobs is 4096).
pub(crate) const MAX_SECTIONS: usize = 4096;
/// Most option lines in all files together.
pub(crate) const MAX_OPTIONS: usize = 100_000;

/// Where something is written: an index into [`JobFiles::names`] and a 1-based line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Loc {
    pub file: usize,
    pub line: usize,
}

/// One option line as fio sees it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct RawOption {
    /// The name as written (aliases not yet resolved).
    pub name: String,
    /// The value after `=` with variables substituted; `None` for a bare flag.
    pub value: Option<String>,
    /// The line as written (without comments), for the plan's comments.
    pub written: String,
    pub at: Loc,
}

/// A job: its section and every option that applies to it, the globals above it first.
#[derive(Clone, Debug)]
pub(crate) struct RawJob {
    pub section: String,
    pub at: Loc,
    pub options: Vec<RawOption>,
    /// First job of a job file after the first: fio starts it after all jobs before it.
    pub file_stonewall: bool,
}

/// The jobs of every file read.
#[derive(Clone, Debug, Default)]
pub(crate) struct JobFiles {
    /// Every file read (includes too), as named in notes.
    pub names: Vec<String>,
    pub jobs: Vec<RawJob>,
    /// Things fio does differently from what the reader could see (undefined variables).
    pub warnings: Vec<Note>,
}

/// Values of fio's reserved keywords on this host.
#[derive(Clone, Copy, Debug)]
pub struct HostValues {
    /// `$pagesize`.
    pub pagesize: u64,
    /// `$mb_memory`.
    pub mb_memory: u64,
    /// `$ncpus`.
    pub ncpus: u64,
}

impl HostValues {
    /// This host's values.
    pub fn here() -> Self {
        let mb_memory = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| m.lines().find(|l| l.starts_with("MemTotal:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok()))
            .map_or(0, |kib| kib / 1024);
        HostValues { pagesize: 4096, mb_memory, ncpus: crate::ioworker::available_cpus() as u64 }
    }
}

struct Reader<'a> {
    env: &'a dyn Fn(&str) -> Option<String>,
    host: HostValues,
    out: JobFiles,
    errors: Vec<Note>,
    /// Options of the `[global]` sections read so far.
    globals: Vec<RawOption>,
    options_read: usize,
}

/// What the section being read is.
enum Section {
    None,
    Global,
    Job(usize),
}

/// Reads job files; every problem is reported, with its file and line.
pub(crate) fn read(paths: &[PathBuf], env: &dyn Fn(&str) -> Option<String>, host: HostValues) -> Result<JobFiles, Vec<Note>> {
    let mut r = Reader { env, host, out: JobFiles::default(), errors: Vec::new(), globals: Vec::new(), options_read: 0 };
    for (i, p) in paths.iter().enumerate() {
        let Some((file, text)) = r.open(p, None) else { continue };
        let mut section = Section::None;
        let first_job = r.out.jobs.len();
        r.lines(file, &text, &mut section, 0, p);
        if i > 0
            && let Some(j) = r.out.jobs.get_mut(first_job)
        {
            j.file_stonewall = true;
        }
    }
    if r.errors.is_empty() { Ok(r.out) } else { Err(r.errors) }
}

impl Reader<'_> {
    fn note(&self, at: Loc, option: &str, message: impl Into<String>) -> Note {
        Note { file: self.out.names[at.file].clone(), line: at.line, option: option.into(), message: message.into() }
    }

    fn fail(&mut self, at: Loc, option: &str, message: impl Into<String>) {
        let n = self.note(at, option, message);
        self.errors.push(n);
    }

    /// Reads a file within the limits; `None` after reporting why it cannot be read.
    fn open(&mut self, path: &Path, from: Option<(Loc, &str)>) -> Option<(usize, String)> {
        let name = path.display().to_string();
        let problem = |r: &mut Self, message: String| {
            match from {
                Some((at, opt)) => r.fail(at, opt, message),
                None => r.errors.push(Note { file: name.clone(), line: 0, option: "file".into(), message }),
            }
            None
        };
        if self.out.names.len() >= MAX_FILES {
            return problem(self, format!("more than {MAX_FILES} job files and includes; is a file including itself?"));
        }
        let len = match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => return problem(self, format!("{name} is a directory, not a job file")),
            Ok(m) => m.len(),
            Err(e) => return problem(self, format!("cannot read {name}: {e}")),
        };
        if len > MAX_FILE_BYTES {
            return problem(self, format!("{name} is {len} bytes; a job file may have at most {MAX_FILE_BYTES}"));
        }
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => return problem(self, format!("cannot read {name}: {e}")),
        };
        let text = match String::from_utf8(bytes) {
            Ok(t) => t,
            Err(e) => {
                let at = e.utf8_error().valid_up_to();
                let line = e.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count() + 1;
                return problem(self, format!("{name} line {line} is not UTF-8 text; fio job files are plain text"));
            }
        };
        self.out.names.push(name);
        Some((self.out.names.len() - 1, text))
    }

    fn lines(&mut self, file: usize, text: &str, section: &mut Section, depth: usize, path: &Path) {
        for (i, raw) in text.split('\n').enumerate() {
            let at = Loc { file, line: i + 1 };
            let line = strip(raw);
            if line.is_empty() {
                continue;
            }
            if line.starts_with('[') {
                if depth > 0 {
                    self.fail(at, "include", "an included file cannot start a [section] (fio allows options only)");
                    continue;
                }
                let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) else {
                    self.fail(at, "section", format!("`{line}` is not a section header; write [name]"));
                    continue;
                };
                let name = name.trim();
                if name.is_empty() {
                    self.fail(at, "section", "a section needs a name: [jobname]");
                    continue;
                }
                // fio takes every section whose name starts with `global` as global.
                if name.starts_with("global") {
                    *section = Section::Global;
                } else {
                    if self.out.jobs.len() >= MAX_SECTIONS {
                        self.fail(at, "section", format!("more than {MAX_SECTIONS} jobs; fio runs at most 4096"));
                        return;
                    }
                    let options = self.globals.clone();
                    self.out.jobs.push(RawJob { section: name.to_string(), at, options, file_stonewall: false });
                    *section = Section::Job(self.out.jobs.len() - 1);
                }
                continue;
            }
            if matches!(section, Section::None) {
                self.fail(at, "section", format!("`{line}` comes before any [section]; fio options belong to a job or [global]"));
                continue;
            }
            if let Some(rest) = line.strip_prefix("include").filter(|r| r.starts_with(char::is_whitespace)) {
                self.include(at, rest.trim(), section, depth, path);
                continue;
            }
            self.options_read += 1;
            if self.options_read > MAX_OPTIONS {
                self.fail(at, "file", format!("more than {MAX_OPTIONS} option lines"));
                return;
            }
            let opt = self.option(at, line);
            match section {
                Section::Global => self.globals.push(opt),
                Section::Job(j) => self.out.jobs[*j].options.push(opt),
                Section::None => {}
            }
        }
    }

    fn include(&mut self, at: Loc, name: &str, section: &mut Section, depth: usize, from: &Path) {
        if name.is_empty() {
            self.fail(at, "include", "include needs a file name");
            return;
        }
        if depth + 1 > MAX_INCLUDE_DEPTH {
            self.fail(at, "include", format!("includes nested deeper than {MAX_INCLUDE_DEPTH}; does {name} include itself?"));
            return;
        }
        // As fio: the name as given if it exists, else next to the including file.
        let mut p = PathBuf::from(name);
        if !p.exists()
            && p.is_relative()
            && let Some(dir) = from.parent()
        {
            p = dir.join(name);
        }
        if let Some((file, text)) = self.open(&p, Some((at, "include"))) {
            self.lines(file, &text, section, depth + 1, &p);
        }
    }

    /// `name=value` or a bare `name`, with variables substituted in the value.
    fn option(&mut self, at: Loc, line: &str) -> RawOption {
        let (name, value) = match line.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim())),
            None => (line.trim(), None),
        };
        let value = value.map(|v| self.substitute(at, name, v));
        RawOption { name: name.to_string(), value, written: line.to_string(), at }
    }

    fn substitute(&mut self, at: Loc, name: &str, v: &str) -> String {
        let mut out = String::new();
        let mut rest = v;
        while let Some(i) = rest.find("${") {
            out.push_str(&rest[..i]);
            let after = &rest[i + 2..];
            match after.find('}') {
                Some(j) if j > 0 => {
                    let var = &after[..j];
                    match (self.env)(var) {
                        Some(val) => out.push_str(&val),
                        None => {
                            let n = self.note(at, name, format!("${{{var}}} is not set in the environment; fio substitutes nothing, and so does the import"));
                            self.out.warnings.push(n);
                        }
                    }
                    rest = &after[j + 1..];
                }
                _ => {
                    out.push_str("${");
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        let mut replaced = false;
        for (word, val) in [("$pagesize", self.host.pagesize), ("$mb_memory", self.host.mb_memory), ("$ncpus", self.host.ncpus)] {
            if out.contains(word) {
                out = out.replace(word, &val.to_string());
                replaced = true;
            }
        }
        if replaced {
            let n = self.note(at, name, format!("fio's reserved words are this host's values: the plan has `{out}`"));
            self.out.warnings.push(n);
            // fio evaluates arithmetic once a keyword was replaced (`size=8*$mb_memory`).
            if out.contains(['+', '-', '*', '/', '%', '^'])
                && let Ok(x) = values::expr(&out)
                && x.is_finite()
                && x >= 0.0
            {
                out = format!("{}", x.round() as u64);
            }
        }
        out
    }
}

/// A line as fio reads it: leading blanks gone, everything from the first `;` or `#` gone
/// (comments may follow an option), trailing blanks gone.
fn strip(line: &str) -> &str {
    let line = line.trim_start();
    let end = line.find([';', '#']).unwrap_or(line.len());
    line[..end].trim_end()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> HostValues {
        HostValues { pagesize: 4096, mb_memory: 1000, ncpus: 8 }
    }

    fn read_text(files: &[(&str, &str)], env: &dyn Fn(&str) -> Option<String>) -> Result<JobFiles, Vec<Note>> {
        let dir = std::env::temp_dir().join(format!("nvplan-fio-jobfile-{}-{}", std::process::id(), files[0].0));
        std::fs::create_dir_all(&dir).unwrap();
        for (n, t) in files {
            std::fs::write(dir.join(n), t).unwrap();
        }
        let r = read(&[dir.join(files[0].0)], env, host());
        std::fs::remove_dir_all(&dir).unwrap();
        r
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn globals_apply_to_the_jobs_below_them_only() {
        let t = "; comment\n[global]\nbs=4k ; trailing comment\n[a]\nrw=read\n[global]\niodepth=8\n[b]\n";
        let f = read_text(&[("g.fio", t)], &no_env).unwrap();
        let names = |j: &RawJob| j.options.iter().map(|o| o.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&f.jobs[0]), ["bs", "rw"]);
        assert_eq!(names(&f.jobs[1]), ["bs", "iodepth"]);
        assert_eq!(f.jobs[0].options[0].value.as_deref(), Some("4k"));
        assert_eq!(f.jobs[0].options[0].at.line, 3);
        assert_eq!(f.jobs[1].at.line, 8);
    }

    #[test]
    fn includes_are_read_next_to_the_including_file_and_cycles_stop() {
        let f = read_text(&[("i.fio", "[a]\ninclude inc.fio\nrw=write\n"), ("inc.fio", "bs=8k\niodepth=4\n")], &no_env).unwrap();
        assert_eq!(f.jobs[0].options.iter().map(|o| o.name.as_str()).collect::<Vec<_>>(), ["bs", "iodepth", "rw"]);
        assert!(f.names[1].ends_with("inc.fio"));
        let e = read_text(&[("loop.fio", "[a]\ninclude loop.fio\n")], &no_env).unwrap_err();
        assert!(e.iter().any(|n| n.message.contains("nested deeper")), "{e:?}");
        let e = read_text(&[("sec.fio", "[a]\ninclude s2.fio\n"), ("s2.fio", "[b]\n")], &no_env).unwrap_err();
        assert!(e[0].message.contains("cannot start a [section]"));
    }

    #[test]
    fn environment_variables_and_reserved_words_are_substituted() {
        let env = |v: &str| (v == "SIZE").then(|| "64m".to_string());
        let f = read_text(&[("e.fio", "[a]\nsize=${SIZE}\nbs=${NOPE}4k\nnumjobs=$ncpus\nio_size=2*$mb_memory\n")], &env).unwrap();
        let v: Vec<&str> = f.jobs[0].options.iter().map(|o| o.value.as_deref().unwrap()).collect();
        assert_eq!(v, ["64m", "4k", "8", "2000"]);
        assert_eq!(f.jobs[0].options[0].written, "size=${SIZE}");
        assert!(f.warnings.iter().any(|w| w.message.contains("${NOPE} is not set")));
    }

    #[test]
    fn options_outside_sections_and_bad_headers_are_errors_with_lines() {
        let e = read_text(&[("b.fio", "bs=4k\n[ok]\n[broken\n")], &no_env).unwrap_err();
        assert_eq!(e.iter().map(|n| n.line).collect::<Vec<_>>(), [1, 3]);
    }
}
