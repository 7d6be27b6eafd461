//! `KIND[/NAME]`: which workloads a viz command is about, as Linkerd's
//! `viz stat` takes it (`deploy/authors`, `po`, `ew/db`, `ns/booksapp`).
//! One parser for the whole CLI: [`crate::resource`].

pub(crate) use crate::resource::Resource;
