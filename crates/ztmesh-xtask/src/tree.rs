//! A crate's module tree, read from its sources: one [`Module`] per file
//! module and per inline `mod x { .. }`, with the items it defines, the
//! names it imports and every path it names (in code, types, patterns and
//! macro bodies). Nothing is resolved here: [`crate::resolve`] does that
//! once the whole tree is known.

use proc_macro2::{Spacing, TokenStream, TokenTree};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use syn::visit::Visit;

/// Where source files come from: the file system, or a map in tests.
pub trait Sources {
    fn read(&self, path: &Path) -> Option<String>;
}

/// The file system.
pub struct Fs;

impl Sources for Fs {
    fn read(&self, path: &Path) -> Option<String> {
        std::fs::read_to_string(path).ok()
    }
}

/// An in-memory crate: file path -> source.
impl Sources for HashMap<PathBuf, String> {
    fn read(&self, path: &Path) -> Option<String> {
        self.get(path).cloned()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error("{file}: `mod {name};` has no file (looked for {candidates})")]
    MissingModule {
        file: String,
        name: String,
        candidates: String,
    },
    #[error("{file}: cannot read the crate root")]
    MissingRoot { file: String },
    #[error("{file}: does not parse: {source}")]
    Parse { file: String, source: syn::Error },
}

pub type ModId = usize;

/// A `use` as written: the path (its first segment may be `crate`, `self`,
/// `super`, a local name or an external crate) and whether it is a
/// re-export (`pub use`, at any visibility).
#[derive(Debug, Clone)]
pub struct Import {
    pub path: Vec<String>,
    pub reexport: bool,
}

/// A path named by a module, and whether it is a `use` line.
#[derive(Debug, Clone)]
pub struct Ref {
    pub path: Vec<String>,
    pub import: Option<Import>,
}

#[derive(Debug, Default)]
pub struct Module {
    /// The file, and `::name` for an inline module.
    pub label: String,
    /// Module path from the crate root (empty for the root).
    pub path: Vec<String>,
    pub children: BTreeMap<String, ModId>,
    pub items: BTreeSet<String>,
    pub imports: BTreeMap<String, Import>,
    pub globs: Vec<Import>,
    pub refs: Vec<Ref>,
    /// Where the files of `mod child;` declared here live.
    child_dir: PathBuf,
}

#[derive(Debug, Default)]
pub struct Tree {
    pub modules: Vec<Module>,
}

impl Tree {
    /// Reads the module tree rooted at `root` (`src/lib.rs`, `src/main.rs`,
    /// ...). Labels are relative to `base`.
    pub fn read(sources: &dyn Sources, root: &Path, base: &Path) -> Result<Tree, TreeError> {
        let label = relative(root, base);
        let text = sources.read(root).ok_or_else(|| TreeError::MissingRoot {
            file: label.clone(),
        })?;
        let mut tree = Tree::default();
        let dir = root.parent().map(Path::to_path_buf).unwrap_or_default();
        tree.modules.push(Module {
            label: label.clone(),
            child_dir: dir,
            ..Module::default()
        });
        let file = syn::parse_file(&text).map_err(|source| TreeError::Parse {
            file: label,
            source,
        })?;
        let mut reader = Reader {
            sources,
            base,
            tree: &mut tree,
            module: 0,
            error: None,
        };
        reader.visit_file(&file);
        match reader.error {
            Some(error) => Err(error),
            None => Ok(tree),
        }
    }
}

fn relative(path: &Path, base: &Path) -> String {
    path.strip_prefix(base)
        .unwrap_or(path)
        .display()
        .to_string()
}

struct Reader<'a> {
    sources: &'a dyn Sources,
    base: &'a Path,
    tree: &'a mut Tree,
    module: ModId,
    error: Option<TreeError>,
}

