//! Loading a plan: YAML syntax, JSON Schema, typing, static checks. Every error carries the
//! position it was written at.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::Path;
use std::sync::LazyLock;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::paths::LocationSegment;
use jsonschema::{ValidationError, Validator};
use serde_json::Value;

use super::bounds::{self, MAX_PLAN_BYTES};
use super::error::{PlanError, short, suggest, tidy};
use super::model::{self, Plan};
use super::yaml::{self, Node, Seg};

/// A parsed, schema-valid, statically checked plan, with its YAML tree for locating errors
/// found later.
#[derive(Clone, Debug)]
pub struct LoadedPlan {
    /// The file as given (used in error positions).
    pub file: String,
    /// The typed plan.
    pub plan: Plan,
    /// The YAML tree with positions.
    pub tree: Node,
    /// CRC-32 of the plan's text, to tell edited plans apart.
    pub crc32: u32,
}

impl LoadedPlan {
    /// An error at the node at `path` (or the deepest written node on the way).
    pub fn error(&self, path: &[Seg], field: &str, message: impl Into<String>) -> PlanError {
        at(&self.file, &self.tree, path, field, message)
    }

    /// The node at `path`, if written.
    pub(crate) fn tree_at(&self, path: &[Seg]) -> Option<&Node> {
        let mut node = &self.tree;
        for seg in path {
            node = node.child(seg)?;
        }
        Some(node)
    }

    /// An error at the key `key` of the mapping at `path`, or at the mapping when the key is
    /// not written.
    pub(crate) fn key_error(&self, path: &[Seg], key: &str, field: &str, message: impl Into<String>) -> PlanError {
        match self.tree.locate_key(path, key) {
            Some((line, col)) => PlanError { file: self.file.clone(), line, col, field: field.into(), message: message.into() },
            None => self.error(path, field, message),
        }
    }
}

fn at(file: &str, tree: &Node, path: &[Seg], field: &str, message: impl Into<String>) -> PlanError {
    let (line, col) = tree.locate(path);
    PlanError { file: file.into(), line, col, field: field.into(), message: message.into() }
}

/// Reads and loads a plan file. A file that cannot be read is one error at 1:1; one larger
/// than [`MAX_PLAN_BYTES`] is not read past that size.
pub fn load(path: &Path) -> Result<LoadedPlan, Vec<PlanError>> {
    let file = path.display().to_string();
    let fail = |message: String| vec![PlanError { file: file.clone(), line: 1, col: 1, field: "file".into(), message }];
    let mut bytes = Vec::new();
    // One byte more than a plan may hold tells a plan too large from one at the limit, and
    // a file that never ends (a pipe, a device) is not read without end.
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_PLAN_BYTES as u64 + 1).read_to_end(&mut bytes))
        .map_err(|e| fail(format!("cannot read the plan: {e}")))?;
    load_bytes(&file, &bytes)
}

/// Loads a plan from the bytes of a file; `file` names it in errors.
pub fn load_bytes(file: &str, bytes: &[u8]) -> Result<LoadedPlan, Vec<PlanError>> {
    let at = |(line, col): (usize, usize), message: String| vec![PlanError { file: file.into(), line, col, field: "file".into(), message }];
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let good = e.valid_up_to();
            let text = std::str::from_utf8(&bytes[..good]).unwrap_or_default();
            if good >= MAX_PLAN_BYTES {
                return Err(too_large(file, text));
            }
            // YAML 1.2 §5.2: a plan in UTF-8; UTF-16 and UTF-32 are allowed by YAML but not here.
            return Err(at(yaml::position(text, good), format!("byte {:#04x} (offset {good}) is not UTF-8 text; save the plan as UTF-8", bytes[good])));
        }
    };
    load_str(file, text)
}

/// The error of a plan over [`MAX_PLAN_BYTES`], at the place the limit is passed.
fn too_large(file: &str, text: &str) -> Vec<PlanError> {
    let mut cut = MAX_PLAN_BYTES.min(text.len());
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let (line, col) = yaml::position(text, cut);
    let message =
        format!("the plan goes past {} bytes here; a plan file holds at most that many: split it into several plans", bounds::count(MAX_PLAN_BYTES as u64));
    vec![PlanError { file: file.into(), line, col, field: "file".into(), message }]
}

