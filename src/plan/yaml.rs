//! A YAML document as a tree that remembers where every node came from, so that any error
//! found later (by the JSON Schema, or by a semantic check) can point at `file:line:col`.
//! Anchors, aliases and merge keys (`<<`) are resolved; positions of merged values are
//! those of their definition.

use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle};

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
    /// A mapping: `(key, key line, key column, value)` in document order.
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

/// A syntax error with its position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    /// Line (1-based).
    pub line: usize,
    /// Column (1-based).
    pub col: usize,
    /// What is wrong.
    pub message: String,
}

/// Parses one YAML document.
pub fn parse(text: &str) -> Result<Node, SyntaxError> {
    let mut events = Vec::new();
    for ev in Parser::new_from_str(text) {
        match ev {
            Ok((e, span)) => events.push((e, span.start.line(), span.start.col() + 1)),
            Err(e) => {
                let m = e.marker();
                return Err(SyntaxError { line: m.line(), col: m.col() + 1, message: e.info().to_string() });
            }
        }
    }
    let mut b = Builder { events, pos: 0, anchors: Vec::new() };
    b.document()
}

struct Builder<'a> {
    events: Vec<(Event<'a>, usize, usize)>,
    pos: usize,
    anchors: Vec<(usize, Node)>,
}

impl Builder<'_> {
    fn document(&mut self) -> Result<Node, SyntaxError> {
        while self.pos < self.events.len() {
            match &self.events[self.pos].0 {
                Event::StreamStart | Event::DocumentStart(..) => self.pos += 1,
                Event::StreamEnd | Event::DocumentEnd => {
                    return Ok(Node { kind: Kind::Map(Vec::new()), line: 1, col: 1 });
                }
                _ => {
                    let n = self.node()?;
                    // A second document is a mistake in a plan file.
                    while self.pos < self.events.len() {
                        let (e, line, col) = &self.events[self.pos];
                        if let Event::DocumentStart(..) = e {
                            return Err(SyntaxError { line: *line, col: *col, message: "a plan file holds one YAML document; remove the second `---`".into() });
                        }
                        self.pos += 1;
                    }
                    return Ok(n);
                }
            }
        }
        Ok(Node { kind: Kind::Map(Vec::new()), line: 1, col: 1 })
    }

    fn remember(&mut self, anchor: usize, n: &Node) {
        if anchor != 0 {
            self.anchors.push((anchor, n.clone()));
        }
    }

    fn node(&mut self) -> Result<Node, SyntaxError> {
        let (ev, line, col) = {
            let (e, l, c) = &self.events[self.pos];
            (e.clone(), *l, *c)
        };
        self.pos += 1;
        match ev {
            Event::Scalar(text, style, anchor, _) => {
                let n = Node { kind: Kind::Scalar { text: text.to_string(), plain: matches!(style, ScalarStyle::Plain) }, line, col };
                self.remember(anchor, &n);
                Ok(n)
            }
            Event::Alias(id) => {
                let n = self.anchors.iter().rev().find(|a| a.0 == id).map(|a| a.1.clone());
                n.ok_or(SyntaxError { line, col, message: "alias of an unknown anchor".into() })
            }
            Event::SequenceStart(_, anchor, _) => {
                let mut items = Vec::new();
                loop {
                    if matches!(self.events.get(self.pos).map(|e| &e.0), Some(Event::SequenceEnd)) {
                        self.pos += 1;
                        break;
                    }
                    if self.pos >= self.events.len() {
                        return Err(SyntaxError { line, col, message: "unterminated sequence".into() });
                    }
                    if self.skip_meta() {
                        continue;
                    }
                    items.push(self.node()?);
                }
                let n = Node { kind: Kind::Seq(items), line, col };
                self.remember(anchor, &n);
                Ok(n)
            }
            Event::MappingStart(_, anchor, _) => {
                let mut entries: Vec<(String, usize, usize, Node)> = Vec::new();
                let mut merged: Vec<(String, usize, usize, Node)> = Vec::new();
                loop {
                    if matches!(self.events.get(self.pos).map(|e| &e.0), Some(Event::MappingEnd)) {
                        self.pos += 1;
                        break;
                    }
                    if self.pos >= self.events.len() {
                        return Err(SyntaxError { line, col, message: "unterminated mapping".into() });
                    }
                    if self.skip_meta() {
                        continue;
                    }
                    let key = self.node()?;
                    let value = self.node()?;
                    let Kind::Scalar { text, .. } = &key.kind else {
                        return Err(SyntaxError { line: key.line, col: key.col, message: "a mapping key must be a plain value".into() });
                    };
                    if text == "<<" {
                        // Merge key: entries of the merged mapping(s) that are not written here.
                        let sources = match value.kind {
                            Kind::Map(_) => vec![value],
                            Kind::Seq(v) => v,
                            _ => return Err(SyntaxError { line: value.line, col: value.col, message: "`<<` needs a mapping or a list of mappings".into() }),
                        };
                        for s in sources {
                            if let Kind::Map(m) = s.kind {
                                merged.extend(m);
                            }
                        }
                        continue;
                    }
                    if entries.iter().any(|e| &e.0 == text) {
                        return Err(SyntaxError { line: key.line, col: key.col, message: format!("duplicate key `{text}`") });
                    }
                    entries.push((text.clone(), key.line, key.col, value));
                }
                for m in merged {
                    if !entries.iter().any(|e| e.0 == m.0) {
                        entries.push(m);
                    }
                }
                let n = Node { kind: Kind::Map(entries), line, col };
                self.remember(anchor, &n);
                Ok(n)
            }
            _ => Err(SyntaxError { line, col, message: "unexpected YAML structure".into() }),
        }
    }

    /// Skips events that carry no data (comments, anchor metadata).
    fn skip_meta(&mut self) -> bool {
        match self.events.get(self.pos).map(|e| &e.0) {
            Some(Event::Anchor(..)) => {
                self.pos += 1;
                true
            }
            _ => false,
        }
    }
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
    /// The position of the node at `path`, or of the deepest node on the way (and of the
    /// key, when the last step is a key that is written).
    pub fn locate(&self, path: &[Seg]) -> (usize, usize) {
        let mut node = self;
        let mut pos = (self.line, self.col);
        for seg in path {
            match (seg, &node.kind) {
                (Seg::Key(k), Kind::Map(m)) => match m.iter().find(|e| &e.0 == k) {
                    Some(e) => {
                        pos = (e.3.line, e.3.col);
                        node = &e.3;
                    }
                    None => return pos,
                },
                (Seg::Index(i), Kind::Seq(v)) => match v.get(*i) {
                    Some(n) => {
                        pos = (n.line, n.col);
                        node = n;
                    }
                    None => return pos,
                },
                _ => return pos,
            }
        }
        pos
    }

    /// The position of a key of the mapping at `path` (for "unknown field" errors).
    pub fn locate_key(&self, path: &[Seg], key: &str) -> Option<(usize, usize)> {
        let mut node = self;
        for seg in path {
            node = match (seg, &node.kind) {
                (Seg::Key(k), Kind::Map(m)) => &m.iter().find(|e| &e.0 == k)?.3,
                (Seg::Index(i), Kind::Seq(v)) => v.get(*i)?,
                _ => return None,
            };
        }
        match &node.kind {
            Kind::Map(m) => m.iter().find(|e| e.0 == key).map(|e| (e.1, e.2)),
            _ => None,
        }
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
        return if neg { i64::try_from(v).map(|v| Value::from(-v)).unwrap_or(Value::String(t.into())) } else { Value::from(v) };
    }
    let looks_float = t.bytes().any(|b| b.is_ascii_digit()) && t.bytes().all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b));
    if looks_float && let Ok(f) = t.parse::<f64>() {
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
}
