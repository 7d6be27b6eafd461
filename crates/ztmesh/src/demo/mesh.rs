//! The demo's mesh: booksapp's four workloads (`booksapp.yaml`), each a
//! sample app behind its own `ztmesh proxy` in explicit mode on a loopback
//! address of its own, and what they show: mTLS with both identities,
//! the seed's authorization policy (allowed, 403 with a reason, 404 for no
//! route, plaintext refused), a decision explained, and live figures.

use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

/// The manifests the controller serves.
pub const MANIFESTS: &str = include_str!("booksapp.yaml");

/// (name, address, app port) of each workload, as `booksapp.yaml` declares them.
pub const WORKLOADS: [(&str, &str, u16); 4] = [
    ("authors", "127.0.9.2", 7001),
    ("books", "127.0.9.3", 7002),
    ("webapp", "127.0.9.4", 7000),
    ("traffic", "127.0.9.5", 7003),
];

const AUTHORS_IP: &str = "127.0.9.2";

pub fn identity(sa: &str) -> String {
    format!("{sa}.booksapp.serviceaccount.identity.linkerd.cluster.local")
}

fn authors_url(path: &str) -> String {
    format!("http://authors.booksapp.svc.cluster.local:7001{path}")
}

/// The controller's services.
pub struct ControlPlane {
    pub identity: String,
    pub destination: String,
    pub policy: String,
    pub viz: String,
}

/// Child processes, each with its log file; killed when dropped.
#[derive(Default)]
pub struct Processes(Vec<(String, Child, PathBuf)>);