/// Loads a plan from text; `file` names it in errors.
pub fn load_str(file: &str, text: &str) -> Result<LoadedPlan, Vec<PlanError>> {
    if text.len() > MAX_PLAN_BYTES {
        return Err(too_large(file, text));
    }
    let original = text;
    // YAML 1.2 §5.2: a byte-order mark may start the stream; it is not content.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let tree = yaml::parse(text).map_err(|e| vec![PlanError { file: file.into(), line: e.line, col: e.col, field: e.field, message: e.message }])?;
    let json = tree.to_json();
    let mut errors: Vec<PlanError> = match &*PLAN_VALIDATOR {
        Ok(v) => {
            // Each error positioned as it comes, its words not kept beside the others'.
            let (mut errors, mut diags) = (Vec::new(), Vec::new());
            for e in v.iter_errors(&json) {
                diagnose(&e, &json, None, &mut diags);
                errors.extend(diags.drain(..).map(|d| d.at(file, &tree, &[])));
            }
            errors
        }
        Err(e) => vec![at(file, &tree, &[], "plan", format!("the plan schema does not compile: {e}"))],
    };
    if !errors.is_empty() {
        tidy(&mut errors);
        return Err(errors);
    }
    let plan: Plan = serde_json::from_value(json).map_err(|e| vec![at(file, &tree, &[], "plan", e.to_string())])?;
    let loaded = LoadedPlan { file: file.into(), plan, tree, crc32: crc32fast::hash(original.as_bytes()) };
    // The plan's shape first: the checks after it unroll sweeps.
    let mut errors = super::bounds::check(&loaded);
    if errors.is_empty() {
        errors = super::check::check(&loaded);
    }
    if errors.is_empty() {
        Ok(loaded)
    } else {
        tidy(&mut errors);
        Err(errors)
    }
}

static SCHEMA: LazyLock<Value> = LazyLock::new(model::schema);

static PLAN_VALIDATOR: LazyLock<Result<Validator, String>> = LazyLock::new(|| jsonschema::draft7::new(&SCHEMA).map_err(|e| e.to_string()));

/// Validates `{parameter: value}` as the parameters of one worker (for sweep values).
static WORKER_VALIDATOR: LazyLock<Result<Validator, String>> = LazyLock::new(|| {
    let s = serde_json::json!({"$ref": "#/definitions/WorkerSpec", "definitions": SCHEMA["definitions"]});
    jsonschema::draft7::new(&s).map_err(|e| e.to_string())
});

