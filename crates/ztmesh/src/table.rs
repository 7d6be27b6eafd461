//! Plain-text tables for the CLI: columns padded to their widest cell;
//! the `--output/-o table|wide|json` flag every listing command takes
//! ([`Output`]); JSON of the same rows ([`json`]); latencies in
//! milliseconds ([`ms`]); printing to a stdout whose reader may go away
//! ([`print_text`]: as Unix tools do, the command then ends quietly).

use serde::Serialize;

/// How a listing command prints its rows.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Output {
    /// Aligned columns.
    #[default]
    Table,
    /// Aligned columns, with the ones the table leaves out.
    Wide,
    /// A JSON array of objects, one per row.
    Json,
}

impl Output {
    /// The flag's value, as `-o` and the viz API's `output=` take it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Table => "table",
            Self::Wide => "wide",
            Self::Json => "json",
        }
    }
}

pub fn print<R: AsRef<[String]>>(rows: &[R]) {
    print_text(&render(rows));
}

/// The exit status when stdout's reader went away (128 + SIGPIPE, what a
/// shell reports for a Unix tool that SIGPIPE ended).
pub const CLOSED_STDOUT_EXIT: i32 = 141;

/// Writes `text` to stdout. When the reader has gone away (`| head -1`),
/// the process ends quietly with [`CLOSED_STDOUT_EXIT`], as Unix tools do;
/// any other failure to write ends it with an error in words.
pub fn print_text(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(CLOSED_STDOUT_EXIT);
        }
        eprintln!("error: writing to stdout: {e}");
        std::process::exit(1);
    }
}

/// The rows as a pretty JSON array, newline-terminated.
pub fn json<T: Serialize>(rows: &[T]) -> String {
    let mut out = serde_json::to_string_pretty(rows).expect("rows serialise to JSON");
    out.push('\n');
    out
}

/// A latency in milliseconds, with precision for small values:
/// `250ms`, `12ms`, `1.2ms`, `0.35ms`; `-` when unknown.
pub fn ms(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(v) if v >= 10.0 => format!("{v:.0}ms"),
        Some(v) if v >= 1.0 => format!("{v:.1}ms"),
        Some(v) => format!("{v:.2}ms"),
    }
}

/// The table as text, a line per row.
pub fn render<R: AsRef<[String]>>(rows: &[R]) -> String {
    let mut out = String::new();
    let mut widths: Vec<usize> = Vec::new();
    for r in rows {
        let r = r.as_ref();
        widths.resize(widths.len().max(r.len()), 0);
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    for r in rows {
        let line: Vec<String> = r
            .as_ref()
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn latencies_in_milliseconds() {
        for (v, want) in [
            (None, "-"),
            (Some(0.35), "0.35ms"),
            (Some(0.004), "0.00ms"),
            (Some(1.23), "1.2ms"),
            (Some(12.4), "12ms"),
            (Some(250.0), "250ms"),
        ] {
            assert_eq!(super::ms(v), want, "{v:?}");
        }
    }
}
