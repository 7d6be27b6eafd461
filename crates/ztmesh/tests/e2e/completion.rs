//! `ztmesh completion SHELL`: each shell's script names the subcommands
//! (bash's is also checked by `bash -n` and run: it completes `con` and
//! `viz `); an unknown shell is a clap error that lists the shells.

use crate::support::{run_err, run_ok, ztmesh};
use std::process::{Command, Stdio};

const SUBCOMMANDS: &[&str] = &["controller", "viz", "identity", "proxy-init", "completion"];

fn script(shell: &str) -> String {
    let out = run_ok(ztmesh().args(["completion", shell]));
    for sub in SUBCOMMANDS {
        assert!(
            out.contains(sub),
            "{shell} completion lacks {sub:?}:\n{out}"
        );
    }
    out
}

#[test]
fn bash_completion_parses_and_completes_the_subcommands() {
    let out = script("bash");
    assert!(out.contains("complete -F"), "{out}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ztmesh.bash");
    std::fs::write(&file, &out).unwrap();
    // bash is part of the test machine's base system; fail, don't skip.
    let check = Command::new("bash")
        .arg("-n")
        .arg(&file)
        .stderr(Stdio::piped())
        .output()
        .expect("running bash -n");
    assert!(
        check.status.success(),
        "bash -n rejects the script: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    // What bash would offer at `ztmesh con<TAB>` and `ztmesh viz <TAB>`.
    let complete = |words: &str, cword: usize| {
        let script = format!(
            "source {}; COMP_WORDS=({words}); COMP_CWORD={cword}; \
             _ztmesh ztmesh \"${{COMP_WORDS[$COMP_CWORD]}}\" \"${{COMP_WORDS[$COMP_CWORD-1]}}\"; \
             echo \"${{COMPREPLY[@]}}\"",
            file.display()
        );
        run_ok(Command::new("bash").arg("-c").arg(script))
    };
    assert_eq!(complete("ztmesh con", 1).trim(), "controller");
    let viz = complete("ztmesh viz ''", 2);
    for sub in ["stat", "routes", "edges", "tap", "top"] {
        assert!(viz.split_whitespace().any(|w| w == sub), "{sub}: {viz}");
    }
}

#[test]
fn zsh_and_fish_completions_name_the_subcommands() {
    assert!(script("zsh").starts_with("#compdef ztmesh"));
    assert!(script("fish").contains("complete -c ztmesh"));
}

#[test]
fn an_unknown_shell_is_a_clap_error_listing_the_shells() {
    let err = run_err(ztmesh().args(["completion", "tcsh"]));
    assert!(err.contains("invalid value 'tcsh'"), "{err}");
    assert!(
        err.contains("bash") && err.contains("zsh") && err.contains("fish"),
        "{err}"
    );
}
