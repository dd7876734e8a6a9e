//! A YAML document as a tree that remembers where every node came from, so that any error
//! found later (by the JSON Schema, or by a semantic check) can point at `file:line:col`.
//! Anchors, aliases and merge keys (`<<`) are resolved; positions of merged values are
//! those of their definition.

use std::collections::{HashMap, HashSet};

use serde_saphyr::granit_parser::{ErrorKind, Event, Parser, ScalarStyle, ScanError, Span, options};

use super::bounds::{MAX_ALIAS_BYTES, MAX_ALIAS_NODES, MAX_DEPTH, MAX_NODES, MAX_PLAN_BYTES, count};

/// A node and its position (1-based line and column).
#[derive(Clone, Debug)]
pub struct Node {
    /// What the node holds.
    pub kind: Kind,
    /// Line of the node's first character.
    pub line: usize,
    /// Column of the node's first character.
    pub col: usize,
}

/// Node contents.
#[derive(Clone, Debug)]
pub enum Kind {
    /// A mapping: `(key, key line, key column, value)`, sorted by key (see [`Node::entry`]).
    Map(Vec<(String, usize, usize, Node)>),
    /// A sequence.
    Seq(Vec<Node>),
    /// A scalar; `plain` when written without quotes (then typed as YAML 1.2 core schema).
    Scalar {
        /// The text.
        text: String,
        /// Unquoted.
        plain: bool,
    },
}

/// A syntax error, or a limit reached while reading, with its position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    /// Line (1-based).
    pub line: usize,
    /// Column (1-based).
    pub col: usize,
    /// The mapping key the error is under (`yaml` when it is about the syntax itself).
    pub field: String,
    /// What is wrong, and the fix.
    pub message: String,
}

/// Parses one YAML document, expanding aliases and merge keys, within the limits of
/// [`super::bounds`]: the document is read event by event and building stops at the
/// first limit reached, so neither time nor memory grows past them.
pub fn parse(text: &str) -> Result<Node, SyntaxError> {
    // The parser's own nesting limits back ours up: it may look ahead of the builder.
    let options = options! {
        emit_anchor_events: true,
        flow_nesting_limit: MAX_DEPTH,
        block_nesting_limit: MAX_DEPTH,
    };
    let mut b = Builder {
        events: Parser::new_from_str_with_options(text, options),
        text,
        peeked: None,
        anchors: HashMap::new(),
        kept: Size::default(),
        names: HashMap::new(),
        nodes: 0,
        alias_nodes: 0,
        alias_bytes: 0,
        depth: 0,
        field: None,
    };
    b.document()
}

/// An anchored node, kept for its aliases.
struct Anchor {
    node: Node,
    /// Nodes in it.
    nodes: usize,
    /// Bytes of text (scalars and keys) in it.
    bytes: usize,
    /// Levels of lists and mappings in it (0 for a scalar).
    height: usize,
}

/// What a built node holds, for the limits.
#[derive(Clone, Copy, Default)]
struct Size {
    nodes: usize,
    bytes: usize,
    height: usize,
}

struct Builder<'a, P> {
    events: P,
    text: &'a str,
    peeked: Option<(Event<'a>, usize, usize)>,
    /// Anchored nodes by anchor ID (a name defined again gets a new ID).
    anchors: HashMap<usize, Anchor>,
    /// What the anchors keep, together.
    kept: Size,
    /// Anchor names by ID, for messages.
    names: HashMap<usize, String>,
    /// Nodes built so far, copies included.
    nodes: usize,
    /// Nodes and bytes added by aliases so far.
    alias_nodes: usize,
    alias_bytes: usize,
    /// Nesting level of the node being built.
    depth: usize,
    /// The innermost mapping key on the way to the node being built.
    field: Option<String>,
}

