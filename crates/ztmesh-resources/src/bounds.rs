//! Cheap bounds checked before a file reaches the YAML parser.
//!
//! serde_yaml's parse time grows faster than linearly with nesting depth
//! (40,000 nested `[` take about 15 s), so a small hostile file could hold
//! the controller for minutes. [`check`] refuses a file that is larger than
//! [`Limits::max_bytes`] or nests deeper than [`Limits::max_depth`] in one
//! linear pass, before any parsing. The depth counted is an upper bound of
//! YAML's: flow collections (`[`, `{`), indentation levels and inline
//! sequence entries (`- - x`); brackets inside quoted scalars, comments and
//! block scalars (`|`, `>`) do not count, nor do brackets inside a plain
//! scalar (`regex: a[0-9]`).

use std::fmt;

/// The bounds a manifest file must stay within.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest file accepted, in bytes.
    pub max_bytes: u64,
    /// Deepest nesting accepted (flow and block collections together).
    pub max_depth: usize,
}

/// 1 MiB: hundreds of times the largest real manifest.
pub const DEFAULT_MAX_BYTES: u64 = 1024 * 1024;
/// 100 levels: Linkerd's deepest resources nest about 12.
pub const DEFAULT_MAX_DEPTH: usize = 100;

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bytes: DEFAULT_MAX_BYTES,
            max_depth: DEFAULT_MAX_DEPTH,
        }
    }
}

/// Why a file was refused before parsing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BoundsError {
    #[error("{} is over the {} limit", Size(*.size), Size(*.limit))]
    TooLarge { size: u64, limit: u64 },
    #[error("nesting deeper than {limit} levels at line {line}")]
    TooDeep { limit: usize, line: usize },
}

/// A byte count as people read it: `512 bytes`, `3.5 KiB`, `2.3 MiB`, `1 MiB`.
pub struct Size(pub u64);

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        for (unit, scale) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
            if n >= scale {
                return if n.is_multiple_of(scale) {
                    write!(f, "{} {unit}", n / scale)
                } else {
                    write!(f, "{:.1} {unit}", n as f64 / scale as f64)
                };
            }
        }
        write!(f, "{n} bytes")
    }
}

/// Why a string is not a size.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    #[error("{0:?} is not a size (e.g. 1048576, 512KiB, 1MiB)")]
    NotANumber(String),
    #[error("unknown size unit {0:?}: use KiB, MiB or GiB")]
    Unit(String),
    #[error("{0:?} is out of range")]
    OutOfRange(String),
}

/// Parses `1048576`, `512KiB`, `1MiB`, `2 GiB` (binary units; `K`, `M`, `G` alike).
pub fn parse_size(s: &str) -> Result<u64, SizeError> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| SizeError::NotANumber(s.into()))?;
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "K" | "KiB" => 1 << 10,
        "M" | "MiB" => 1 << 20,
        "G" | "GiB" => 1 << 30,
        other => return Err(SizeError::Unit(other.into())),
    };
    n.checked_mul(scale)
        .filter(|n| *n > 0)
        .ok_or_else(|| SizeError::OutOfRange(s.into()))
}

/// Checks a file's size and nesting before it is parsed.
pub fn check(text: &str, limits: &Limits) -> Result<(), BoundsError> {
    check_size(text.len() as u64, limits)?;
    match deepest(text, limits.max_depth) {
        Some(line) => Err(BoundsError::TooDeep {
            limit: limits.max_depth,
            line,
        }),
        None => Ok(()),
    }
}

/// Checks a file's size alone (known before it is read).
pub fn check_size(size: u64, limits: &Limits) -> Result<(), BoundsError> {
    if size > limits.max_bytes {
        return Err(BoundsError::TooLarge {
            size,
            limit: limits.max_bytes,
        });
    }
    Ok(())
}

/// Splits `text` into lines as libyaml does (`\n`, `\r`, `\r\n`, and
/// YAML 1.1's NEL, LS and PS), each with its 1-based `\n` line number.
fn yaml_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.split('\n').enumerate().flat_map(|(i, line)| {
        line.split(['\r', '\u{85}', '\u{2028}', '\u{2029}'])
            .map(move |l| (i + 1, l))
    })
}