/// Every property name the schema knows: a key on an error's path that is one of these
/// names the field; other keys are user data (opcodes, sizes, percentiles).
static PROPERTY_NAMES: LazyLock<BTreeSet<String>> = LazyLock::new(|| {
    fn walk(v: &Value, out: &mut BTreeSet<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::Object(p)) = m.get("properties") {
                    out.extend(p.keys().cloned());
                }
                m.values().for_each(|v| walk(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    walk(&SCHEMA, &mut out);
    out
});

/// The parameter an error on `path` is about.
pub(crate) fn field_of(path: &[Seg]) -> String {
    path.iter()
        .rev()
        .find_map(|s| match s {
            Seg::Key(k) if PROPERTY_NAMES.contains(k) => Some(k.clone()),
            _ => None,
        })
        .unwrap_or_else(|| "plan".into())
}

/// A schema error turned into words, before it is given a position.
#[derive(Debug)]
pub(crate) struct Diag {
    /// Where, relative to the validated value.
    pub path: Vec<Seg>,
    /// Point at this key of the mapping at `path` rather than at the mapping.
    pub key: Option<String>,
    pub field: String,
    pub message: String,
}

impl Diag {
    /// Positions the error; `base` is the path of the validated value in the document.
    pub(crate) fn at(&self, file: &str, tree: &Node, base: &[Seg]) -> PlanError {
        let mut path = base.to_vec();
        path.extend(self.path.iter().cloned());
        let pos = self.key.as_ref().and_then(|k| tree.locate_key(&path, k)).unwrap_or_else(|| tree.locate(&path));
        PlanError { file: file.into(), line: pos.0, col: pos.1, field: self.field.clone(), message: self.message.clone() }
    }
}

/// Checks `{parameter: value}` against the worker schema (for a sweep value).
pub(crate) fn diagnose_worker_value(value: &Value) -> Vec<Diag> {
    match &*WORKER_VALIDATOR {
        Ok(v) => diagnose_all(v, value),
        Err(e) => vec![Diag { path: Vec::new(), key: None, field: "sweep".into(), message: format!("the worker schema does not compile: {e}") }],
    }
}

fn diagnose_all(v: &Validator, json: &Value) -> Vec<Diag> {
    let mut out = Vec::new();
    for e in v.iter_errors(json) {
        diagnose(&e, json, None, &mut out);
    }
    out
}

/// The instance path as document steps. A numeric step is a key where the value is a
/// mapping (`io_size: {8: 50}`), an index where it is a list.
fn segs(loc: &jsonschema::paths::Location, root: &Value) -> Vec<Seg> {
    let mut v = Some(root);
    loc.iter()
        .map(|s| {
            let seg = match (s, v) {
                (LocationSegment::Index(i), Some(Value::Object(_))) => Seg::Key(i.to_string()),
                (LocationSegment::Index(i), _) => Seg::Index(i),
                (LocationSegment::Property(p), _) => Seg::Key(p.to_string()),
            };
            v = match (&seg, v) {
                (Seg::Key(k), Some(Value::Object(m))) => m.get(k),
                (Seg::Index(i), Some(Value::Array(a))) => a.get(*i),
                _ => None,
            };
            seg
        })
        .collect()
}

fn depth(e: &ValidationError) -> usize {
    e.instance_path().iter().count()
}

/// The deepest instance position any error under `e` reaches.
fn deepest(e: &ValidationError) -> usize {
    let own = depth(e);
    match e.kind() {
        ValidationErrorKind::AnyOf { context } | ValidationErrorKind::OneOfNotValid { context } => {
            context.iter().flatten().map(deepest).max().unwrap_or(own).max(own)
        }
        _ => own,
    }
}

/// Whether the value has the JSON type this error's schema branch wants (the branch failed
/// on its contents, not on its type).
fn fits(e: &ValidationError) -> bool {
    match e.kind() {
        ValidationErrorKind::Type { .. } => false,
        ValidationErrorKind::AnyOf { context } | ValidationErrorKind::OneOfNotValid { context } => context.iter().any(|b| b.iter().all(fits)),
        _ => true,
    }
}

/// The schema node a keyword error belongs to (`schema_path` minus the keyword).
fn schema_node(e: &ValidationError) -> Option<&'static Value> {
    let p = e.schema_path().as_str();
    let parent = &p[..p.rfind('/').unwrap_or(0)];
    SCHEMA.pointer(parent)
}

/// The definition a schema path is inside (`/definitions/Lbas/anyOf/1` -> `Lbas`).
fn definition<'a>(e: &'a ValidationError<'_>) -> Option<&'a str> {
    e.schema_path().as_str().strip_prefix("/definitions/").and_then(|r| r.split('/').next())
}

/// What a value of an alternative-form type looks like, in words.
fn describe(e: &ValidationError) -> Option<String> {
    let own = match definition(e) {
        Some("Lbas") => "a number of LBAs like 8 or 0x100, or bytes with a unit like 4KiB",
        Some("Duration") => "a duration: seconds like 30 or 0.5, or a number with a unit like 30s, 500ms, 2min",
        Some("IoSizeSpec") => "an I/O size like 8 or 4KiB, a list of sizes, or {size: weight}",
        Some("OneOrMany") => "LBAs like 0x100 or bytes like 1GiB, or a list of them",
        Some("RandomSpec") => "true, false or a percentage of random I/O (0-100)",
        Some("TargetSpec") => "a target: `sim`, `sim:<options>` (e.g. sim:ns=1GiB,lba=4096), `vfio:<address>`, {sim: {...}} or {vfio: <address>, power: ...}",
        Some("PowerValue") => "a power switch: text like command:off=CMD,on=CMD, slot, quarch:HOST or suspend, or {kind: ..., ...}",
        _ => "",
    };
    if !own.is_empty() && e.schema_path().as_str().ends_with("/anyOf") && e.schema_path().iter().count() == 3 {
        return Some(own.into());
    }
    if let Some(names) = enum_names(e) {
        return Some(format!("one of {}", names.join(", ")));
    }
    match e.kind() {
        ValidationErrorKind::AnyOf { context } | ValidationErrorKind::OneOfNotValid { context } => context.iter().flatten().find_map(describe),
        _ => None,
    }
}

/// The names a `oneOf` of constants (a unit enum) allows.
fn enum_names(e: &ValidationError) -> Option<Vec<String>> {
    let ValidationErrorKind::OneOfNotValid { context } = e.kind() else { return None };
    let names: Vec<String> = context
        .iter()
        .flatten()
        .filter_map(|b| match b.kind() {
            ValidationErrorKind::Constant { expected_value } => expected_value.as_str().map(str::to_string),
            _ => None,
        })
        .collect();
    (!names.is_empty()).then_some(names)
}

/// Whether text reads as a number (digits, sign, point, exponent, hex prefix) that did not
/// fit one.
fn looks_numeric(t: &str) -> bool {
    let t = t.trim_start_matches(['-', '+']);
    let t = t.strip_prefix("0x").or_else(|| t.strip_prefix("0o")).unwrap_or(t);
    t.len() <= 60 && t.bytes().any(|b| b.is_ascii_digit()) && t.bytes().all(|b| b.is_ascii_hexdigit() || b"+-.eE".contains(&b))
}

/// A value as written, shortened for a message.
pub(crate) fn render(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 60 { format!("{}...", s.chars().take(57).collect::<String>()) } else { s }
}

/// `ctx`: the description of the alternative-form type the error sits in, with the depth it
/// applies at.
fn diagnose(e: &ValidationError, root: &Value, ctx: Option<(&str, usize)>, out: &mut Vec<Diag>) {
    let path = segs(e.instance_path(), root);
    let d = path.len();
    match e.kind() {
        ValidationErrorKind::AnyOf { context } | ValidationErrorKind::OneOfNotValid { context } => {
            let desc = describe(e);
            let ctx = match &desc {
                Some(s) => Some((s.as_str(), d)),
                None => ctx.filter(|c| c.1 == d),
            };
            // A branch that failed deeper inside the value matched its shape: report that.
            let deep = context.iter().map(|b| b.iter().map(deepest).max().unwrap_or(d)).enumerate().max_by_key(|&(i, x)| (x, usize::MAX - i));
            if let Some((i, x)) = deep
                && x > d
            {
                context[i].iter().for_each(|x| diagnose(x, root, ctx, out));
                return;
            }
            // Otherwise the one branch of the right type, if only one is.
            let fitting: Vec<usize> = (0..context.len()).filter(|&i| context[i].iter().all(fits)).collect();
            if let [i] = fitting[..]
                && enum_names(e).is_none()
            {
                context[i].iter().for_each(|x| diagnose(x, root, ctx, out));
                return;
            }
            let expected = ctx.map(|c| c.0.to_string()).unwrap_or_else(|| "a value of another form".into());
            let mut message = format!("expected {expected}, found {}", render(e.instance()));
            if let (Some(names), Some(found)) = (enum_names(e), e.instance().as_str())
                && let Some(s) = suggest(found, names.iter().map(String::as_str))
            {
                message += &format!("; did you mean `{s}`?");
            }
            out.push(Diag { field: field_of(&path), path, key: None, message });
        }
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            let known: Vec<String> =
                schema_node(e).and_then(|n| n.get("properties")).and_then(Value::as_object).map(|m| m.keys().cloned().collect()).unwrap_or_default();
            let worker = definition(e) == Some("WorkerSpec");
            for key in unexpected {
                let k = short(key);
                let what = if worker { format!("unknown parameter `{k}`") } else { format!("unknown key `{k}` in {}", place(e)) };
                // A fio word gets its nvplan name, from the table import-fio uses.
                let fio = if worker { crate::fio::options::plan_hint(key) } else { None };
                let message = match (fio, suggest(key, known.iter().map(String::as_str))) {
                    (Some(h), _) => h,
                    (None, Some(s)) => format!("{what}; did you mean `{s}`?"),
                    (None, None) if worker => format!("{what}; docs/plans.md lists the ioworker parameters"),
                    (None, None) => format!("{what}; known keys: {}", known.join(", ")),
                };
                out.push(Diag { path: path.clone(), key: Some(key.clone()), field: k, message });
            }
        }
        ValidationErrorKind::Required { property } => {
            let p = property.as_str().unwrap_or_default().to_string();
            out.push(Diag { path, key: None, message: format!("missing `{p}`: {} needs one", place(e)), field: p });
        }
        _ => {
            let field = field_of(&path);
            let message = leaf_message(e, ctx.filter(|c| c.1 == d).map(|c| c.0), &field);
            out.push(Diag { path, key: None, field, message });
        }
    }
}

