//! Plain-text tables for the CLI: columns padded to their widest cell.

pub fn print<const N: usize>(rows: &[[String; N]]) {
    print!("{}", render(rows));
}

/// The table as text, a line per row.
pub fn render<const N: usize>(rows: &[[String; N]]) -> String {
    let mut out = String::new();
    let mut widths = [0usize; N];
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}
