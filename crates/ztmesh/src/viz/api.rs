//! The controller's viz API: `GET /stat?namespace=NS&window=SECONDS`
//! answers the stat table (text), computed by the controller from its own
//! index of workloads, scraping each workload's proxy admin port. The CLI's
//! `viz stat --controller ADDR` reads it; [`get`] is its client.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The longest window a request may ask for.
pub const MAX_WINDOW: Duration = Duration::from_secs(60);

fn query(q: Option<&str>) -> std::collections::HashMap<String, String> {
    q.unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn answer(
    index: &Mutex<ztmesh_policy::Index>,
    admin_port: u16,
    req: &http::Request<hyper::body::Incoming>,
) -> (http::StatusCode, String) {
    if req.uri().path() != "/stat" {
        return (
            http::StatusCode::NOT_FOUND,
            "try /stat?namespace=NS&window=SECONDS\n".into(),
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
    let workloads = {
        let index = index.lock().expect("policy index lock");
        super::stat::workloads_in(&index, q.get("namespace").map(String::as_str), admin_port)
    };
    if workloads.is_empty() {
        return (
            http::StatusCode::NOT_FOUND,
            "no workloads with addresses\n".into(),
        );
    }
    let rows = super::stat::stat_rows(&workloads, window).await;
    (http::StatusCode::OK, crate::table::render(&rows))
}

/// Serves the viz API until the task is dropped.
pub async fn serve(
    listener: tokio::net::TcpListener,
    index: Arc<Mutex<ztmesh_policy::Index>>,
    admin_port: u16,
) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let index = index.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let index = index.clone();
                async move {
                    let (status, body) = answer(&index, admin_port, &req).await;
                    let rsp = http::Response::builder()
                        .status(status)
                        .header("content-type", "text/plain")
                        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
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
    super::scrape::get_text(addr, path, timeout)
        .await
        .map_err(|e| anyhow::anyhow!("the viz API: {e}"))
}

/// Where the controller's viz API listens by default.
pub fn default_addr() -> SocketAddr {
    "127.0.0.1:8084".parse().expect("valid")
}