impl Drop for Processes {
    fn drop(&mut self) {
        for (_, child, _) in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Processes {
    /// Starts `cmd` with its output in `log`.
    fn spawn(&mut self, what: &str, mut cmd: Command, log: PathBuf) -> anyhow::Result<()> {
        let file = std::fs::File::create(&log)
            .with_context(|| format!("creating the log file {}", log.display()))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .with_context(|| format!("starting {what}"))?;
        self.0.push((what.to_string(), child, log));
        Ok(())
    }

    /// Fails, with its log's last lines, if `what` has exited.
    fn check_alive(&mut self, what: &str) -> anyhow::Result<()> {
        for (name, child, log) in &mut self.0 {
            if name == what
                && let Ok(Some(status)) = child.try_wait()
            {
                let text = std::fs::read_to_string(&*log).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(8).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                bail!(
                    "{what} exited ({status}); the end of {}:\n{}",
                    log.display(),
                    tail.join("\n")
                );
            }
        }
        Ok(())
    }
}

/// Starts every workload's app and proxy; returns once each proxy is ready.
pub async fn start_workloads(
    procs: &mut Processes,
    dir: &Path,
    cp: &ControlPlane,
    signer: &ztmesh_identity::token::TokenSigner,
) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("finding this executable")?;
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    let anchors = std::fs::read_to_string(dir.join(ztmesh_identity::install::ANCHORS_FILE))?;
    for (name, ip, port) in WORKLOADS {
        let app_addr = format!("{ip}:{port}");
        let mut app = Command::new(&exe);
        app.args(["app", "serve", "--name", name, "--http", &app_addr]);
        procs.spawn(
            &format!("{name} app"),
            app,
            logs.join(format!("{name}-app.log")),
        )?;

        let token = super::identity::token_file(dir, signer, "booksapp", name)?;
        let mut proxy = Command::new(&exe);
        proxy
            .arg("proxy")
            .env("LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS", &anchors)
            .env("LINKERD2_PROXY_IDENTITY_TOKEN_FILE", &token)
            .env("LINKERD2_PROXY_IDENTITY_SVC_ADDR", &cp.identity)
            .env(
                "LINKERD2_PROXY_IDENTITY_SVC_NAME",
                "linkerd-identity.linkerd.serviceaccount.identity.linkerd.cluster.local",
            )
            .env("LINKERD2_PROXY_IDENTITY_LOCAL_NAME", identity(name))
            .env("LINKERD2_PROXY_DESTINATION_SVC_ADDR", &cp.destination)
            .env("LINKERD2_PROXY_POLICY_SVC_ADDR", &cp.policy)
            .env(
                "LINKERD2_PROXY_POLICY_WORKLOAD",
                format!(r#"{{"ns":"booksapp","external_workload":"{name}"}}"#),
            )
            .env("LINKERD2_PROXY_INBOUND_PORTS", port.to_string())
            // Tap on IP:4190, for the controller's tap identity.
            .env("LINKERD2_PROXY_CONTROL_LISTEN_ADDR", format!("{ip}:4190"))
            .env(
                "LINKERD2_PROXY_TAP_SVC_NAME",
                "linkerd-tap.linkerd.serviceaccount.identity.linkerd.cluster.local",
            )
            .env("ZTMESH_PROXY_MODE", "explicit")
            .env("ZTMESH_PROXY_APP_ADDR", &app_addr);
        for svc in ["DESTINATION", "POLICY"] {
            proxy.env(
                format!("LINKERD2_PROXY_{svc}_SVC_NAME"),
                "linkerd-destination.linkerd.serviceaccount.identity.linkerd.cluster.local",
            );
        }
        procs.spawn(
            &format!("{name} proxy"),
            proxy,
            logs.join(format!("{name}-proxy.log")),
        )?;
    }
    for (name, ip, port) in WORKLOADS {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            procs.check_alive(&format!("{name} app"))?;
            procs.check_alive(&format!("{name} proxy"))?;
            let ready = crate::viz::client::get_text(
                &format!("{ip}:4191"),
                "/ready",
                Duration::from_secs(1),
            )
            .await
            .is_ok();
            if ready {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "the {name} proxy was not ready within 30s (log: {})",
                    logs.join(format!("{name}-proxy.log")).display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        println!(
            "    {name:<8} app {ip}:{port}  proxy {ip}:4143 in, {ip}:4140 out (HTTP_PROXY), admin {ip}:4191  as {}",
            identity(name)
        );
    }
    println!("    logs in {}", logs.display());
    Ok(())
}

/// One request on a fresh connection to `to`: (status line, lowercased
/// head, body).
async fn exchange(to: &str, request: String) -> anyhow::Result<(String, String, String)> {
    let work = async {
        let mut s = tokio::net::TcpStream::connect(to).await?;
        s.write_all(request.as_bytes()).await?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).await?;
        anyhow::Ok(out)
    };
    let out = tokio::time::timeout(Duration::from_secs(10), work)
        .await
        .map_err(|_| anyhow::anyhow!("{to} did not answer within 10s"))?
        .with_context(|| format!("a request to {to}"))?;
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    Ok((
        head.lines().next().unwrap_or_default().to_string(),
        head.to_lowercase(),
        body.to_string(),
    ))
}

/// A request from `client`'s app: through its proxy, as `HTTP_PROXY` sends it.
async fn from_app(
    client: &str,
    method: &str,
    path: &str,
) -> anyhow::Result<(String, String, String)> {
    let ip = WORKLOADS
        .iter()
        .find(|w| w.0 == client)
        .map(|w| w.1)
        .expect("a demo workload");
    let url = authors_url(path);
    exchange(
        &format!("{ip}:4140"),
        format!("{method} {url} HTTP/1.1\r\nHost: authors.booksapp.svc.cluster.local:7001\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
    )
    .await
}

/// The last `remote proxy error` a proxy logged (it may take a moment
/// to reach the file).
async fn remote_error(log: &Path) -> anyhow::Result<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(reason) = text
            .lines()
            .rev()
            .filter(|l| l.contains("remote proxy error"))
            .find_map(|l| l.split_once(" error=").map(|(_, e)| e.trim().to_string()))
        {
            return Ok(reason);
        }
        if tokio::time::Instant::now() > deadline {
            bail!("{} logged no remote proxy error", log.display());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

/// mTLS and the seed's policy at work; each outcome is checked. A denied
/// client's app sees only the status: the server's reason goes to the
/// client's proxy (`l5d-proxy-error`, kept from the app), which logs it.
pub async fn show_policy(logs: &Path) -> anyhow::Result<()> {
    // (client, method, path, expected status, what it shows)
    let cases = [
        (
            "webapp",
            "GET",
            "/authors.json",
            "200",
            "allowed: webapp is in authors-get-authn",
        ),
        (
            "books",
            "GET",
            "/authors/7",
            "200",
            "allowed: books, the /authors/ prefix",
        ),
        (
            "traffic",
            "GET",
            "/authors.json",
            "403",
            "denied: traffic's identity is not authorized",
        ),
        (
            "webapp",
            "POST",
            "/authors.json",
            "404",
            "no route: the routes allow GET only",
        ),
    ];
    for (client, method, path, status, why) in cases {
        let (line, head, body) = from_app(client, method, path).await?;
        if !line.starts_with(&format!("HTTP/1.1 {status}")) {
            bail!("{client} {method} {path}: expected {status}, got {line:?}: {head}\n{body}");
        }
        if header(&head, "l5d-proxy-error").is_some() {
            bail!("{client}'s app received the peer's l5d-proxy-error: {head}");
        }
        let detail = if status == "200" {
            body.lines().next().unwrap_or_default().to_string()
        } else {
            let reason = remote_error(&logs.join(format!("{client}-proxy.log"))).await?;
            format!("{client}'s proxy logged the reason: {reason}")
        };
        println!(
            "    {client:<8} {method:<4} {path:<14} -> {line:<22} {why}\n{:>33}{detail}",
            ""
        );
    }
    // A client outside the mesh, straight to authors' inbound port.
    let (line, _, _) = exchange(
        &format!("{AUTHORS_IP}:4143"),
        "GET /authors.json HTTP/1.1\r\nHost: authors\r\nConnection: close\r\n\r\n".to_string(),
    )
    .await?;
    if !line.starts_with("HTTP/1.1 403") {
        bail!("a plaintext client got {line:?} from authors instead of 403");
    }
    println!("    (plain)  GET  /authors.json  -> {line:<22} denied: no mesh identity");

    // What authors' proxy saw: webapp's identity, over mTLS, with the
    // policy that admitted it.
    let metrics = crate::viz::client::get_text(
        &format!("{AUTHORS_IP}:4191"),
        "/metrics",
        Duration::from_secs(5),
    )
    .await?;
    let webapp = format!("client_id=\"{}\"", identity("webapp"));
    let line = metrics
        .lines()
        .find(|l| l.starts_with("request_total{direction=\"inbound\"") && l.contains(&webapp))
        .context("authors' proxy did not count webapp's request")?;
    if !line.contains("tls=\"true\"") || !line.contains("authz_name=\"authors-get-policy\"") {
        bail!("webapp's request was not counted as mTLS admitted by authors-get-policy: {line}");
    }
    println!("    authors' proxy counted it: {line}");
    Ok(())
}

/// `ztmesh diagnose policy` against the controller, for traffic's denial.
pub fn explain_denial(policy_addr: &str) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("finding this executable")?;
    let from = identity("traffic");
    let out = Command::new(exe)
        .args([
            "diagnose",
            "policy",
            "--policy-addr",
            policy_addr,
            "--from",
            &from,
        ])
        .args([
            "--to",
            "booksapp/externalworkload/authors:7001",
            "--path",
            "/authors.json",
        ])
        .output()
        .context("running ztmesh diagnose policy")?;
    let text = String::from_utf8_lossy(&out.stdout);
    println!(
        "    $ ztmesh diagnose policy --from {from} --to booksapp/externalworkload/authors:7001 --path /authors.json"
    );
    for l in text.lines() {
        println!("      {l}");
    }
    if out.status.code() != Some(1) || !text.starts_with("DENY") {
        bail!(
            "diagnose policy should deny (exit 1), got {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Steady traffic from webapp and books while the controller's viz API
/// measures it; the table is printed and checked.
pub async fn show_traffic(viz: &str) -> anyhow::Result<()> {
    let load = |client: &'static str, path: &'static str| {
        tokio::spawn(async move {
            // 20 requests per second for 4 s.
            let mut tick = tokio::time::interval(Duration::from_millis(50));
            let mut ok = 0;
            for _ in 0..80 {
                tick.tick().await;
                if let Ok((line, _, _)) = from_app(client, "GET", path).await
                    && line.starts_with("HTTP/1.1 200")
                {
                    ok += 1;
                }
            }
            ok
        })
    };
    let loads = [load("webapp", "/authors.json"), load("books", "/authors/1")];
    tokio::time::sleep(Duration::from_secs(1)).await;
    let table = crate::viz::api::get(
        viz,
        "/stat?namespace=booksapp&window=2",
        Duration::from_secs(15),
    )
    .await?;
    let mut ok = 0;
    for l in loads {
        ok += l.await.context("a load task")?;
    }
    println!("    160 requests from webapp and books at 20/s each: {ok} answered 200");
    println!("    $ ztmesh viz stat -n booksapp --controller {viz} --window 2s");
    for l in table.lines() {
        println!("      {l}");
    }
    let authors = table
        .lines()
        .find(|l| l.contains("externalworkload/authors"))
        .context("no authors row in the stat table")?;
    // Cells by their column's header, so a new column moves nothing.
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let cells: Vec<&str> = authors.split_whitespace().collect();
    let cell = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .and_then(|i| cells.get(i).copied())
    };
    let rps: f64 = cell("RPS").and_then(|c| c.parse().ok()).unwrap_or(0.0);
    if ok < 150 || cell("MTLS") != Some("100.00%") || rps < 20.0 {
        bail!("expected authors to serve ~40 req/s, all over mTLS; got {authors}");
    }
    Ok(())
}

/// `ztmesh viz edges`: who talked to whom, with which identities.
pub fn show_edges(manifests: &Path) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("finding this executable")?;
    let out = Command::new(exe)
        .args(["viz", "edges", "-n", "booksapp", "--manifests"])
        .arg(manifests)
        .output()
        .context("running ztmesh viz edges")?;
    let text = String::from_utf8_lossy(&out.stdout);
    println!(
        "    $ ztmesh viz edges -n booksapp --manifests {}",
        manifests.display()
    );
    for l in text.lines() {
        println!("      {l}");
    }
    let secured = |src: &str| {
        text.lines().any(|l| {
            l.contains(&format!("externalworkload/{src}"))
                && l.contains("authors")
                && l.contains("yes")
        })
    };
    if !out.status.success() || !secured("webapp") || !secured("books") {
        bail!(
            "viz edges should show webapp and books reaching authors over mTLS ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}
