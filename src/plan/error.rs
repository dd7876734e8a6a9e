//! A problem in a plan, with the position it was written at.

use std::fmt;

/// One problem in a plan. Displays as `{file}:{line}:{col}: {field}: {message}` on one line;
/// the message says what is wrong and how to fix it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct PlanError {
    /// The plan file as given.
    pub file: String,
    /// Line (1-based).
    pub line: usize,
    /// Column (1-based).
    pub col: usize,
    /// The parameter or key the problem is about.
    pub field: String,
    /// What is wrong, and the fix.
    pub message: String,
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // One line per error, whatever a message quotes from the plan.
        let message = self.message.replace('\n', " ");
        write!(f, "{}:{}:{}: {}: {}", self.file, self.line, self.col, self.field, message)
    }
}

impl std::error::Error for PlanError {}

/// Most errors reported for one plan: past these, one more line says how many were left
/// out. A generated plan with one mistake repeated can have hundreds of thousands.
pub const MAX_ERRORS: usize = 100;

/// Sorts errors by position, drops repeats (a sweep or a repeat finds the same one again)
/// and keeps the first [`MAX_ERRORS`].
pub(crate) fn tidy(errors: &mut Vec<PlanError>) {
    errors.sort();
    errors.dedup();
    if errors.len() > MAX_ERRORS {
        let left = errors.len() - MAX_ERRORS;
        let next = &errors[MAX_ERRORS];
        let e = PlanError {
            file: next.file.clone(),
            line: next.line,
            col: next.col,
            field: "plan".into(),
            message: format!("{left} more errors from here on are not shown; fix the first {MAX_ERRORS} and validate again"),
        };
        errors.truncate(MAX_ERRORS);
        errors.push(e);
    }
}

/// User text quoted in a message, shortened: a key may be megabytes long.
pub(crate) fn short(s: &str) -> String {
    if s.chars().count() > 60 { format!("{}...", s.chars().take(57).collect::<String>()) } else { s.to_string() }
}

/// The closest of `candidates` to `word` by edit distance, if it is close enough to be the
/// word meant.
pub(crate) fn suggest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let w = word.to_ascii_lowercase();
    let len = w.chars().count();
    let limit = (len / 3).max(2);
    candidates
        .into_iter()
        // The distance is at least the difference in length: a word far longer than every
        // name (a hostile key of megabytes) costs nothing.
        .filter(|c| len.abs_diff(c.chars().count()) <= limit && len < 1024)
        .map(|c| (edit_distance(&w, &c.to_ascii_lowercase()), c))
        .filter(|&(d, c)| d <= limit && d < c.len())
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// Levenshtein distance, with a transposition of neighbours counting as one edit.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev2 = vec![0usize; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0usize; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                cur[j] = cur[j].min(prev2[j - 2] + 1);
            }
        }
        std::mem::swap(&mut prev2, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_display_on_one_line_with_position_and_field() {
        let e = PlanError { file: "p.yaml".into(), line: 12, col: 7, field: "qdepth".into(), message: "too\nlarge".into() };
        assert_eq!(e.to_string(), "p.yaml:12:7: qdepth: too large");
    }

    #[test]
    fn suggestions_find_typos_and_ignore_unrelated_words() {
        let keys = ["qdepth", "qprio", "io_size", "read_percentage", "lba_random"];
        assert_eq!(suggest("qdeph", keys), Some("qdepth"));
        assert_eq!(suggest("iosize", keys), Some("io_size"));
        assert_eq!(suggest("read_percent", keys), Some("read_percentage"));
        assert_eq!(suggest("lba_randmo", keys), Some("lba_random"));
        assert_eq!(suggest("banana", keys), None);
        assert_eq!(suggest(&"q".repeat(1 << 20), keys), None, "a word of a megabyte is compared with nothing");
        assert_eq!(edit_distance("ab", "ba"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
    }

    #[test]
    fn errors_sort_by_position_and_repeats_go() {
        let e = |line, col| PlanError { file: "f".into(), line, col, field: "x".into(), message: "m".into() };
        let mut v = vec![e(3, 1), e(1, 5), e(3, 1), e(1, 2)];
        tidy(&mut v);
        assert_eq!(v.iter().map(|e| (e.line, e.col)).collect::<Vec<_>>(), vec![(1, 2), (1, 5), (3, 1)]);
    }

    #[test]
    fn past_the_most_errors_one_line_counts_the_rest() {
        let e = |line| PlanError { file: "f".into(), line, col: 1, field: "x".into(), message: "m".into() };
        let mut v: Vec<PlanError> = (1..=MAX_ERRORS + 5).rev().map(e).collect();
        tidy(&mut v);
        assert_eq!(v.len(), MAX_ERRORS + 1);
        assert_eq!(v[MAX_ERRORS - 1].line, MAX_ERRORS, "the first errors by position are kept");
        assert_eq!(
            v[MAX_ERRORS].to_string(),
            format!("f:{}:1: plan: 5 more errors from here on are not shown; fix the first {MAX_ERRORS} and validate again", MAX_ERRORS + 1)
        );
    }
}