impl<'a, P: Iterator<Item = Result<(Event<'a>, Span), ScanError>>> Builder<'a, P> {
    fn error(&self, line: usize, col: usize, message: impl Into<String>) -> SyntaxError {
        let field = self.field.as_deref().map_or_else(|| "yaml".into(), super::error::short);
        SyntaxError { line, col, field, message: message.into() }
    }

    /// The next event and its position; the end of the events is an error at the end of
    /// the text.
    fn next(&mut self) -> Result<(Event<'a>, usize, usize), SyntaxError> {
        if let Some(e) = self.peeked.take() {
            return Ok(e);
        }
        match self.events.next() {
            Some(Ok((e, span))) => Ok((e, span.start.line(), span.start.col() + 1)),
            Some(Err(e)) => Err(scan_error(self.text, &e)),
            None => {
                let (line, col) = end_of(self.text);
                Err(SyntaxError { line, col, field: "yaml".into(), message: "the YAML ends in the middle of a list or mapping".into() })
            }
        }
    }

    /// The position of the next event.
    fn next_pos(&mut self) -> Result<(usize, usize), SyntaxError> {
        self.peek()?;
        Ok(self.peeked.as_ref().map_or((1, 1), |p| (p.1, p.2)))
    }

    fn peek(&mut self) -> Result<&Event<'a>, SyntaxError> {
        if self.peeked.is_none() {
            let e = self.next()?;
            self.peeked = Some(e);
        }
        Ok(&self.peeked.as_ref().expect("just peeked").0)
    }

    fn document(&mut self) -> Result<Node, SyntaxError> {
        let empty = || Node { kind: Kind::Map(Vec::new()), line: 1, col: 1 };
        loop {
            match self.peek()? {
                Event::StreamStart | Event::DocumentStart(..) => {
                    self.next()?;
                }
                Event::StreamEnd | Event::DocumentEnd => return Ok(empty()),
                _ => break,
            }
        }
        let (n, _) = self.node()?;
        // A second document is a mistake in a plan file.
        loop {
            let (e, line, col) = self.next()?;
            match e {
                Event::StreamEnd => return Ok(n),
                Event::DocumentStart(..) => {
                    return Err(SyntaxError {
                        line,
                        col,
                        field: "yaml".into(),
                        message: "a plan file holds one YAML document; remove the second `---`".into(),
                    });
                }
                _ => {}
            }
        }
    }

    /// Counts one more node of `bytes` bytes of text at `line:col`.
    fn count(&mut self, line: usize, col: usize) -> Result<(), SyntaxError> {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(self.error(
                line,
                col,
                format!(
                    "the plan has more than {} nodes (values, lists and mappings) here; a plan holds at most that many: split it into several plans",
                    count(MAX_NODES as u64)
                ),
            ));
        }
        Ok(())
    }

    /// Enters a list or mapping at `line:col`.
    fn enter(&mut self, line: usize, col: usize) -> Result<(), SyntaxError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error(line, col, depth_message()));
        }
        Ok(())
    }

    /// The anchor name that follows a node event with anchor `id` (0: none).
    fn anchor_name(&mut self, id: usize) -> Result<(), SyntaxError> {
        if id != 0
            && let Event::Anchor(aid, name) = self.peek()?
            && *aid == id
        {
            let name = name.to_string();
            self.names.insert(id, name);
            self.next()?;
        }
        Ok(())
    }

    /// Keeps a copy of node `n` of anchor `id` (0: none) for its aliases. Anchors inside an
    /// anchored node are kept again with it: together they keep no more than a plan holds.
    fn remember(&mut self, id: usize, n: &Node, size: Size) -> Result<(), SyntaxError> {
        if id == 0 {
            return Ok(());
        }
        self.kept.nodes += size.nodes;
        self.kept.bytes += size.bytes;
        if self.kept.nodes > MAX_NODES || self.kept.bytes > MAX_PLAN_BYTES {
            let name = self.names.get(&id).map_or_else(|| "this anchor".into(), |n| format!("&{n}"));
            return Err(self.error(
                n.line,
                n.col,
                format!(
                    "{name} and the anchors before it keep more than {} nodes or {} bytes for their aliases (an anchor inside an anchored node counts again); anchor fewer or smaller nodes",
                    count(MAX_NODES as u64),
                    count(MAX_PLAN_BYTES as u64)
                ),
            ));
        }
        self.anchors.insert(id, Anchor { node: n.clone(), nodes: size.nodes, bytes: size.bytes, height: size.height });
        Ok(())
    }

    fn alias_name(&self, id: usize) -> String {
        self.names.get(&id).map_or_else(|| "this alias".into(), |n| format!("*{n}"))
    }

    /// The node at the next event, and what it holds.
    fn node(&mut self) -> Result<(Node, Size), SyntaxError> {
        let (ev, line, col) = self.next()?;
        match ev {
            Event::Scalar(text, style, anchor, _) => {
                self.count(line, col)?;
                self.anchor_name(anchor)?;
                let size = Size { nodes: 1, bytes: text.len(), height: 0 };
                let n = Node { kind: Kind::Scalar { text: text.into_owned(), plain: matches!(style, ScalarStyle::Plain) }, line, col };
                self.remember(anchor, &n, size)?;
                Ok((n, size))
            }
            Event::Alias(id) => self.alias(id, line, col),
            Event::SequenceStart(_, anchor, _) => {
                self.count(line, col)?;
                self.enter(line, col)?;
                self.anchor_name(anchor)?;
                let mut size = Size { nodes: 1, bytes: 0, height: 1 };
                let mut items = Vec::new();
                loop {
                    if matches!(self.peek()?, Event::SequenceEnd) {
                        self.next()?;
                        break;
                    }
                    let (n, s) = self.node()?;
                    size.add(s);
                    items.push(n);
                }
                self.depth -= 1;
                let n = Node { kind: Kind::Seq(items), line, col };
                self.remember(anchor, &n, size)?;
                Ok((n, size))
            }
            Event::MappingStart(_, anchor, _) => {
                self.count(line, col)?;
                self.enter(line, col)?;
                self.anchor_name(anchor)?;
                let outer = self.field.clone();
                let r = self.mapping(line, col);
                self.field = outer;
                self.depth -= 1;
                let (n, size) = r?;
                self.remember(anchor, &n, size)?;
                Ok((n, size))
            }
            _ => Err(self.error(line, col, "unexpected YAML structure")),
        }
    }

    /// A copy of the anchored node `id`, within the limits on what aliases add.
    fn alias(&mut self, id: usize, line: usize, col: usize) -> Result<(Node, Size), SyntaxError> {
        let name = self.alias_name(id);
        let Some(a) = self.anchors.get(&id) else {
            // The parser knows every anchor before its aliases; one it knows and this
            // builder does not is a list or mapping still being built: the alias is inside it.
            return Err(self.error(
                line,
                col,
                format!("{name} is inside the node its anchor names, which would contain itself without end; an alias can only copy a node that is complete"),
            ));
        };
        let (nodes, bytes, height) = (a.nodes, a.bytes, a.height);
        if self.depth + height > MAX_DEPTH {
            return Err(self.error(line, col, depth_message()));
        }
        let added = self.alias_nodes.saturating_add(nodes);
        if added > MAX_ALIAS_NODES {
            return Err(self.error(
                line,
                col,
                format!(
                    "{name} copies {} nodes, bringing what aliases add to {}; aliases may add at most {} nodes to a plan: write fewer aliases of large nodes, or split the plan",
                    count(nodes as u64),
                    count(added as u64),
                    count(MAX_ALIAS_NODES as u64)
                ),
            ));
        }
        let added_bytes = self.alias_bytes.saturating_add(bytes);
        if added_bytes > MAX_ALIAS_BYTES {
            return Err(self.error(
                line,
                col,
                format!(
                    "{name} copies {} bytes of text, bringing what aliases add to {}; aliases may add at most {} bytes to a plan: write fewer aliases of long values, or split the plan",
                    count(bytes as u64),
                    count(added_bytes as u64),
                    count(MAX_ALIAS_BYTES as u64)
                ),
            ));
        }
        if self.nodes + nodes > MAX_NODES {
            self.nodes = MAX_NODES;
            return self.count(line, col).map(|_| unreachable!("the count is past the limit"));
        }
        self.alias_nodes = added;
        self.alias_bytes = added_bytes;
        self.nodes += nodes;
        let node = a.node.clone();
        Ok((node, Size { nodes, bytes, height }))
    }

    /// The entries of a mapping whose start event was at `line:col`; merge keys (`<<`)
    /// resolved.
    fn mapping(&mut self, line: usize, col: usize) -> Result<(Node, Size), SyntaxError> {
        let mut size = Size { nodes: 1, bytes: 0, height: 1 };
        let mut entries: Vec<(String, usize, usize, Node)> = Vec::new();
        let mut written: HashSet<String> = HashSet::new();
        let mut merged: Vec<(String, usize, usize, Node)> = Vec::new();
        let outer = self.field.clone();
        loop {
            self.field.clone_from(&outer);
            if matches!(self.peek()?, Event::MappingEnd) {
                self.next()?;
                break;
            }
            let (key, ks) = self.node()?;
            let Kind::Scalar { text, plain } = key.kind else {
                return Err(self.error(key.line, key.col, "a mapping key must be a plain value; write the key as text, e.g. `name:`"));
            };
            if text.is_empty() {
                // YAML allows it; no key of a plan is empty.
                return Err(self.error(key.line, key.col, "an empty key; write the name of the field, e.g. `name:`"));
            }
            size.add(ks);
            let merge = plain && text == "<<";
            if !merge {
                self.field = Some(text.clone());
            }
            let at = self.next_pos()?;
            let (value, vs) = self.node()?;
            size.add(vs);
            // Merge key (https://yaml.org/type/merge.html, a YAML 1.1 type): the entries of
            // the merged mapping(s) that are not written here; earlier mappings of a list win.
            if merge {
                let sources = match value.kind {
                    Kind::Map(_) => vec![value],
                    Kind::Seq(v) => v,
                    Kind::Scalar { .. } => {
                        return Err(self.error(at.0, at.1, "`<<` merges mappings: give an alias of a mapping, or a list of them (`<<: [*a, *b]`)"));
                    }
                };
                for s in sources {
                    match s.kind {
                        Kind::Map(m) => merged.extend(m),
                        _ => return Err(self.error(s.line, s.col, "`<<` merges mappings: every item of its list must be a mapping")),
                    }
                }
                continue;
            }
            if !written.insert(text.clone()) {
                // YAML 1.2 §3.2.1.1: the keys of a mapping are unique.
                return Err(self.error(
                    key.line,
                    key.col,
                    format!("duplicate key `{}`; a key appears once in a mapping: remove or rename one", super::error::short(&text)),
                ));
            }
            entries.push((text, key.line, key.col, value));
        }
        for m in merged {
            if written.insert(m.0.clone()) {
                entries.push(m);
            }
        }
        // Sorted, so that finding a key (for every error's position) takes log n steps
        // whatever the size of the mapping.
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Ok((Node { kind: Kind::Map(entries), line, col }, size))
    }
}

