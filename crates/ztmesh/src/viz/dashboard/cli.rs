//! `ztmesh viz dashboard`: finds the controller (`--controller`, else the
//! context), checks that its viz API serves the page, and prints the
//! page's URL (the page is the controller's: nothing else runs).

use std::time::Duration;

#[derive(clap::Args)]
pub struct DashboardArgs {
    #[command(flatten)]
    controller: crate::mesh_context::ControllerArg,
}

pub fn run(args: DashboardArgs) -> anyhow::Result<()> {
    let addr = args
        .controller
        .resolve(&crate::mesh_context::ProcessEnv)?
        .viz;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let page = runtime.block_on(crate::viz::api::get(
        &addr,
        "/dashboard",
        Duration::from_secs(5),
    ))?;
    if !page.contains("ztmesh dashboard") {
        anyhow::bail!("the viz API at {addr} does not serve the dashboard (an older controller?)");
    }
    println!("ztmesh dashboard available at:\nhttp://{addr}/dashboard");
    Ok(())
}