/// The 1-based line where nesting first goes deeper than `max`, if it does.
fn deepest(text: &str, max: usize) -> Option<usize> {
    let mut flow = 0usize;
    let mut quote: Option<u8> = None;
    let mut indents: Vec<usize> = Vec::new();
    // The block depth where the current flow collection or quote began.
    let mut base = 0usize;
    // The indentation of the line that opened a block scalar.
    let mut block_scalar: Option<usize> = None;
    for (number, line) in yaml_lines(text) {
        let bytes = line.as_bytes();
        let indent = bytes.iter().take_while(|b| **b == b' ').count();
        let blank = bytes[indent..].iter().all(|b| b.is_ascii_whitespace());
        if let Some(parent) = block_scalar {
            if blank || indent > parent {
                continue;
            }
            block_scalar = None;
        }
        let mut start = 0;
        if quote.is_none() && flow == 0 {
            if blank || bytes[indent] == b'#' {
                continue;
            }
            let marker = |m: &str| {
                line.starts_with(m) && bytes.get(3).is_none_or(|b| b.is_ascii_whitespace())
            };
            if marker("---") || marker("...") {
                indents.clear();
                start = 3;
            } else {
                while indents.last().is_some_and(|top| *top > indent) {
                    indents.pop();
                }
                if indents.last().is_none_or(|top| *top < indent) {
                    indents.push(indent);
                }
                start = indent;
            }
            base = indents.len();
        }
        let mut node_start = quote.is_none();
        let mut depth = base;
        let mut j = start;
        while j < bytes.len() {
            let c = bytes[j];
            let next = bytes.get(j + 1).copied();
            let spaced = next.is_none_or(|b| b.is_ascii_whitespace());
            j += 1;
            if let Some(q) = quote {
                if q == b'"' && c == b'\\' {
                    j += 1;
                } else if c == q {
                    if q == b'\'' && next == Some(b'\'') {
                        j += 1;
                    } else {
                        quote = None;
                    }
                }
                continue;
            }
            match c {
                b' ' | b'\t' | b'\r' => {}
                b'#' if j == 1 || bytes[j - 2].is_ascii_whitespace() => break,
                b'"' | b'\'' if node_start => {
                    quote = Some(c);
                    node_start = false;
                }
                b'[' | b'{' if node_start || flow > 0 => {
                    if flow == 0 {
                        base = depth;
                    }
                    flow += 1;
                    node_start = true;
                    if base + flow > max {
                        return Some(number);
                    }
                }
                b']' | b'}' if flow > 0 => {
                    flow -= 1;
                    node_start = false;
                }
                b',' if flow > 0 => node_start = true,
                b':' if flow > 0 || spaced => node_start = true,
                // Inline sequence entries and complex keys nest one more.
                b'-' | b'?' if node_start && flow == 0 && spaced => {
                    depth += 1;
                    if depth > max {
                        return Some(number);
                    }
                }
                b'|' | b'>' if node_start && flow == 0 => {
                    block_scalar = Some(indent);
                    break;
                }
                // Anchors and tags leave the node to come.
                b'&' | b'!' if node_start => {
                    while j < bytes.len() && !bytes[j].is_ascii_whitespace() {
                        j += 1;
                    }
                }
                _ => node_start = false,
            }
        }
        if depth > max {
            return Some(number);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depth_error(text: &str, max: usize) -> Option<usize> {
        deepest(text, max)
    }

    #[test]
    fn nesting_is_counted_where_yaml_nests() {
        let cases: &[(&str, usize, Option<usize>)] = &[
            ("a: [[[x]]]\n", 4, None),
            ("a: [[[x]]]\n", 3, Some(1)),
            ("a:\n  b:\n    c: 1\n", 3, None),
            ("a:\n  b:\n    c: 1\n", 2, Some(3)),
            // An upper bound: the line's own level and each entry count.
            ("- - - x\n", 4, None),
            ("- - - x\n", 3, Some(1)),
            ("--- [[[x]]]\n", 2, Some(1)),
            ("a:\r  b:\r    c: [x]\n", 3, Some(1)),
            ("a:\u{2028}  b:\u{2028}    c: 1\n", 2, Some(1)),
            ("a: [\n [\n  [\n x]]]\n", 3, Some(3)),
            ("a: [\n [\n  [\n x]]]\n", 4, None),
            ("a:\n  - [\n [x]]\n", 5, None),
            ("a:\n  - [\n [x]]\n", 4, Some(3)),
            // Not nesting: quoted, commented, plain and block scalars.
            ("a: \"[[[[\"\nb: '{{{{'\n", 1, None),
            ("a: x # [[[[\n", 1, None),
            ("regex: ^a[[[[0-9]\n", 1, None),
            ("a: |\n  [[[[\n    {{{{\nb: 1\n", 1, None),
            ("a: 'it''s [[[['\n", 1, None),
            ("a: \"multi\n  line [[[[\"\n", 1, None),
            ("a: &x !!str [b]\n", 1, Some(1)),
            ("a: &x !!str [b]\n", 2, None),
            // Documents start afresh.
            ("a:\n  b: 1\n---\nc:\n  d: 1\n", 2, None),
        ];
        for (text, max, want) in cases {
            assert_eq!(depth_error(text, *max), *want, "{text:?} with max {max}");
        }
    }

    #[test]
    fn errors_read_as_the_issue_asks() {
        let deep = format!("a: {}\n", "[".repeat(101));
        assert_eq!(
            check(&deep, &Limits::default()).unwrap_err().to_string(),
            "nesting deeper than 100 levels at line 1"
        );
        let limits = Limits {
            max_bytes: 1 << 20,
            ..Default::default()
        };
        let big = "#".repeat(2_411_725);
        assert_eq!(
            check(&big, &limits).unwrap_err().to_string(),
            "2.3 MiB is over the 1 MiB limit"
        );
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("512 KiB"), Ok(512 << 10));
        assert_eq!(parse_size("100"), Ok(100));
        assert_eq!(
            parse_size("1 parsec"),
            Err(SizeError::Unit("parsec".into()))
        );
        assert_eq!(parse_size("0"), Err(SizeError::OutOfRange("0".into())));
        assert_eq!(parse_size("MiB"), Err(SizeError::NotANumber("MiB".into())));
        assert_eq!(
            parse_size("99999999999GiB").unwrap_err().to_string(),
            "\"99999999999GiB\" is out of range"
        );
    }
}
