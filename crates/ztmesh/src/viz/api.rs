//! The controller's viz API:
//! `GET /stat?namespace=NS&resource=KIND/NAME&window=SECONDS[&output=json]`
//! answers the stat table (text, or JSON rows), computed by the controller from its own
//! index of workloads, scraping each workload's proxy admin port over the
//! window, or, with `--prometheus URL`, asking Prometheus about the last
//! window (a [`Source`]). `GET /edges` and `GET /routes` (same `namespace`,
//! `resource` and `output=table|wide|json`) answer the rows `viz edges` and
//! `viz routes` print, from one scrape of each proxy. The CLI's `viz
//! stat|edges|routes` read them unless given `--manifests`; [`get`] is its
//! client. `GET /status` answers the controller's own
//! status as JSON (the manifests refused and what of each is in force,
//! see `controller::policy::status_json`). `GET /compliance` answers the
//! compliance report, the JSON of `ztmesh check --compliance -o json`
//! (`crate::check::compliance_answer`). The dashboard's page, `GET /tap`
//! (streamed) and `GET /denials` are [`super::dashboard`]'s.

use super::model::workloads_in;
use super::resource::Resource;
use super::routes::{all_route_rows, edges, render_edges, render_routes};
pub use super::source::Source;
use super::url::query;
use crate::table::Output;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The longest window a request may ask for.
pub const MAX_WINDOW: Duration = Duration::from_secs(60);

/// What a GET asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum View {
    Stat,
    Edges,
    Routes,
}

fn bad(text: String) -> (http::StatusCode, String) {
    (http::StatusCode::BAD_REQUEST, text + "\n")
}

async fn answer(
    index: &Mutex<ztmesh_policy::Index>,
    source: &Source,
    req: &http::Request<hyper::body::Incoming>,
) -> (http::StatusCode, String) {
    let view = match req.uri().path() {
        "/stat" => View::Stat,
        "/edges" => View::Edges,
        "/routes" => View::Routes,
        _ => {
            return (
                http::StatusCode::NOT_FOUND,
                "try /stat?namespace=NS&window=SECONDS, /edges, /routes or /status\n".into(),
            );
        }
    };
    let q = query(req.uri().query());
    let output = match q
        .get("output")
        .map(|o| <Output as clap::ValueEnum>::from_str(o, true))
    {
        None => Output::Table,
        Some(Ok(o)) => o,
        Some(Err(_)) => return bad("output must be table, wide or json".into()),
    };
    let window = match q.get("window").map(|w| w.parse::<f64>()) {
        None => Duration::from_secs(5),
        Some(Ok(w)) if w > 0.0 && w <= MAX_WINDOW.as_secs_f64() => Duration::from_secs_f64(w),
        Some(_) => {
            return bad(format!(
                "window must be a number of seconds in (0, {}]",
                MAX_WINDOW.as_secs()
            ));
        }
    };
    let admin_port = source.admin_port();
    let resource = match q.get("resource").map(|r| r.parse::<Resource>()) {
        None => None,
        Some(Ok(r)) => Some(r),
        Some(Err(e)) => return bad(format!("resource {e}")),
    };
    let namespace = q.get("namespace").map(String::as_str);
    let workloads = {
        let index = index.lock().expect("policy index lock");
        let workloads = workloads_in(&index, namespace, resource.as_ref(), admin_port);
        if workloads.is_empty() {
            let why = crate::resource::nothing_selected(&index, namespace, resource.as_ref());
            return (http::StatusCode::NOT_FOUND, format!("{why}\n"));
        }
        workloads
    };
    let body = match view {
        View::Stat => {
            let rows = match source.stat_rows(&workloads, window).await {
                Ok(rows) => rows,
                Err(e) => return (http::StatusCode::BAD_GATEWAY, format!("{e}\n")),
            };
            match output {
                Output::Json => crate::table::json(&rows),
                Output::Table | Output::Wide => {
                    crate::table::render(&super::model::stat_table(&rows))
                }
            }
        }
        View::Edges => {
            let scraped = super::source::scrape_once(&workloads).await;
            render_edges(&edges(&workloads, &scraped), output)
        }
        View::Routes => {
            let scraped = super::source::scrape_once(&workloads).await;
            render_routes(&all_route_rows(&workloads, &scraped), output)
        }
    };
    (http::StatusCode::OK, body)
}

/// Serves the viz API until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    index: Arc<Mutex<ztmesh_policy::Index>>,
    source: Source,
    status: Arc<Mutex<serde_json::Value>>,
    dashboard: super::dashboard::Dashboard,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = &mut shutdown => return,
        };
        let Ok((tcp, _)) = accepted else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let index = index.clone();
        let source = source.clone();
        let status = status.clone();
        let dashboard = dashboard.clone();
        tokio::spawn(async move {
            let svc =
                hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let index = index.clone();
                    let source = source.clone();
                    let status = status.clone();
                    let dashboard = dashboard.clone();
                    async move {
                        let q = query(req.uri().query());
                        if let Some(rsp) =
                            super::dashboard::answer(req.uri().path(), &q, &index, &dashboard).await
                        {
                            return Ok::<_, std::convert::Infallible>(rsp);
                        }
                        let (code, body, content_type) = if req.uri().path() == "/status" {
                            let json = status.lock().expect("status lock").to_string();
                            (http::StatusCode::OK, json + "\n", "application/json")
                        } else if req.uri().path() == "/compliance" {
                            let (code, body) = crate::check::compliance_answer().await;
                            (code, body, "application/json")
                        } else {
                            let json = query(req.uri().query()).get("output").map(String::as_str)
                                == Some("json");
                            let (code, body) = answer(&index, &source, &req).await;
                            let ok = code == http::StatusCode::OK;
                            (
                                code,
                                body,
                                if json && ok {
                                    "application/json"
                                } else {
                                    "text/plain"
                                },
                            )
                        };
                        let rsp = http::Response::builder()
                            .status(code)
                            .header("content-type", content_type)
                            .body(super::dashboard::full(body))
                            .expect("a valid response");
                        Ok::<_, std::convert::Infallible>(rsp)
                    }
                });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc)
                .await;
        });
    }
}

/// GET `path` from the viz API at `addr`.
pub async fn get(addr: &str, path: &str, timeout: Duration) -> anyhow::Result<String> {
    super::client::get_text(addr, path, timeout)
        .await
        .map_err(|e| anyhow::anyhow!("the viz API: {e}"))
}

/// Where the controller's viz API listens by default.
pub fn default_addr() -> SocketAddr {
    "127.0.0.1:8084".parse().expect("valid")
}
