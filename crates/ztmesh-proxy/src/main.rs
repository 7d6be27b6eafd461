//! The `ztmesh-proxy` binary: see [`ztmesh_proxy::run`].

fn main() -> std::process::ExitCode {
    ztmesh_proxy::run::main_from_env()
}
