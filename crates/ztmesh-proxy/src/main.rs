//! The `ztmesh-proxy` binary: see [`ztmesh_proxy::run`].

#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    ztmesh_proxy::run::main_from_env()
}