/// What kind of mapping an error is in, for messages.
fn place(e: &ValidationError) -> &'static str {
    match definition(e) {
        None => "the plan",
        Some("PhaseSpec") => "a phase",
        Some("WorkerSpec") => "an ioworker",
        Some("EventSpec") => "an event",
        Some("AdminSpec") => "an admin command",
        Some("PowerCycleSpec") => "power_cycle",
        Some("PcieSpec") => "pcie",
        Some("PowerSpec") => "power",
        Some("ExpectSpec") => "expect",
        Some("SimSpec") => "sim",
        Some("SimNamespaceSpec") => "a namespace",
        Some("TargetSpec") => "target",
        Some(_) => "this mapping",
    }
}

fn type_name(t: &TypeKind) -> String {
    use jsonschema::JsonType as J;
    let one = |t: J| match t {
        J::Integer => "a whole number",
        J::Number => "a number",
        J::String => "text",
        J::Boolean => "true or false",
        J::Array => "a list",
        J::Object => "a mapping",
        J::Null => "nothing",
    };
    match t {
        TypeKind::Single(t) => one(*t).into(),
        TypeKind::Multiple(set) => set.iter().filter(|t| *t != J::Null).map(one).collect::<Vec<_>>().join(" or "),
    }
}

fn leaf_message(e: &ValidationError, ctx: Option<&str>, field: &str) -> String {
    let found = match e.instance().as_str() {
        // A number too large for any type stays text (see yaml::core_scalar): show it as written.
        Some(t) if matches!(e.kind(), ValidationErrorKind::Type { .. }) && looks_numeric(t) => t.to_string(),
        _ => render(e.instance()),
    };
    if let Some(c) = ctx {
        return format!("expected {c}, found {found}");
    }
    let node = schema_node(e);
    let bound = |k: &str| node.and_then(|n| n.get(k)).map(|v| v.to_string());
    match e.kind() {
        ValidationErrorKind::Type { kind } => {
            let mut want = type_name(kind);
            if want == "a whole number"
                && let (Some(lo), Some(hi)) = (bound("minimum"), bound("maximum"))
            {
                want = format!("a whole number from {lo} to {hi}");
            } else if want == "a whole number"
                && let Some(lo) = bound("minimum")
            {
                want = format!("a whole number (at least {lo})");
            }
            format!("expected {want}, found {found}")
        }
        ValidationErrorKind::Minimum { limit } if limit.as_f64() == Some(0.0) => format!("{found} is negative; {field} must be 0 or more"),
        ValidationErrorKind::Minimum { limit } => format!("{found} is below {limit}, the smallest {field} can be"),
        ValidationErrorKind::Maximum { limit } => format!("{found} is above {limit}, the largest {field} can hold"),
        ValidationErrorKind::MinItems { limit } | ValidationErrorKind::MaxItems { limit } => {
            let n = e.instance().as_array().map_or(0, Vec::len);
            match field {
                "io_sequence" => format!("an io_sequence entry is [slba, nlb, opcode, time_sent_us]; this one has {n} values"),
                "ranges" => format!("a DSM range is [slba, nlb]; this one has {n} values"),
                _ if matches!(e.kind(), ValidationErrorKind::MinItems { .. }) => format!("{n} values; give at least {limit}"),
                _ => format!("{n} values; give at most {limit}"),
            }
        }
        ValidationErrorKind::Pattern { .. } => format!("{found} is not written as {field} expects"),
        ValidationErrorKind::Enum { options } => format!("expected one of {options}, found {found}"),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(doc: &str) -> Vec<String> {
        match load_str("p.yaml", doc) {
            Ok(_) => Vec::new(),
            Err(v) => v.iter().map(ToString::to_string).collect(),
        }
    }

    const HEAD: &str = "name: t\nphases:\n  - name: a\n    ioworkers:\n";

    #[test]
    fn unknown_parameters_point_at_the_key_and_suggest_the_name() {
        let e = errors(&format!("{HEAD}      - {{time: 1, qdeph: 4}}\n"));
        assert_eq!(e, vec!["p.yaml:5:19: qdeph: unknown parameter `qdeph`; did you mean `qdepth`?"]);
        let e = errors("name: t\nphases: []\nseeed: 3\n");
        assert!(e.iter().any(|e| e.starts_with("p.yaml:3:1: seeed: unknown key `seeed` in the plan; did you mean `seed`?")), "{e:?}");
    }

    #[test]
    fn fio_words_in_a_worker_get_the_nvplan_name_from_the_import_table() {
        let e = errors(&format!("{HEAD}      - {{time: 1, bs: 4k, iodepth: 32, norandommap: 1}}\n"));
        assert_eq!(
            e,
            vec![
                "p.yaml:5:19: bs: fio's bs is io_size here (in LBAs or with a unit: 4KiB)",
                "p.yaml:5:27: iodepth: fio's iodepth is qdepth here",
                "p.yaml:5:40: norandommap: fio's norandommap has no ioworker parameter: nvplan picks every random offset independently, always",
            ]
        );
        let e = errors("name: t\nphases:\n  - name: a\n    sweep: {rwmixread: [10]}\n    ioworkers: [{time: 1}]\n");
        assert_eq!(e, vec!["p.yaml:4:13: rwmixread: unknown sweep parameter `rwmixread`: fio's rwmixread is read_percentage here"]);
    }

    #[test]
    fn alternative_forms_collapse_into_one_message_at_the_value() {
        let e = errors(&format!("{HEAD}      - {{time: 1, io_size: abc}}\n"));
        assert_eq!(e, vec!["p.yaml:5:28: io_size: expected a number of LBAs like 8 or 0x100, or bytes with a unit like 4KiB, found \"abc\""]);
        let e = errors(&format!("{HEAD}      - {{time: 5 fortnights}}\n"));
        assert_eq!(e.len(), 1);
        assert!(e[0].starts_with("p.yaml:5:16: time: expected a duration"), "{e:?}");
        let e = errors(&format!("{HEAD}      - {{time: 1, lba_random: 300}}\n"));
        assert_eq!(e, vec!["p.yaml:5:31: lba_random: expected true, false or a percentage of random I/O (0-100), found 300"]);
    }

    #[test]
    fn errors_inside_a_list_or_map_point_at_the_element() {
        let e = errors(&format!("{HEAD}      - {{time: 1, region_start: [1, x], region_end: [5, 6]}}\n"));
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].starts_with("p.yaml:5:37: region_start: expected a number of LBAs"), "{e:?}");
        let e = errors(&format!("{HEAD}      - {{time: 1, io_size: {{'8': x}}}}\n"));
        assert_eq!(e, vec!["p.yaml:5:34: io_size: expected a whole number from 0 to 4294967295, found \"x\""]);
    }

    #[test]
    fn enums_list_their_names_and_suggest_one() {
        let e = errors("name: t\nphases:\n  - name: a\n    events: [{at: 1, reset: controler}]\n");
        assert_eq!(
            e,
            vec![
                "p.yaml:4:29: reset: expected one of controller, subsystem, pcie, flr, pcie_hot, link_disable, found \"controler\"; did you mean `controller`?"
            ]
        );
    }

    #[test]
    fn missing_keys_point_at_the_mapping_and_every_error_is_reported() {
        let e = errors("name: t\nphases:\n  - ioworkers: [{time: 1, qdepth: -1}]\n  - name: b\n    events: [{reset: pcie}]\n");
        assert_eq!(
            e,
            vec![
                "p.yaml:3:5: name: missing `name`: a phase needs one",
                "p.yaml:3:35: qdepth: -1 is negative; qdepth must be 0 or more",
                "p.yaml:5:14: at: missing `at`: an event needs one",
            ],
            "sorted by position"
        );
    }

    #[test]
    fn unknown_keys_inside_a_sim_target_are_found_through_the_alternatives() {
        let e = errors("name: t\ntarget: {sim: {mdtss: 3}}\nphases: []\n");
        assert!(e.iter().any(|e| e.starts_with("p.yaml:2:16: mdtss: unknown key `mdtss` in sim; did you mean `mdts`?")), "{e:?}");
    }

    #[test]
    fn io_sequence_entries_must_have_four_values() {
        let e = errors(&format!("{HEAD}      - {{io_sequence: [[0, 1, 2, 0], [0, 1, 2]]}}\n"));
        assert_eq!(e, vec!["p.yaml:5:38: io_sequence: an io_sequence entry is [slba, nlb, opcode, time_sent_us]; this one has 3 values"]);
    }

    #[test]
    fn syntax_errors_stop_at_the_first_with_its_position() {
        let e = errors("name: t\nphases: [\n");
        assert_eq!(e.len(), 1);
        assert!(e[0].starts_with("p.yaml:") && e[0].contains(": yaml: "), "{e:?}");
    }
}