impl Reader<'_> {
    fn current(&mut self) -> &mut Module {
        &mut self.tree.modules[self.module]
    }

    fn child(&mut self, name: &str, label: String, child_dir: PathBuf) -> ModId {
        let id = self.tree.modules.len();
        let mut path = self.tree.modules[self.module].path.clone();
        path.push(name.to_string());
        self.tree.modules.push(Module {
            label,
            path,
            child_dir,
            ..Module::default()
        });
        self.current().children.insert(name.to_string(), id);
        id
    }

    fn within(&mut self, module: ModId, f: impl FnOnce(&mut Self)) {
        let outer = std::mem::replace(&mut self.module, module);
        f(self);
        self.module = outer;
    }

    fn file_module(&mut self, item: &syn::ItemMod) {
        let name = item.ident.to_string();
        let here = self.tree.modules[self.module].child_dir.clone();
        let explicit = item.attrs.iter().find_map(|attr| match &attr.meta {
            syn::Meta::NameValue(nv) if nv.path.is_ident("path") => match &nv.value {
                syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(s),
                    ..
                }) => Some(s.value()),
                _ => None,
            },
            _ => None,
        });
        let candidates = match explicit {
            Some(p) => vec![here.join(p)],
            None => vec![
                here.join(format!("{name}.rs")),
                here.join(&name).join("mod.rs"),
            ],
        };
        let Some((file, text)) = candidates
            .iter()
            .find_map(|c| self.sources.read(c).map(|t| (c.clone(), t)))
        else {
            let list = candidates.iter().map(|c| relative(c, self.base));
            self.error.get_or_insert(TreeError::MissingModule {
                file: self.tree.modules[self.module].label.clone(),
                name,
                candidates: list.collect::<Vec<_>>().join(", "),
            });
            return;
        };
        let label = relative(&file, self.base);
        let parsed = match syn::parse_file(&text) {
            Ok(parsed) => parsed,
            Err(source) => {
                self.error.get_or_insert(TreeError::Parse {
                    file: label,
                    source,
                });
                return;
            }
        };
        let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
        let child_dir = if file.file_name().is_some_and(|f| f == "mod.rs") {
            dir
        } else {
            dir.join(&name)
        };
        let id = self.child(&name, label, child_dir);
        self.within(id, |r| r.visit_file(&parsed));
    }

    fn record_use(&mut self, tree: &syn::UseTree, prefix: &mut Vec<String>, reexport: bool) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.record_use(&p.tree, prefix, reexport);
                prefix.pop();
            }
            syn::UseTree::Name(n) => {
                let name = n.ident.to_string();
                self.import(prefix, &name, &name, reexport);
            }
            syn::UseTree::Rename(r) => {
                let local = r.rename.to_string();
                self.import(prefix, &r.ident.to_string(), &local, reexport);
            }
            syn::UseTree::Glob(_) => {
                let import = Import {
                    path: prefix.clone(),
                    reexport,
                };
                self.current().globs.push(import.clone());
                self.current().refs.push(Ref {
                    path: prefix.clone(),
                    import: Some(import),
                });
            }
            syn::UseTree::Group(g) => {
                for tree in &g.items {
                    self.record_use(tree, prefix, reexport);
                }
            }
        }
    }

    fn import(&mut self, prefix: &[String], name: &str, local: &str, reexport: bool) {
        let mut path = prefix.to_vec();
        let local = if name == "self" {
            match prefix.last() {
                Some(last) if local == "self" => last.clone(),
                _ => local.to_string(),
            }
        } else {
            path.push(name.to_string());
            local.to_string()
        };
        if local == "_" || path.is_empty() {
            return;
        }
        let import = Import { path, reexport };
        self.current().refs.push(Ref {
            path: import.path.clone(),
            import: Some(import.clone()),
        });
        self.current().imports.insert(local, import);
    }

    fn body_path(&mut self, path: Vec<String>) {
        if !path.is_empty() {
            self.current().refs.push(Ref { path, import: None });
        }
    }

    /// Paths inside a macro's tokens: `a::b::c` sequences (and `$crate::`).
    fn macro_paths(&mut self, tokens: TokenStream) {
        let trees: Vec<TokenTree> = tokens.into_iter().collect();
        let mut i = 0;
        while i < trees.len() {
            match &trees[i] {
                TokenTree::Group(g) => {
                    self.macro_paths(g.stream());
                    i += 1;
                }
                TokenTree::Ident(ident) => {
                    let mut path = vec![ident.to_string()];
                    let mut j = i + 1;
                    while let (
                        Some(TokenTree::Punct(a)),
                        Some(TokenTree::Punct(b)),
                        Some(TokenTree::Ident(next)),
                    ) = (trees.get(j), trees.get(j + 1), trees.get(j + 2))
                    {
                        if a.as_char() != ':' || a.spacing() != Spacing::Joint || b.as_char() != ':'
                        {
                            break;
                        }
                        path.push(next.to_string());
                        j += 3;
                    }
                    // `::a::b` (leading colons) is an external path.
                    let leading = i >= 1
                        && matches!(&trees[i - 1], TokenTree::Punct(p) if p.as_char() == ':');
                    if !leading {
                        self.body_path(path);
                    }
                    i = j;
                }
                TokenTree::Punct(_) | TokenTree::Literal(_) => i += 1,
            }
        }
    }
}

impl<'ast> Visit<'ast> for Reader<'_> {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        let name = match item {
            syn::Item::Const(i) => Some(&i.ident),
            syn::Item::Enum(i) => Some(&i.ident),
            syn::Item::Fn(i) => Some(&i.sig.ident),
            syn::Item::Macro(i) => i.ident.as_ref(),
            syn::Item::Static(i) => Some(&i.ident),
            syn::Item::Struct(i) => Some(&i.ident),
            syn::Item::Trait(i) => Some(&i.ident),
            syn::Item::TraitAlias(i) => Some(&i.ident),
            syn::Item::Type(i) => Some(&i.ident),
            syn::Item::Union(i) => Some(&i.ident),
            _ => None,
        };
        if let Some(name) = name {
            self.current().items.insert(name.to_string());
        }
        syn::visit::visit_item(self, item);
    }

    fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
        match &item.content {
            None => self.file_module(item),
            Some((_, items)) => {
                let name = item.ident.to_string();
                let parent = &self.tree.modules[self.module];
                let label = format!("{}::{name}", parent.label);
                let child_dir = parent.child_dir.join(&name);
                let id = self.child(&name, label, child_dir);
                self.within(id, |r| {
                    for item in items {
                        r.visit_item(item);
                    }
                });
            }
        }
    }

    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        if item.leading_colon.is_some() {
            return;
        }
        let reexport = !matches!(item.vis, syn::Visibility::Inherited);
        self.record_use(&item.tree, &mut Vec::new(), reexport);
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        if path.leading_colon.is_none() {
            let segments = path.segments.iter().map(|s| s.ident.to_string()).collect();
            self.body_path(segments);
        }
        syn::visit::visit_path(self, path);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        self.visit_path(&mac.path);
        self.macro_paths(mac.tokens.clone());
    }

    /// An attribute's own path (`derive`, `cfg`, `arg`) names nothing of
    /// the crate; its arguments may (`#[arg(value_parser = crate::f)]`).
    fn visit_attribute(&mut self, attr: &'ast syn::Attribute) {
        match &attr.meta {
            syn::Meta::Path(_) => {}
            syn::Meta::List(list) => self.macro_paths(list.tokens.clone()),
            syn::Meta::NameValue(nv) => self.visit_expr(&nv.value),
        }
    }

    /// `pub(crate)`, `pub(super)`, `pub(in path)` name no item.
    fn visit_visibility(&mut self, _: &'ast syn::Visibility) {}
}
