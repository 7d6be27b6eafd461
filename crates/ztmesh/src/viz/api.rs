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
//! (`crate::check::compliance_answer`). `GET /workloads?namespace=NS&resource=KIND/NAME`
//! lists the workloads the index selects (`[{"kind", "name"}]`), how the
//! CLI resolves a `deploy/NAME` it asks the controller about
//! (`crate::resource::controller`). `GET /ready` answers 200 once the
//! controller's first sync is in force (its status says `"ready": true`),
//! 503 before. (Kubernetes probes use the controller's admin server,
//! `--admin-addr`, which answers `/ready` and `/live` the same way while
//! the viz API stays on loopback.)
//! The dashboard's page, `GET /tap` (streamed) and `GET /denials` are
//! [`super::dashboard`]'s.

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

/// `GET /workloads`: the workloads of `namespace` that `resource` selects,
/// sorted, as `[{"kind": "pod" | "externalworkload", "name"}]`.
fn workloads_answer(
    index: &Mutex<ztmesh_policy::Index>,
    query_text: Option<&str>,
) -> (http::StatusCode, String) {
    let q = query(query_text);
    let Some(namespace) = q.get("namespace") else {
        return (
            http::StatusCode::BAD_REQUEST,
            "{\"error\":\"namespace is required\"}\n".into(),
        );
    };
    let resource = match q.get("resource").map(|r| r.parse::<Resource>()) {
        None => None,
        Some(Ok(r)) => Some(r),
        Some(Err(e)) => {
            let error = serde_json::json!({"error": e.to_string()});
            return (http::StatusCode::BAD_REQUEST, format!("{error}\n"));
        }
    };
    let index = index.lock().expect("policy index lock");
    let mut found: Vec<&ztmesh_policy::WorkloadRef> = index
        .workloads()
        .filter(|(ns, w, wl)| {
            ns == namespace && resource.as_ref().is_none_or(|r| r.selects(ns, w, wl))
        })
        .map(|(_, w, _)| w)
        .collect();
    found.sort();
    let rows: Vec<serde_json::Value> = found
        .into_iter()
        .map(|w| match w {
            ztmesh_policy::WorkloadRef::Pod(n) => serde_json::json!({"kind": "pod", "name": n}),
            ztmesh_policy::WorkloadRef::External(n) => {
                serde_json::json!({"kind": "externalworkload", "name": n})
            }
        })
        .collect();
    (
        http::StatusCode::OK,
        serde_json::Value::from(rows).to_string() + "\n",
    )
}

/// `GET /ready`: 200 once the first sync is in force (`"ready": true` in
/// the controller's status), else 503.
pub(crate) fn ready(status: &serde_json::Value) -> (http::StatusCode, String) {
    if status.get("ready") == Some(&serde_json::Value::Bool(true)) {
        (http::StatusCode::OK, "ready\n".into())
    } else {
        (
            http::StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the first sync is not in force yet\n".into(),
        )
    }
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
                        let (code, body, content_type) = if req.uri().path() == "/ready" {
                            let (code, body) = ready(&status.lock().expect("status lock"));
                            (code, body, "text/plain")
                        } else if req.uri().path() == "/workloads" {
                            let (code, body) = workloads_answer(&index, req.uri().query());
                            (code, body, "application/json")
                        } else if req.uri().path() == "/status" {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `/workloads` selects from the index as `viz stat` does (deploy/NAME:
    /// the workloads labelled app=NAME), and the CLI reads its answer back.
    #[test]
    fn workloads_by_resource() {
        let yaml = "\
apiVersion: workload.linkerd.io/v1beta1
kind: ExternalWorkload
metadata: {name: authors-7f9c, namespace: booksapp, labels: {app: authors}}
spec:
  meshTLS: {identity: a.booksapp.serviceaccount.identity.linkerd.cluster.local, serverName: a.booksapp.serviceaccount.identity.linkerd.cluster.local}
  workloadIPs: [{ip: 127.0.9.2}]
---
apiVersion: v1
kind: Pod
metadata: {name: authors-1, namespace: booksapp, labels: {app: authors}}
spec: {containers: [{name: c, image: i}]}
status: {podIP: 127.0.9.9}
---
apiVersion: v1
kind: Pod
metadata: {name: books, namespace: booksapp, labels: {app: books}}
spec: {containers: [{name: c, image: i}]}
status: {podIP: 127.0.9.3}
";
        let mut index = ztmesh_policy::Index::new(Default::default());
        for r in ztmesh_resources::load_str(yaml, "t.yaml").resources {
            index.apply(r);
        }
        let index = Mutex::new(index);
        // (query, status, the workloads answered)
        let cases: [(&str, http::StatusCode, &[&str]); 5] = [
            (
                "namespace=booksapp&resource=deploy/authors",
                http::StatusCode::OK,
                &["pod/authors-1", "externalworkload/authors-7f9c"],
            ),
            (
                "namespace=booksapp&resource=po/books",
                http::StatusCode::OK,
                &["pod/books"],
            ),
            (
                "namespace=other&resource=deploy/authors",
                http::StatusCode::OK,
                &[],
            ),
            (
                "namespace=booksapp&resource=svc/x",
                http::StatusCode::BAD_REQUEST,
                &[],
            ),
            (
                "resource=deploy/authors",
                http::StatusCode::BAD_REQUEST,
                &[],
            ),
        ];
        for (q, want, names) in cases {
            let (code, body) = workloads_answer(&index, Some(q));
            assert_eq!(code, want, "{q}: {body}");
            if code == http::StatusCode::OK {
                let got: Vec<String> = crate::resource::controller::parse_rows(&body)
                    .unwrap()
                    .iter()
                    .map(|w| w.to_string())
                    .collect();
                let mut want: Vec<String> = names.iter().map(|n| n.to_string()).collect();
                want.sort_by_key(|n| !n.starts_with("pod/"));
                assert_eq!(got, want, "{q}");
            }
        }
    }

    /// Ready only once the first sync is in force.
    #[test]
    fn ready_once_the_first_sync_is_in_force() {
        let synced = serde_json::json!({"ready": true, "refused": []});
        let starting = serde_json::Value::Null;
        let not_yet = serde_json::json!({"ready": false});
        // (status, want)
        let cases = [
            (&synced, http::StatusCode::OK),
            (&starting, http::StatusCode::SERVICE_UNAVAILABLE),
            (&not_yet, http::StatusCode::SERVICE_UNAVAILABLE),
        ];
        for (status, want) in cases {
            assert_eq!(ready(status).0, want, "{status}");
        }
    }
}
