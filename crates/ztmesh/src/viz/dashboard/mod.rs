//! The web dashboard (`ztmesh viz dashboard`), served by the controller's
//! viz API: one page and its script and style, embedded in the binary
//! (`assets/`: plain JS and SVG, nothing fetched from elsewhere), which
//! read the viz API's JSON: `/stat`, `/edges`, `/routes`, `/denials`,
//! `/compliance`, and the live `/tap` stream.
//!
//! - [`answer`]: the routes this module serves on the viz API (the page,
//!   its assets, `/tap` and `/denials`);
//! - [`denials`]: denials with their reasons, from the proxies' metrics;
//! - [`cli`]: the command, which prints the page's URL.

pub mod cli;
pub mod denials;

use crate::viz::tap::client::Tapper;
use bytes::Bytes;
use http_body_util::BodyExt;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

/// A viz API answer's body: whole, or streamed (`/tap`).
pub type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, Infallible>;

const INDEX: &str = include_str!("assets/index.html");
const APP: &str = include_str!("assets/app.js");
const STYLE: &str = include_str!("assets/style.css");

/// What the dashboard's routes need besides the index.
#[derive(Clone, Debug)]
pub struct Dashboard {
    /// The tap identity (None: tap is not available, and `/tap` says why).
    pub tapper: Option<Arc<Tapper>>,
    /// The proxies' admin port (for `/denials`).
    pub admin_port: u16,
}

/// A whole body.
pub fn full(body: impl Into<Bytes>) -> Body {
    http_body_util::Full::new(body.into()).boxed_unsync()
}

fn respond(status: http::StatusCode, content_type: &str, body: Body) -> http::Response<Body> {
    http::Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("cache-control", "no-store")
        .body(body)
        .expect("a valid response")
}

fn text(status: http::StatusCode, body: String) -> http::Response<Body> {
    respond(status, "text/plain", full(body))
}

/// The answer to `path` if it is one of the dashboard's routes.
pub async fn answer(
    path: &str,
    query: &std::collections::HashMap<String, String>,
    index: &Mutex<ztmesh_policy::Index>,
    dash: &Dashboard,
) -> Option<http::Response<Body>> {
    let ok = http::StatusCode::OK;
    Some(match path {
        "/" | "/dashboard" | "/dashboard/" => respond(ok, "text/html; charset=utf-8", full(INDEX)),
        "/dashboard/app.js" => respond(ok, "text/javascript; charset=utf-8", full(APP)),
        "/dashboard/style.css" => respond(ok, "text/css; charset=utf-8", full(STYLE)),
        "/tap" => tap(query, index, dash),
        "/denials" => denials(query, index, dash).await,
        _ => return None,
    })
}

fn tap(
    query: &std::collections::HashMap<String, String>,
    index: &Mutex<ztmesh_policy::Index>,
    dash: &Dashboard,
) -> http::Response<Body> {
    let Some(tapper) = &dash.tapper else {
        return text(
            http::StatusCode::SERVICE_UNAVAILABLE,
            "this controller holds no tap identity\n".into(),
        );
    };
    let q = match crate::viz::tap::serve::TapQuery::parse(query) {
        Ok(q) => q,
        Err(e) => return text(http::StatusCode::BAD_REQUEST, format!("{e}\n")),
    };
    let lines = match crate::viz::tap::serve::start(tapper.clone(), index, &q) {
        Ok(lines) => lines,
        Err(e) => return text(http::StatusCode::NOT_FOUND, format!("{e}\n")),
    };
    let frames = futures::stream::unfold(lines, |mut lines| async move {
        let line = lines.recv().await?;
        Some((Ok(hyper::body::Frame::data(Bytes::from(line))), lines))
    });
    respond(
        http::StatusCode::OK,
        "application/x-ndjson",
        http_body_util::StreamBody::new(frames).boxed_unsync(),
    )
}

async fn denials(
    query: &std::collections::HashMap<String, String>,
    index: &Mutex<ztmesh_policy::Index>,
    dash: &Dashboard,
) -> http::Response<Body> {
    let resource = match query.get("resource").map(|r| r.parse()).transpose() {
        Ok(r) => r,
        Err(e) => return text(http::StatusCode::BAD_REQUEST, format!("resource {e}\n")),
    };
    let workloads = {
        let index = index.lock().expect("policy index lock");
        crate::viz::model::workloads_in(
            &index,
            query.get("namespace").map(String::as_str),
            resource.as_ref(),
            dash.admin_port,
        )
    };
    let scraped = crate::viz::source::scrape_once(&workloads).await;
    let mut rows = Vec::new();
    for ((ns, name, _), samples) in workloads.iter().zip(&scraped) {
        rows.extend(denials::denial_rows(
            &format!("{ns}/{name}"),
            samples.as_deref().unwrap_or_default(),
        ));
    }
    respond(
        http::StatusCode::OK,
        "application/json",
        full(crate::table::json(&rows)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_page_and_its_assets_are_served_from_the_binary() {
        let index = Mutex::new(ztmesh_policy::Index::new(Default::default()));
        let dash = Dashboard {
            tapper: None,
            admin_port: 4191,
        };
        let none = Default::default();
        // (path, content type, a piece of the body)
        let cases = [
            (
                "/dashboard",
                "text/html; charset=utf-8",
                "<script src=\"/dashboard/app.js\">",
            ),
            ("/", "text/html; charset=utf-8", "ztmesh"),
            (
                "/dashboard/app.js",
                "text/javascript; charset=utf-8",
                "fetch(",
            ),
            ("/dashboard/style.css", "text/css; charset=utf-8", "body"),
            ("/tap", "text/plain", "no tap identity"),
        ];
        for (path, content_type, piece) in cases {
            let rsp = answer(path, &none, &index, &dash).await.expect(path);
            assert_eq!(rsp.headers()["content-type"], content_type, "{path}");
            let body = rsp.into_body().collect().await.unwrap().to_bytes();
            let body = String::from_utf8_lossy(&body);
            assert!(body.contains(piece), "{path}: {body}");
        }
        assert!(answer("/stat", &none, &index, &dash).await.is_none());
        // Nothing from elsewhere: no absolute URL in the page or its assets.
        for asset in [INDEX, APP, STYLE] {
            let asset = asset.replace("http://www.w3.org/2000/svg", "");
            assert!(
                !asset.contains("http://")
                    && !asset.contains("https://")
                    && !asset.contains("//cdn")
            );
        }
    }
}
