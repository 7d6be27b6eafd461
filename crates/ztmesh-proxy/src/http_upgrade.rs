//! HTTP/1.1 protocol upgrades (WebSocket and the like) through the proxy.
//!
//! An upgrade request is forwarded as HTTP/1.1 on a connection of its own;
//! when the far side answers `101 Switching Protocols`, both connections
//! are taken over from hyper and their bytes copied in both directions
//! until either side closes.

use http::header::{CONNECTION, UPGRADE};
use http::{Request, Response, StatusCode};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

/// An HTTP/1.1 request asking to switch protocols.
pub(crate) fn is_upgrade<B>(req: &Request<B>) -> bool {
    req.version() == http::Version::HTTP_11
        && req.headers().contains_key(UPGRADE)
        && req
            .headers()
            .get_all(CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// Takes the client's side of an upgrade out of its request, before the
/// request is sent on.
pub(crate) fn client_side<B>(req: &mut Request<B>) -> Option<OnUpgrade> {
    is_upgrade(req).then(|| hyper::upgrade::on(req))
}

/// Once the response is `101`, joins the two upgraded connections.
pub(crate) fn bridge<B>(client: OnUpgrade, rsp: &mut Response<B>) {
    if rsp.status() != StatusCode::SWITCHING_PROTOCOLS {
        return;
    }
    let server = hyper::upgrade::on(rsp);
    tokio::spawn(async move {
        match tokio::try_join!(client, server) {
            Ok((client, server)) => {
                let (mut client, mut server) = (TokioIo::new(client), TokioIo::new(server));
                match tokio::io::copy_bidirectional(&mut client, &mut server).await {
                    Ok((up, down)) => tracing::debug!(up, down, "upgraded connection closed"),
                    Err(error) => tracing::debug!(%error, "upgraded connection failed"),
                }
            }
            Err(error) => tracing::info!(%error, "protocol upgrade failed"),
        }
    });
}
