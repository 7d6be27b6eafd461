//! `ztmesh-xtask module-cycles [WORKSPACE_DIR]`: prints every module cycle
//! of every crate under `WORKSPACE_DIR/crates` (default: the current
//! directory) and exits 1 when there is one.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let usage = "usage: ztmesh-xtask module-cycles [WORKSPACE_DIR]";
    match args.next().as_deref() {
        Some("module-cycles") => {}
        _ => {
            eprintln!("{usage}");
            return ExitCode::from(2);
        }
    }
    let root = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    match ztmesh_xtask::cycles::check_workspace(&root) {
        Ok(report) => {
            print!("{report}");
            if report.is_clean() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(error) => {
            eprintln!("ztmesh-xtask: {error}");
            ExitCode::from(2)
        }
    }
}
