//! From the paths each module names to module-to-module edges.
//!
//! A path is first made absolute (from the crate root) by its first
//! segment: `crate`, `self`, `super`, a child module, a name the module
//! imported, or a name one of its glob imports brings in; anything else
//! (an external crate, a local variable, a generic) is no edge. The
//! absolute path is then walked module by module; a segment that is an
//! import or a glob re-export of the module reached is followed to where
//! it points, so `crate::Index` reaches the module that defines `Index`.

use crate::tree::{ModId, Tree};
use std::collections::BTreeMap;

/// How many imports a path may be followed through (guards against glob
/// loops such as `pub use a::*` in b and `pub use b::*` in a).
const MAX_DEPTH: usize = 16;

/// An edge, with the first path (as written) that made it.
pub type Edges = BTreeMap<(ModId, ModId), String>;

pub fn edges(tree: &Tree) -> Edges {
    let resolver = Resolver { tree };
    let mut edges = Edges::new();
    for (from, module) in tree.modules.iter().enumerate() {
        for r in &module.refs {
            let Some(to) = resolver.target(from, &r.path) else {
                continue;
            };
            if to == from {
                continue;
            }
            if let Some(import) = &r.import
                && import.reexport
                && resolver.is_descendant(to, from)
            {
                // `pub use child::X`: a re-export, not a use.
                continue;
            }
            edges.entry((from, to)).or_insert_with(|| r.path.join("::"));
        }
    }
    edges
}

struct Resolver<'a> {
    tree: &'a Tree,
}

impl Resolver<'_> {
    /// The module a path named in module `at` points into, if any.
    fn target(&self, at: ModId, path: &[String]) -> Option<ModId> {
        let absolute = self.absolute(at, path, 0)?;
        self.locate(&absolute, 0)
    }

    fn is_descendant(&self, module: ModId, ancestor: ModId) -> bool {
        let (m, a) = (
            &self.tree.modules[module].path,
            &self.tree.modules[ancestor].path,
        );
        m.len() > a.len() && m.starts_with(a)
    }

    fn module_at(&self, path: &[String]) -> Option<ModId> {
        let mut m = 0;
        for seg in path {
            m = *self.tree.modules[m].children.get(seg)?;
        }
        Some(m)
    }

    /// Whether `name` is something module `m` has: a child, an item or an
    /// import.
    fn has(&self, m: ModId, name: &str) -> bool {
        let module = &self.tree.modules[m];
        module.children.contains_key(name)
            || module.items.contains(name)
            || module.imports.contains_key(name)
    }

    /// The path from the crate root, or `None` when it leaves the crate or
    /// names nothing the module knows.
    fn absolute(&self, at: ModId, path: &[String], depth: usize) -> Option<Vec<String>> {
        if depth > MAX_DEPTH {
            return None;
        }
        let module = &self.tree.modules[at];
        let (first, rest) = path.split_first()?;
        let joined = |mut base: Vec<String>, rest: &[String]| {
            base.extend_from_slice(rest);
            base
        };
        match first.as_str() {
            "crate" => Some(rest.to_vec()),
            "self" => Some(joined(module.path.clone(), rest)),
            "super" => {
                let mut base = module.path.clone();
                base.pop()?;
                let mut rest = rest;
                while let Some((s, tail)) = rest.split_first() {
                    if s != "super" {
                        break;
                    }
                    base.pop()?;
                    rest = tail;
                }
                Some(joined(base, rest))
            }
            "Self" => None,
            name if module.children.contains_key(name) && !rest.is_empty() => {
                Some(joined(module.path.clone(), path))
            }
            name if module.imports.contains_key(name) => {
                let import = &module.imports[name];
                if import.path.len() == 1 && import.path[0] == *name {
                    // `use name;` of an external crate.
                    return None;
                }
                let base = self.absolute(at, &import.path, depth + 1)?;
                Some(joined(base, rest))
            }
            name => module.globs.iter().find_map(|glob| {
                let base = self.absolute(at, &glob.path, depth + 1)?;
                let m = self.module_at(&base)?;
                self.has(m, name).then(|| joined(base, path))
            }),
        }
    }

    /// The module an absolute path ends in, following imports and glob
    /// re-exports.
    fn locate(&self, path: &[String], depth: usize) -> Option<ModId> {
        if depth > MAX_DEPTH {
            return None;
        }
        let mut m = 0;
        for (i, seg) in path.iter().enumerate() {
            let module = &self.tree.modules[m];
            if let Some(&child) = module.children.get(seg) {
                m = child;
                continue;
            }
            if module.items.contains(seg) {
                return Some(m);
            }
            if let Some(import) = module.imports.get(seg) {
                let mut target = self.absolute(m, &import.path, depth + 1)?;
                target.extend_from_slice(&path[i + 1..]);
                return self.locate(&target, depth + 1);
            }
            for glob in &module.globs {
                let Some(base) = self.absolute(m, &glob.path, depth + 1) else {
                    continue;
                };
                if self.module_at(&base).is_some_and(|g| self.has(g, seg)) {
                    let mut target = base;
                    target.extend_from_slice(&path[i..]);
                    return self.locate(&target, depth + 1);
                }
            }
            return Some(m);
        }
        Some(m)
    }
}
