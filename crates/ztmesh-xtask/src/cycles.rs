//! The module-cycle check: for one crate root, or for every crate of a
//! workspace (`crates/*` with a `Cargo.toml`; roots `src/lib.rs`,
//! `src/main.rs` and `src/bin/*.rs`).

use crate::resolve;
use crate::scc;
use crate::tree::{Fs, Sources, Tree, TreeError};
use std::fmt;
use std::path::{Path, PathBuf};

/// One strongly connected component: its modules and the edges between
/// them, each with the path that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cycle {
    pub modules: Vec<String>,
    pub edges: Vec<(String, String, String)>,
}

#[derive(Debug)]
pub struct RootReport {
    pub crate_name: String,
    pub root: String,
    pub cycles: Vec<Cycle>,
}

#[derive(Debug, Default)]
pub struct Report {
    pub roots: Vec<RootReport>,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.roots.iter().all(|r| r.cycles.is_empty())
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut count = 0;
        for root in &self.roots {
            for cycle in &root.cycles {
                count += 1;
                writeln!(
                    f,
                    "{} ({}): cycle of {} modules: {}",
                    root.crate_name,
                    root.root,
                    cycle.modules.len(),
                    cycle.modules.join(", ")
                )?;
                for (from, to, via) in &cycle.edges {
                    writeln!(f, "    {from} -> {to}  ({via})")?;
                }
            }
        }
        writeln!(
            f,
            "module cycles: {count} in {} crate roots checked",
            self.roots.len()
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("{dir}: cannot list crates: {source}")]
    List { dir: String, source: std::io::Error },
    #[error(transparent)]
    Tree(#[from] TreeError),
}

/// The cycles of the crate rooted at `root`; module labels relative to
/// `base` (the crate's directory).
pub fn check_root(
    sources: &dyn Sources,
    root: &Path,
    base: &Path,
) -> Result<Vec<Cycle>, TreeError> {
    let tree = Tree::read(sources, root, base)?;
    let edges = resolve::edges(&tree);
    let mut adjacency = vec![Vec::new(); tree.modules.len()];
    for &(from, to) in edges.keys() {
        adjacency[from].push(to);
    }
    let label = |m: usize| tree.modules[m].label.clone();
    Ok(scc::cycles(&adjacency)
        .into_iter()
        .map(|component| Cycle {
            modules: {
                let mut modules: Vec<String> = component.iter().map(|&m| label(m)).collect();
                modules.sort();
                modules
            },
            edges: edges
                .iter()
                .filter(|((from, to), _)| component.contains(from) && component.contains(to))
                .map(|(&(from, to), via)| (label(from), label(to), via.clone()))
                .collect(),
        })
        .collect())
}

/// Every crate root under `dir/crates`.
pub fn check_workspace(dir: &Path) -> Result<Report, CheckError> {
    let crates_dir = dir.join("crates");
    let list = |d: &Path| -> Result<Vec<PathBuf>, CheckError> {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(d)
            .map_err(|source| CheckError::List {
                dir: d.display().to_string(),
                source,
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        Ok(entries)
    };
    let mut report = Report::default();
    for krate in list(&crates_dir)? {
        if !krate.join("Cargo.toml").is_file() {
            continue;
        }
        let src = krate.join("src");
        let mut roots: Vec<PathBuf> = ["lib.rs", "main.rs"]
            .iter()
            .map(|r| src.join(r))
            .filter(|r| r.is_file())
            .collect();
        if src.join("bin").is_dir() {
            let bins = list(&src.join("bin"))?;
            roots.extend(
                bins.into_iter()
                    .filter(|b| b.extension().is_some_and(|e| e == "rs")),
            );
        }
        let crate_name = krate
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for root in roots {
            let cycles = check_root(&Fs, &root, &krate)?;
            report.roots.push(RootReport {
                crate_name: crate_name.clone(),
                root: root
                    .strip_prefix(&krate)
                    .unwrap_or(&root)
                    .display()
                    .to_string(),
                cycles,
            });
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests;