impl Size {
    /// Adds a child's size.
    fn add(&mut self, child: Size) {
        self.nodes += child.nodes;
        self.bytes += child.bytes;
        self.height = self.height.max(child.height + 1);
    }
}

fn depth_message() -> String {
    format!("lists and mappings nest more than {MAX_DEPTH} levels deep here; a plan nests at most {MAX_DEPTH}: remove the extra levels")
}

/// Line and column (1-based) just past the end of `text`.
fn end_of(text: &str) -> (usize, usize) {
    position(text, text.len())
}

/// The lines of `text` with their byte offsets; a line ends at LF, CR LF or CR (YAML 1.2
/// §5.4).
pub(crate) fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let b = text.as_bytes();
    let mut start = 0;
    std::iter::from_fn(move || {
        if start > b.len() {
            return None;
        }
        let from = start;
        let mut i = from;
        while i < b.len() && b[i] != b'\n' && b[i] != b'\r' {
            i += 1;
        }
        start = match (b.get(i), b.get(i + 1)) {
            (Some(b'\r'), Some(b'\n')) => i + 2,
            (Some(_), _) => i + 1,
            (None, _) => b.len() + 1,
        };
        Some((from, &text[from..i]))
    })
}

/// Line and column (1-based, in characters) of byte `at` of `text` (at most its length).
pub(crate) fn position(text: &str, at: usize) -> (usize, usize) {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let mut last = (1, 1);
    for (n, (from, l)) in lines(text).enumerate() {
        if from > at {
            break;
        }
        let col = text.get(from..at.min(from + l.len())).map_or(l.len(), |t| t.chars().count());
        last = (n + 1, col + 1);
    }
    last
}

