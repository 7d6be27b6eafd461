//! The demo's last step: `ztmesh check --compliance` against the demo's
//! mesh, printed as the command prints it. The plaintext client of step 7
//! is the one deliberately non-compliant edge: INV-6 must show it as a
//! WARN with its `no_tls_reason`, and the step checks that it does.

use super::mesh::ControlPlane;
use crate::check::Status;
use anyhow::{Context, bail};
use std::path::Path;
use std::time::Duration;

pub async fn show(dir: &Path, cp: &ControlPlane) -> anyhow::Result<()> {
    let addr = |a: &str| {
        a.parse()
            .with_context(|| format!("the controller's address {a}"))
    };
    let target = crate::check::mesh::Resolved {
        viz: cp.viz.clone(),
        identity: Some(addr(&cp.identity)?),
        destination: Some(addr(&cp.destination)?),
        policy: Some(addr(&cp.policy)?),
        identity_dir: Some(dir.to_path_buf()),
        manifests: Some(dir.join("manifests")),
    };
    let report = crate::check::compliance_report(&target, Duration::from_secs(5)).await;
    println!(
        "    $ ztmesh check --compliance --controller {} --identity-dir {} --manifests {}",
        cp.viz,
        dir.display(),
        dir.join("manifests").display()
    );
    for l in report.render(false).lines() {
        println!("      {l}");
    }
    let inv6 = report
        .checks
        .iter()
        .find(|c| c.id == "INV-6")
        .context("no INV-6 in the compliance report")?;
    let plaintext = inv6
        .offenders
        .iter()
        .any(|o| o.contains("externalworkload/authors") && o.contains("no_tls_reason="));
    if inv6.status != Status::Warn || !plaintext {
        bail!("INV-6 should warn about the plaintext client of authors, with its reason: {inv6:?}");
    }
    println!(
        "    the plaintext client's edge is the one non-compliant edge, shown as a WARN with its reason"
    );
    Ok(())
}
