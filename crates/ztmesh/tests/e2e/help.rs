//! `ztmesh proxy --help` from the real binary: the proxy's environment is
//! listed (the unit tests check the list against the proxy's sources).

use crate::support::{run_ok, ztmesh};

#[test]
fn proxy_help_lists_its_environment() {
    let out = run_ok(ztmesh().args(["proxy", "--help"]));
    for name in [
        "LINKERD2_PROXY_IDENTITY_DIR",
        "LINKERD2_PROXY_DESTINATION_SVC_ADDR",
        "ZTMESH_PROXY_MODE",
        "ZTMESH_PROXY_APP_ADDR",
    ] {
        assert!(
            out.contains(name),
            "`ztmesh proxy --help` lacks {name}:\n{out}"
        );
    }
    // -h is the short summary, without the list.
    let short = run_ok(ztmesh().args(["proxy", "-h"]));
    assert!(!short.contains("LINKERD2_PROXY_IDENTITY_DIR"), "{short}");
}
