//! Table tests: small synthetic crates, with and without cycles.

use super::check_root;
use crate::tree::TreeError;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn cycles_of(files: &[(&str, &str)]) -> Result<Vec<Vec<String>>, TreeError> {
    let sources: HashMap<PathBuf, String> = files
        .iter()
        .map(|(path, text)| (Path::new("/k").join(path), text.to_string()))
        .collect();
    let cycles = check_root(&sources, Path::new("/k/src/lib.rs"), Path::new("/k"))?;
    Ok(cycles.into_iter().map(|c| c.modules).collect())
}

#[test]
fn synthetic_crates() {
    let table: &[(&str, &[(&str, &str)], &[&[&str]])] = &[
        (
            "one-way use",
            &[
                ("src/lib.rs", "mod a; mod b;"),
                ("src/a.rs", "use crate::b::X; fn f(_: X) {}"),
                ("src/b.rs", "pub struct X;"),
            ],
            &[],
        ),
        (
            "two siblings use each other",
            &[
                ("src/lib.rs", "mod a; mod b;"),
                ("src/a.rs", "use crate::b::X; pub struct Y;"),
                ("src/b.rs", "pub struct X; fn f(_: crate::a::Y) {}"),
            ],
            &[&["src/a.rs", "src/b.rs"]],
        ),
        (
            "three-module ring",
            &[
                ("src/lib.rs", "mod a; mod b; mod c;"),
                ("src/a.rs", "pub fn a() { crate::b::b() }"),
                ("src/b.rs", "pub fn b() { crate::c::c() }"),
                ("src/c.rs", "pub fn c() { super::a::a() }"),
            ],
            &[&["src/a.rs", "src/b.rs", "src/c.rs"]],
        ),
        (
            "parent uses child, child uses parent",
            &[
                ("src/lib.rs", "mod a;"),
                ("src/a.rs", "mod child; use self::child::Z; pub struct P;"),
                ("src/a/child.rs", "use super::P; pub struct Z;"),
            ],
            &[&["src/a.rs", "src/a/child.rs"]],
        ),
        (
            "parent only declares and re-exports its child",
            &[
                ("src/lib.rs", "mod a;"),
                ("src/a.rs", "mod child; pub use child::Z; pub struct P;"),
                ("src/a/child.rs", "use super::P; pub struct Z(P);"),
            ],
            &[],
        ),
        (
            "parent calls its child through a bare path",
            &[
                ("src/lib.rs", "mod a;"),
                ("src/a/mod.rs", "mod c; pub struct P; fn f() { c::g() }"),
                ("src/a/c.rs", "pub fn g() { let _ = super::P; }"),
            ],
            &[&["src/a/c.rs", "src/a/mod.rs"]],
        ),
        (
            "cycle through the root's named re-exports",
            &[
                ("src/lib.rs", "mod a; mod b; pub use a::A; pub use b::B;"),
                ("src/a.rs", "pub struct A; fn f(_: crate::B) {}"),
                ("src/b.rs", "use crate::A; pub struct B;"),
            ],
            &[&["src/a.rs", "src/b.rs"]],
        ),
        (
            "cycle through a glob re-export",
            &[
                (
                    "src/lib.rs",
                    "pub mod model; pub mod index; pub use self::model::*;",
                ),
                ("src/model.rs", "pub struct M; fn f(_: crate::index::I) {}"),
                ("src/index.rs", "use crate::M; pub struct I;"),
            ],
            &[&["src/index.rs", "src/model.rs"]],
        ),
        (
            "an inline test module is its own module",
            &[
                ("src/lib.rs", "mod a; mod b;"),
                (
                    "src/a.rs",
                    "pub fn f() {} #[cfg(test)] mod tests { use super::*; use crate::b::g; }",
                ),
                ("src/b.rs", "use crate::a::f; pub fn g() { f() }"),
            ],
            &[],
        ),
        (
            "a path inside a macro",
            &[
                ("src/lib.rs", "mod a; mod b;"),
                (
                    "src/a.rs",
                    "pub const Y: u8 = 1; fn f() { println!(\"{}\", crate::b::N); }",
                ),
                ("src/b.rs", "pub const N: u8 = crate::a::Y;"),
            ],
            &[&["src/a.rs", "src/b.rs"]],
        ),
        (
            "a path inside an attribute's arguments",
            &[
                ("src/lib.rs", "mod a; pub fn parse() {} fn f(_: a::Args) {}"),
                (
                    "src/a.rs",
                    "#[derive(clap::Args)] pub struct Args { #[arg(value_parser = crate::parse)] x: u8 }",
                ),
            ],
            &[&["src/a.rs", "src/lib.rs"]],
        ),
        (
            "an attribute's own path is no edge",
            &[
                ("src/lib.rs", "mod a; mod b;"),
                ("src/a.rs", "#[b] pub fn f() {} #[cfg(b)] fn g() {}"),
                ("src/b.rs", "fn h() { crate::a::f() }"),
            ],
            &[],
        ),
        (
            "a module imported by name, then used",
            &[
                ("src/lib.rs", "mod a; mod b;"),
                ("src/a.rs", "use crate::b; pub struct F; fn f() { b::g() }"),
                ("src/b.rs", "pub fn g() {} fn h(_: crate::a::F) {}"),
            ],
            &[&["src/a.rs", "src/b.rs"]],
        ),
        (
            "external crates are no edges",
            &[
                ("src/lib.rs", "mod a; mod b;"),
                ("src/a.rs", "use std::fmt; use serde::Serialize; use b::X;"),
                ("src/b.rs", "use ::a::Y; use crate::a as _;"),
            ],
            &[],
        ),
        (
            "two separate cycles",
            &[
                ("src/lib.rs", "mod a; mod b; mod c; mod d;"),
                ("src/a.rs", "pub struct A(crate::b::B);"),
                ("src/b.rs", "pub struct B; fn f(_: crate::a::A) {}"),
                ("src/c.rs", "pub struct C(crate::d::D);"),
                ("src/d.rs", "pub struct D; fn f(_: crate::c::C) {}"),
            ],
            &[&["src/a.rs", "src/b.rs"], &["src/c.rs", "src/d.rs"]],
        ),
    ];
    for (name, files, want) in table {
        let got = cycles_of(files).unwrap_or_else(|e| panic!("{name}: {e}"));
        let want: Vec<Vec<String>> = want
            .iter()
            .map(|c| c.iter().map(|m| m.to_string()).collect())
            .collect();
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn a_missing_module_file_is_an_error() {
    let error = cycles_of(&[("src/lib.rs", "mod gone;")]).unwrap_err();
    assert_eq!(
        error.to_string(),
        "src/lib.rs: `mod gone;` has no file (looked for src/gone.rs, src/gone/mod.rs)"
    );
}

#[test]
fn a_cycle_names_the_paths_that_make_it() {
    let sources: HashMap<PathBuf, String> = [
        ("src/lib.rs", "mod a; mod b;"),
        ("src/a.rs", "use crate::b::X; pub struct Y;"),
        ("src/b.rs", "pub struct X(crate::a::Y);"),
    ]
    .iter()
    .map(|(p, t)| (Path::new("/k").join(p), t.to_string()))
    .collect();
    let cycles = check_root(&sources, Path::new("/k/src/lib.rs"), Path::new("/k")).unwrap();
    let edges: Vec<(String, String, String)> = cycles.into_iter().flat_map(|c| c.edges).collect();
    let want = [
        ("src/a.rs", "src/b.rs", "crate::b::X"),
        ("src/b.rs", "src/a.rs", "crate::a::Y"),
    ];
    let want: Vec<(String, String, String)> = want
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect();
    assert_eq!(edges, want);
}
