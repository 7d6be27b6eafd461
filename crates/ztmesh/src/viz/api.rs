//! The controller's viz API:
//! `GET /stat?namespace=NS&resource=KIND/NAME&window=SECONDS[&output=json]`
//! answers the stat table (text, or JSON rows), computed by the controller from its own
//! index of workloads, scraping each workload's proxy admin port over the
//! window, or, with `--prometheus URL`, asking Prometheus about the last
//! window (a [`Source`]). The CLI's `viz stat --controller ADDR` reads it;
//! [`get`] is its client. `GET /status` answers the controller's own
//! status as JSON (the manifests refused and what of each is in force,
//! see `controller::policy::status_json`). The dashboard's page, `GET
//! /tap` (streamed) and `GET /denials` are [`super::dashboard`]'s.

use super::model::workloads_in;
use super::resource::Resource;
pub use super::source::Source;
use super::url::query;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The longest window a request may ask for.
pub const MAX_WINDOW: Duration = Duration::from_secs(60);

async fn answer(
    index: &Mutex<ztmesh_policy::Index>,
    source: &Source,
    req: &http::Request<hyper::body::Incoming>,
) -> (http::StatusCode, String) {
    if req.uri().path() != "/stat" {
        return (
            http::StatusCode::NOT_FOUND,
            "try /stat?namespace=NS&window=SECONDS or /status\n".into(),
        );
    }
    let q = query(req.uri().query());
    let window = match q.get("window").map(|w| w.parse::<f64>()) {
        None => Duration::from_secs(5),
        Some(Ok(w)) if w > 0.0 && w <= MAX_WINDOW.as_secs_f64() => Duration::from_secs_f64(w),
        Some(_) => {
            return (
                http::StatusCode::BAD_REQUEST,
                format!(
                    "window must be a number of seconds in (0, {}]\n",
                    MAX_WINDOW.as_secs()
                ),
            );
        }
    };
    let admin_port = source.admin_port();
    let resource = match q.get("resource").map(|r| r.parse::<Resource>()) {
        None => None,
        Some(Ok(r)) => Some(r),
        Some(Err(e)) => return (http::StatusCode::BAD_REQUEST, format!("resource {e}\n")),
    };
    let workloads = {
        let index = index.lock().expect("policy index lock");
        workloads_in(
            &index,
            q.get("namespace").map(String::as_str),
            resource.as_ref(),
            admin_port,
        )
    };
    if workloads.is_empty() {
        return (
            http::StatusCode::NOT_FOUND,
            "no workloads with addresses\n".into(),
        );
    }
    let rows = match source.stat_rows(&workloads, window).await {
        Ok(rows) => rows,
        Err(e) => return (http::StatusCode::BAD_GATEWAY, format!("{e}\n")),
    };
    let body = match q.get("output").map(String::as_str) {
        Some("json") => crate::table::json(&rows),
        _ => crate::table::render(&super::model::stat_table(&rows)),
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