/// A parser error in words, with the fix where the error is one a plan commonly has.
fn scan_error(text: &str, e: &ScanError) -> SyntaxError {
    let m = e.marker();
    let (line, col) = (m.line(), m.col() + 1);
    let err = |line, col, message: String| SyntaxError { line, col, field: "yaml".into(), message };
    match e.kind() {
        ErrorKind::RecursionLimitExceeded => err(line, col, depth_message()),
        ErrorKind::TabNotAllowed
        | ErrorKind::TabInBlockIndentation
        | ErrorKind::TabInIndentation
        | ErrorKind::TabInPlainScalar
        | ErrorKind::TabAtBlockScalarStart => match tab_indent(text, line + 1) {
            // YAML 1.2 §6.1: tabs must not be used in indentation.
            Some((l, c)) => err(l, c, "a tab in the indentation; YAML indents with spaces only: replace the tab with spaces".into()),
            None => err(line, col, format!("{}: a tab where YAML allows only spaces; replace it with spaces", e.info())),
        },
        ErrorKind::UnexpectedCharacter { character } if character.is_control() => {
            // YAML 1.2 §5.1: a YAML stream holds printable characters only.
            err(line, col, format!("a control character (U+{:04X}) in the text; a plan holds printable text only: remove it", u32::from(*character)))
        }
        ErrorKind::BomInsideDocument => {
            err(line, col, "a byte-order mark (U+FEFF) inside the document; YAML allows one only at the start of the file: remove it".into())
        }
        ErrorKind::UnknownAnchor => {
            err(line, col, "an alias of an anchor not defined before it; define the anchor (`&name`) before its first alias (`*name`)".into())
        }
        _ => err(line, col, e.info()),
    }
}

