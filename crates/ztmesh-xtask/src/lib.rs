//! ztmesh-xtask: checks of the repository's shape that CI runs.
//!
//! The one check today is the module-cycle check (`ztmesh-xtask
//! module-cycles`): per crate root (`src/lib.rs`, `src/main.rs`,
//! `src/bin/*.rs`), every module (a file, or an inline `mod x { .. }`) is a
//! node, and module A depends on module B when A names an item of B through
//! a `crate::` / `super::` / `self::` path, a `use` line, or a path that
//! starts with a name A imported or a child module of A. A parent's
//! `mod child;` and its re-exports of a descendant's items (`pub use
//! child::X`) are not dependencies by themselves; a parent that *uses* a
//! child's item while the child uses the parent's is a cycle. Every
//! strongly connected component of more than one module is reported.
//!
//! - [`tree`]: reads a crate's module tree from its sources (through
//!   [`tree::Sources`], so tests can hand it an in-memory crate), collecting
//!   per module the items it defines, its imports and the paths it names;
//! - [`resolve`]: turns those paths into module-to-module edges, following
//!   re-exports (named and glob);
//! - [`scc`]: Tarjan's strongly connected components;
//! - [`cycles`]: the check itself, for one crate root or a whole workspace.

#![forbid(unsafe_code)]

pub mod cycles;
pub mod resolve;
pub mod scc;
pub mod tree;
