//! The plan as YAML text, with the job file's lines in comments, and its check.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::build::{Field, Val, Worker};
use super::jobfile::Loc;
use super::phases::{PhaseOut, PlanOut};
use super::values::plan_bytes;
use super::{Device, Note};
use crate::plan;

/// What the comments quote: every option line by where it is.
pub(crate) type Sources = BTreeMap<Loc, String>;

/// Longest quote of a job-file line in a comment.
const QUOTE: usize = 60;

/// A plain scalar if it reads back as the same string, else double-quoted.
fn scalar(s: &str) -> String {
    let plain_ok = !s.is_empty()
        && s.chars().all(|c| c.is_ascii_alphanumeric() || "._+-/".contains(c))
        && !s.starts_with(['-', '.'])
        && s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && !matches!(s.to_ascii_lowercase().as_str(), "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "y" | "n");
    if plain_ok {
        return s.to_string();
    }
    let mut q = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(q, "\\u{:04x}", c as u32);
            }
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

/// A value in flow style.
fn flow(v: &Val) -> String {
    match v {
        Val::Plain(s) => s.clone(),
        Val::List(l) => format!("[{}]", l.iter().map(flow).collect::<Vec<_>>().join(", ")),
        Val::Map(m) => format!("{{{}}}", m.iter().map(|(k, v)| format!("{}: {}", map_key(k), flow(v))).collect::<Vec<_>>().join(", ")),
    }
}

/// A mapping key: sizes (`4KiB`), opcode names and percentiles stay plain.
fn map_key(k: &str) -> String {
    if !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.') { k.to_string() } else { scalar(k) }
}

/// A flow value broken into lines of at most ~100 characters (long lists).
fn wrapped(v: &Val, indent: usize) -> String {
    let one = flow(v);
    let Val::List(items) = v else { return one };
    if one.len() <= 100 {
        return one;
    }
    let mut out = String::from("[");
    let mut line = 1;
    for (i, it) in items.iter().enumerate() {
        let s = flow(it) + if i + 1 < items.len() { "," } else { "]" };
        if line + s.len() + 1 > 100 {
            out.push('\n');
            out.push_str(&" ".repeat(indent));
            line = indent;
        } else if i > 0 {
            out.push(' ');
            line += 1;
        }
        out.push_str(&s);
        line += s.len();
    }
    out
}

fn quote(names: &[String], src: &Sources, at: Loc) -> String {
    let file = names.get(at.file).map(|f| f.rsplit('/').next().unwrap_or(f)).unwrap_or("");
    let mut text = src.get(&at).cloned().unwrap_or_default();
    if text.chars().count() > QUOTE {
        text = text.chars().take(QUOTE - 3).collect::<String>() + "...";
    }
    if text.is_empty() { format!("{file}:{}", at.line) } else { format!("{file}:{} {text}", at.line) }
}

fn comment(f: &Field, names: &[String], src: &Sources) -> String {
    let mut parts: Vec<String> = f.from.iter().map(|&at| quote(names, src, at)).collect();
    if let Some(d) = f.default {
        parts.push(format!("fio's default {d}"));
    }
    parts.join("; ").replace('\n', " ")
}

fn field_lines(out: &mut String, f: &Field, indent: usize, names: &[String], src: &Sources) {
    let pad = " ".repeat(indent);
    let value = wrapped(&f.val, indent + 2);
    let c = comment(f, names, src);
    if value.contains('\n') {
        if !c.is_empty() {
            let _ = writeln!(out, "{pad}# {c}");
        }
        let _ = writeln!(out, "{pad}{}: {value}", f.key);
    } else if c.is_empty() {
        let _ = writeln!(out, "{pad}{}: {value}", f.key);
    } else {
        let _ = writeln!(out, "{pad}{}: {value}  # {c}", f.key);
    }
}

/// Safe names for reports and YAML: letters, digits, `.`, `_`, `+`, `-`.
pub(crate) fn clean_name(s: &str) -> String {
    let n: String = s.chars().take(100).map(|c| if c.is_ascii_alphanumeric() || "._+-".contains(c) { c } else { '-' }).collect();
    if n.is_empty() { "job".into() } else { n }
}

/// The plan as YAML.
pub(crate) fn yaml(p: &PlanOut, names: &[String], src: &Sources, warnings: &[Note]) -> String {
    let mut out = String::new();
    let files: Vec<&str> = names.iter().map(String::as_str).collect();
    let _ = writeln!(out, "# yaml-language-server: $schema=https://nvplan.dev/schema/plan.schema.json");
    let _ = writeln!(out, "# Imported by `nvplan import-fio` from {}.", files.join(", "));
    let _ = writeln!(out, "# Comments name the job-file line each value comes from.");
    if !warnings.is_empty() {
        let _ = writeln!(out, "#\n# Left out or approximated:");
        for w in warnings {
            let file = w.file.rsplit('/').next().unwrap_or(&w.file);
            let _ = writeln!(out, "#   {file}:{} {}: {}", w.line, w.option, w.message.replace('\n', " "));
        }
    }
    let _ = writeln!(out, "name: {}", scalar(&clean_name(&p.name)));
    let _ = writeln!(out, "description: {}", scalar(&p.description.join(" ")));
    match (&p.target, &p.sim) {
        (Some(t), _) => {
            let _ = writeln!(out, "target: {}", scalar(t));
        }
        (None, Some(s)) => {
            let ns: Vec<String> = s.namespaces.iter().map(|b| format!("{{size: {}, lba: 512}}", plan_bytes(*b))).collect();
            let mut sim = format!("namespaces: [{}]", ns.join(", "));
            if let Some(m) = s.mdts {
                let _ = write!(sim, ", mdts: {m}");
            }
            if let Some(q) = s.queue_entries {
                let _ = write!(sim, ", queue_entries: {q}");
            }
            let queues = p.phases.iter().map(|ph| ph.workers.len()).max().unwrap_or(0);
            if queues > 64 {
                let _ = write!(sim, ", queues: {queues}");
            }
            let _ = writeln!(out, "target: {{sim: {{{sim}}}}}  # the simulator; --target vfio:<PCI address> runs the plan on a drive");
        }
        (None, None) => {}
    }
    let _ = writeln!(out, "phases:");
    for (pi, ph) in p.phases.iter().enumerate() {
        phase(&mut out, pi, ph, names, src);
    }
    out
}

fn phase(out: &mut String, pi: usize, ph: &PhaseOut, names: &[String], src: &Sources) {
    let from: Vec<String> = ph.from.iter().map(|&at| quote(names, src, at)).collect();
    let why = ph.why.clone().unwrap_or_else(|| from.join("; "));
    let _ = writeln!(out, "  - name: {}  # {}", scalar(&clean_name(&ph.name)), why);
    if let Some(s) = &ph.sweep {
        let mut depths = Vec::new();
        let mut d = 1u32;
        while d < s.max_depth {
            depths.push(d);
            d = d.saturating_mul(2);
        }
        depths.push(s.max_depth);
        let list: Vec<String> = depths.iter().map(u32::to_string).collect();
        let _ = writeln!(out, "    sweep: {{qdepth: [{}]}}  # {}", list.join(", "), quote(names, src, s.at));
    }
    if !ph.flush.is_empty() {
        let _ = writeln!(out, "    events:");
        for (nsid, at) in &ph.flush {
            let _ = writeln!(out, "      - {{at: 0, admin: {{command: flush, nsid: {nsid}}}}}  # {}", quote(names, src, *at));
        }
    }
    if ph.workers.is_empty() {
        return;
    }
    let _ = writeln!(out, "    ioworkers:");
    let mut i = 0;
    while i < ph.workers.len() {
        let (job, w) = &ph.workers[i];
        // Clones of one job: the first in full with an anchor, the others merge it.
        let clones: Vec<&Worker> = ph.workers[i + 1..].iter().take_while(|(j, x)| j == job && x.clone > 0).map(|x| &x.1).collect();
        let anchor = (!clones.is_empty()).then(|| format!("p{pi}w{i}"));
        match &anchor {
            Some(a) => {
                match w.numjobs {
                    Some(at) => {
                        let _ = writeln!(out, "      - &{a}  # {}", quote(names, src, at));
                    }
                    None => {
                        let _ = writeln!(out, "      - &{a}");
                    }
                }
                let _ = writeln!(out, "        name: {}", scalar(&clean_name(&w.name)));
            }
            None => {
                let _ = writeln!(out, "      - name: {}", scalar(&clean_name(&w.name)));
            }
        }
        for f in &w.fields {
            field_lines(out, f, 8, names, src);
        }
        for c in &clones {
            let differs: Vec<&Field> = c.fields.iter().filter(|f| !w.fields.iter().any(|g| g.key == f.key && g.val == f.val)).collect();
            let dropped = w.fields.iter().any(|g| !c.fields.iter().any(|f| f.key == g.key));
            if dropped {
                let _ = writeln!(out, "      - name: {}", scalar(&clean_name(&c.name)));
                for f in &c.fields {
                    field_lines(out, f, 8, names, src);
                }
                continue;
            }
            let mut line = format!("      - {{<<: *{}, name: {}", anchor.as_deref().unwrap_or(""), scalar(&clean_name(&c.name)));
            for f in differs {
                let _ = write!(line, ", {}: {}", f.key, flow(&f.val));
            }
            let _ = writeln!(out, "{line}}}");
        }
        i += 1 + clones.len();
    }
}

/// Checks the written plan as `nvplan validate` does (against the device, any CPU
/// allowed: the plan may be for another host).
pub(crate) fn check(yaml: &str, file: &str, device: &Device) -> Result<(), Vec<Note>> {
    let to_notes = |errors: Vec<plan::PlanError>| -> Vec<Note> {
        errors
            .into_iter()
            .map(|e| {
                let line = yaml.lines().nth(e.line.saturating_sub(1)).unwrap_or("").trim().to_string();
                Note {
                    file: file.to_string(),
                    line: 0,
                    option: e.field.clone(),
                    message: format!("the imported plan does not validate: line {}: {} (`{line}`)", e.line, e.message),
                }
            })
            .collect()
    };
    let p = plan::load_str("imported plan", yaml).map_err(to_notes)?;
    let limits = match device {
        Device::Given { limits, .. } => limits.clone(),
        Device::Simulator => match plan::target(&p, None) {
            Ok(plan::Target::Sim(cfg)) => plan::Limits::from_sim(&cfg),
            Ok(plan::Target::Vfio(_)) => return Ok(()),
            Err(e) => return Err(to_notes(vec![e])),
        },
    };
    let limits = plan::Limits { cpus: usize::MAX, ..limits };
    plan::expand(&p, &limits, None, 1.0).map(|_| ()).map_err(to_notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_that_yaml_would_read_otherwise_are_quoted() {
        assert_eq!(scalar("JESD219"), "JESD219");
        assert_eq!(scalar("rand-read"), "rand-read");
        assert_eq!(scalar("true"), "\"true\"");
        assert_eq!(scalar("123"), "\"123\"");
        assert_eq!(scalar("a: b"), "\"a: b\"");
        assert_eq!(scalar("say \"hi\""), "\"say \\\"hi\\\"\"");
        assert_eq!(clean_name("seq read/1"), "seq-read-1");
    }

    #[test]
    fn long_lists_wrap_and_short_ones_do_not() {
        let short = Val::List(vec![Val::Plain("1".into()), Val::Plain("2".into())]);
        assert_eq!(wrapped(&short, 4), "[1, 2]");
        let long = Val::List((0..100).map(|_| Val::Plain("100".into())).collect());
        let w = wrapped(&long, 10);
        assert!(w.lines().count() > 3 && w.lines().all(|l| l.len() <= 101), "{w}");
        assert_eq!(w.replace(['\n', ' '], ""), flow(&long).replace(' ', ""));
    }
}