/// The first tab in the indentation of a line up to `last_line` (1-based), skipping lines
/// that hold nothing or a comment.
fn tab_indent(text: &str, last_line: usize) -> Option<(usize, usize)> {
    for (i, (_, l)) in lines(text).enumerate().take(last_line) {
        let indent = l.len() - l.trim_start_matches([' ', '\t']).len();
        let rest = &l[indent..];
        if rest.is_empty() || rest.starts_with('#') {
            continue;
        }
        if let Some(c) = l[..indent].find('\t') {
            return Some((i + 1, c + 1));
        }
    }
    None
}

/// A step of a path into the document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seg {
    /// A mapping key.
    Key(String),
    /// A sequence index.
    Index(usize),
}

impl Node {
    /// Nodes in this one, itself and mapping keys included (as [`parse`] counts them).
    pub fn size(&self) -> usize {
        1 + match &self.kind {
            Kind::Map(m) => m.iter().map(|e| 1 + e.3.size()).sum(),
            Kind::Seq(v) => v.iter().map(Node::size).sum(),
            Kind::Scalar { .. } => 0,
        }
    }

    /// The entry of key `k`, when this is a mapping that has one.
    pub fn entry(&self, k: &str) -> Option<&(String, usize, usize, Node)> {
        match &self.kind {
            Kind::Map(m) => m.binary_search_by(|e| e.0.as_str().cmp(k)).ok().map(|i| &m[i]),
            _ => None,
        }
    }

    /// The node at one step from this one.
    pub fn child(&self, seg: &Seg) -> Option<&Node> {
        match (seg, &self.kind) {
            (Seg::Key(k), Kind::Map(_)) => self.entry(k).map(|e| &e.3),
            (Seg::Index(i), Kind::Seq(v)) => v.get(*i),
            _ => None,
        }
    }

    /// The position of the node at `path`, or of the deepest node on the way (and of the
    /// key, when the last step is a key that is written).
    pub fn locate(&self, path: &[Seg]) -> (usize, usize) {
        let mut node = self;
        for seg in path {
            match node.child(seg) {
                Some(n) => node = n,
                None => break,
            }
        }
        (node.line, node.col)
    }

    /// The position of a key of the mapping at `path` (for "unknown field" errors).
    pub fn locate_key(&self, path: &[Seg], key: &str) -> Option<(usize, usize)> {
        let mut node = self;
        for seg in path {
            node = node.child(seg)?;
        }
        node.entry(key).map(|e| (e.1, e.2))
    }

    /// The document as JSON, scalars typed by the YAML 1.2 core schema (quoted ones stay
    /// strings).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match &self.kind {
            Kind::Map(m) => Value::Object(m.iter().map(|(k, _, _, v)| (k.clone(), v.to_json())).collect()),
            Kind::Seq(v) => Value::Array(v.iter().map(Node::to_json).collect()),
            Kind::Scalar { text, plain: false } => Value::String(text.clone()),
            Kind::Scalar { text, plain: true } => core_scalar(text),
        }
    }
}

/// A plain scalar under the YAML 1.2 core schema.
fn core_scalar(t: &str) -> serde_json::Value {
    use serde_json::Value;
    match t {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    let (neg, digits) = match t.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let int = if let Some(h) = digits.strip_prefix("0x") {
        u64::from_str_radix(h, 16).ok()
    } else if let Some(o) = digits.strip_prefix("0o") {
        u64::from_str_radix(o, 8).ok()
    } else if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        digits.parse::<u64>().ok()
    } else {
        None
    };
    if let Some(v) = int {
        return if neg { 0i64.checked_sub_unsigned(v).map_or_else(|| Value::String(t.into()), Value::from) } else { Value::from(v) };
    }
    // A whole number beyond 64 bits is no float (YAML 1.2 §10.3.2): it stays text, which
    // the checks name as out of range.
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return Value::String(t.into());
    }
    let looks_float = t.bytes().any(|b| b.is_ascii_digit()) && t.bytes().all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b));
    if looks_float && let Ok(f) = t.parse::<f64>() {
        // A float that is a whole number (`8.0`, `1e4`) is that number: JSON Schema takes it
        // for an integer, and a parameter that counts reads it as one.
        const EXACT: f64 = (1u64 << 53) as f64;
        if f.fract() == 0.0 && f.abs() <= EXACT {
            return Value::from(f as i64);
        }
        return serde_json::Number::from_f64(f).map(Value::Number).unwrap_or(Value::String(t.into()));
    }
    Value::String(t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_point_at_values_and_keys() {
        let doc = "name: x\nphases:\n  - name: a\n    ioworkers:\n      - {io_size: 8, qdepth: 4097}\n";
        let n = parse(doc).unwrap();
        let p = [Seg::Key("phases".into()), Seg::Index(0), Seg::Key("ioworkers".into()), Seg::Index(0), Seg::Key("qdepth".into())];
        assert_eq!(n.locate(&p), (5, 30));
        assert_eq!(n.locate_key(&p[..4], "qdepth"), Some((5, 22)));
        // A missing key points at the deepest node that exists.
        assert_eq!(n.locate(&[Seg::Key("phases".into()), Seg::Index(3)]), (3, 3));
    }

    #[test]
    fn scalars_follow_the_core_schema() {
        let n = parse("a: 0x100000\nb: '8'\nc: 1.5\nd: true\ne: 30s\nf: -4\ng: ~\n").unwrap();
        let j = n.to_json();
        assert_eq!(j["a"], 0x100000);
        assert_eq!(j["b"], "8");
        assert_eq!(j["c"], 1.5);
        assert_eq!(j["d"], true);
        assert_eq!(j["e"], "30s");
        assert_eq!(j["f"], -4);
        assert!(j["g"].is_null());
    }

    #[test]
    fn anchors_aliases_and_merge_keys_resolve() {
        let doc = "base: &b {qdepth: 8, time: 5}\nw:\n  <<: *b\n  time: 9\n";
        let j = parse(doc).unwrap().to_json();
        assert_eq!(j["w"]["qdepth"], 8);
        assert_eq!(j["w"]["time"], 9, "a written key beats a merged one");
    }

    #[test]
    fn syntax_errors_and_duplicates_have_positions() {
        let e = parse("a: [1, 2\n").unwrap_err();
        assert!(e.line >= 1);
        let e = parse("a: 1\na: 2\n").unwrap_err();
        assert_eq!((e.line, e.col), (2, 1));
        assert!(e.message.contains("duplicate"));
    }

    /// The "billion laughs": nine levels of anchors, ten aliases each.
    fn laughs(levels: usize) -> String {
        let mut doc = String::from("l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
        for i in 1..levels {
            doc += &format!("l{i}: &l{i} [{}]\n", vec![format!("*l{}", i - 1); 10].join(", "));
        }
        doc
    }

    #[test]
    fn alias_bomb_stops_at_the_alias_node_limit() {
        let e = parse(&laughs(9)).unwrap_err();
        // l4 holds 11,111 nodes: its tenth copy in l5 passes 100,000.
        // l3 holds 11,111 nodes; l1 to l3 added 12,330: the eighth copy of l3 in l4 passes
        // 100,000.
        assert_eq!((e.line, e.col, e.field.as_str()), (5, 45, "l4"), "{e:?}");
        assert_eq!(
            e.message,
            "*l3 copies 11,111 nodes, bringing what aliases add to 101,218; aliases may add at most 100,000 nodes to a plan: write fewer aliases of large nodes, or split the plan"
        );
        assert!(parse(&laughs(4)).is_ok(), "four levels add 12,330 nodes: within the limit");
    }

    #[test]
    fn aliases_of_long_text_stop_at_the_alias_byte_limit() {
        let long = "x".repeat(300_000);
        let e = parse(&format!("a: &a {long}\nb: [*a, *a, *a, *a]\n")).unwrap_err();
        assert_eq!((e.line, e.col, e.field.as_str()), (2, 17, "b"), "{e:?}");
        assert!(e.message.starts_with("*a copies 300,000 bytes of text, bringing what aliases add to 1,200,000; aliases may add at most 1,048,576"), "{e:?}");
    }

    #[test]
    fn a_list_past_the_node_limit_stops_where_it_passes_it() {
        let doc = format!("a: [{}]\n", vec!["0"; MAX_NODES].join(","));
        let e = parse(&doc).unwrap_err();
        // The mapping, its key, the list and 149,997 items: the next item is one too many.
        assert_eq!((e.line, e.col, e.field.as_str()), (1, 5 + 2 * (MAX_NODES - 3), "a"), "{e:?}");
        assert!(e.message.starts_with("the plan has more than 150,000 nodes"), "{e:?}");
        assert!(parse(&format!("a: [{}]\n", vec!["0"; MAX_NODES - 3].join(","))).is_ok());
    }

    #[test]
    fn nesting_past_the_depth_limit_is_an_error_in_flow_and_block_style() {
        let ok = format!("a: {}{}\n", "[".repeat(MAX_DEPTH - 1), "]".repeat(MAX_DEPTH - 1));
        assert!(parse(&ok).is_ok(), "the mapping and 63 lists");
        let flow = format!("a: {}{}\n", "[".repeat(300), "]".repeat(300));
        let e = parse(&flow).unwrap_err();
        assert_eq!((e.line, e.field.as_str()), (1, "yaml"), "{e:?}");
        assert!((MAX_DEPTH + 3..=MAX_DEPTH + 5).contains(&e.col), "at the first list too deep, or the one after: {e:?}");
        assert_eq!(e.message, "lists and mappings nest more than 64 levels deep here; a plan nests at most 64: remove the extra levels");
        let block: String = (0..300).map(|i| format!("{}k{i}:\n", " ".repeat(i))).collect();
        let e = parse(&block).unwrap_err();
        assert_eq!((e.line, e.message.as_str()), (MAX_DEPTH + 1, depth_message().as_str()), "{e:?}");
    }

    #[test]
    fn aliases_cannot_nest_past_the_depth_limit() {
        // Each level is one list deeper than the one it copies: l62 nests 63 lists, and in
        // l63's list, under the document's mapping, would reach 65 levels.
        let mut doc = String::from("l0: &l0 [x]\n");
        for i in 1..100 {
            doc += &format!("l{i}: &l{i} [*l{}]\n", i - 1);
        }
        let e = parse(&doc).unwrap_err();
        assert_eq!((e.line, e.col, e.field.as_str()), (64, 12, "l63"), "{e:?}");
        assert_eq!(e.message, depth_message());
    }

    #[test]
    fn anchors_inside_anchored_nodes_keep_no_more_than_a_plan_holds() {
        // Each anchor keeps the list below it again: 64 copies of 10,000 items.
        let list = format!("[{}]", vec!["1"; 10_000].join(","));
        let doc = format!("a: {}{list}{}\n", (0..62).map(|i| format!("&a{i} [")).collect::<String>(), "]".repeat(62));
        let e = parse(&doc).unwrap_err();
        assert_eq!((e.line, e.field.as_str()), (1, "a"), "{e:?}");
        assert!(e.message.starts_with("&a"), "{e:?}");
        assert!(e.message.contains("and the anchors before it keep more than 150,000 nodes or 8,388,608 bytes"), "{e:?}");
        let plain = format!("a: {}{list}{}\n", "[".repeat(62), "]".repeat(62));
        assert!(parse(&plain).is_ok(), "without the anchors it is an ordinary value");
    }

    #[test]
    fn many_anchors_and_aliases_resolve_in_linear_time() {
        let n = 40_000;
        let doc = format!("a: [{}]\nb: [{}]\n", (0..n).map(|i| format!("&x{i} 1")).collect::<Vec<_>>().join(","), vec!["*x0"; n].join(","));
        let j = parse(&doc).unwrap().to_json();
        assert_eq!(j["b"].as_array().map(Vec::len), Some(n));
    }

    #[test]
    fn an_alias_inside_the_node_it_names_is_an_error() {
        let e = parse("a: &a {x: 1, <<: *a}\n").unwrap_err();
        assert_eq!((e.line, e.col, e.field.as_str()), (1, 18, "a"), "{e:?}");
        assert!(e.message.starts_with("*a is inside the node its anchor names"), "{e:?}");
        let e = parse("a: &a [1, [2, *a]]\n").unwrap_err();
        assert_eq!((e.line, e.col), (1, 15), "{e:?}");
    }

    #[test]
    fn a_redefined_anchor_names_its_latest_node() {
        // YAML 1.2 §3.2.2.2: an alias refers to the most recent node with its anchor.
        let j = parse("a: &x 1\nb: *x\nc: &x 2\nd: *x\n").unwrap().to_json();
        assert_eq!((j["b"].as_u64(), j["d"].as_u64()), (Some(1), Some(2)));
    }

    #[test]
    fn merge_keys_take_mappings_only() {
        let e = parse("a: &a 1\nb: {<<: *a}\n").unwrap_err();
        assert_eq!((e.line, e.col, e.field.as_str()), (2, 9, "b"), "at the alias: {e:?}");
        let e = parse("a: &a {x: 1}\nb: {<<: [*a, 2]}\n").unwrap_err();
        assert_eq!((e.line, e.col), (2, 14), "{e:?}");
        let j = parse("a: &a {x: 1, y: 1}\nc: &c {x: 3, z: 3}\nb: {<<: [*a, *c], y: 2}\n").unwrap().to_json();
        assert_eq!(j["b"], serde_json::json!({"x": 1, "y": 2, "z": 3}), "earlier mappings win; written keys win over merged ones");
        let j = parse("b: {'<<': 1}\n").unwrap().to_json();
        assert_eq!(j["b"]["<<"], 1, "a quoted `<<` is an ordinary key");
    }

    #[test]
    fn crlf_and_cr_line_ends_count_lines_as_lf_does() {
        for nl in ["\n", "\r\n", "\r"] {
            let doc = ["name: x", "phases:", "  - name: a", "    qdepth: 8", ""].join(nl);
            let n = parse(&doc).unwrap();
            assert_eq!(n.locate(&[Seg::Key("phases".into()), Seg::Index(0), Seg::Key("qdepth".into())]), (4, 13), "{nl:?}");
            assert_eq!(n.to_json()["phases"][0]["qdepth"], 8);
            assert_eq!(position(&doc, doc.find("qdepth").unwrap()), (4, 5), "{nl:?}");
        }
    }

    #[test]
    fn tabs_in_indentation_are_an_error_at_the_tab() {
        let e = parse("a:\n  b: 1\n\tc: 2\n").unwrap_err();
        assert_eq!((e.line, e.col, e.field.as_str()), (3, 1, "yaml"), "{e:?}");
        assert_eq!(e.message, "a tab in the indentation; YAML indents with spaces only: replace the tab with spaces");
        assert!(parse("a: 1\t# a tab between a value and its comment\nb:\t2\n").is_ok(), "tabs separate within a line");
    }

    #[test]
    fn control_characters_are_an_error_at_their_position() {
        let e = parse("a: 1\nb: \u{0}\n").unwrap_err();
        assert_eq!((e.line, e.col), (2, 4), "{e:?}");
        assert!(e.message.starts_with("a control character (U+0000)"), "{e:?}");
    }

    #[test]
    fn floats_that_are_whole_numbers_are_integers() {
        let j = parse("a: 8.0\nb: 1e4\nc: -0.0\nd: 1.5\ne: 1e300\n").unwrap().to_json();
        assert_eq!((j["a"].as_u64(), j["b"].as_u64(), j["c"].as_i64()), (Some(8), Some(10_000), Some(0)));
        assert_eq!((j["d"].as_f64(), j["e"].as_f64()), (Some(1.5), Some(1e300)), "a fraction, or beyond 2^53: a float");
    }

    #[test]
    fn an_empty_key_is_an_error() {
        for doc in ["a:\n  '': 1\n", "a: {\"\": 1}\n"] {
            let e = parse(doc).unwrap_err();
            assert_eq!((e.line, e.field.as_str()), (2 - usize::from(doc.starts_with("a: {")), "a"), "{doc:?}: {e:?}");
            assert!(e.message.starts_with("an empty key"), "{e:?}");
        }
    }

    #[test]
    fn whole_numbers_beyond_64_bits_stay_text() {
        let j = parse("a: 18446744073709551615\nb: 18446744073709551616\nc: -9223372036854775808\nd: -9223372036854775809\ne: 1e400\n").unwrap().to_json();
        assert_eq!(j["a"].as_u64(), Some(u64::MAX));
        assert_eq!(j["b"], "18446744073709551616");
        assert_eq!(j["c"].as_i64(), Some(i64::MIN));
        assert_eq!(j["d"], "-9223372036854775809");
        assert_eq!(j["e"], "1e400", "a float beyond f64 is no number either");
    }

    #[test]
    fn lines_end_at_lf_crlf_or_cr() {
        let l: Vec<(usize, &str)> = lines("a\r\nb\rc\n\nd").collect();
        assert_eq!(l, [(0, "a"), (3, "b"), (5, "c"), (7, ""), (8, "d")]);
        assert_eq!(position("ab\r\ncd", 5), (2, 2));
        assert_eq!(position("ab\r\ncd", 99), (2, 3), "past the end: just after the last character");
        assert_eq!(position("é\nü", 5), (2, 2), "columns count characters");
        assert_eq!(position("é\nü", 4), (2, 1), "inside a character: at its start");
    }
}
