//! Stage (HTTP): `l5d-client-id`, the client's verified mesh identity, as
//! linkerd2-proxy sets it for the application.
//!
//! Every inbound request's header is overwritten with the identity the
//! client proved in the mTLS handshake, or removed when it proved none, so
//! a plaintext client or a meshed impostor can never forge it.
//! `l5d-orig-proto`, which the proxies need between them, is left alone.

use http::{HeaderValue, Request};

pub(crate) const L5D_CLIENT_ID: &str = "l5d-client-id";

/// Sets (or removes) `l5d-client-id` on a request about to be forwarded.
pub(crate) fn set<B>(req: &mut Request<B>, verified: Option<&str>) {
    let headers = req.headers_mut();
    // Every copy goes, including repeated ones.
    headers.remove(L5D_CLIENT_ID);
    if let Some(id) = verified.and_then(|id| HeaderValue::from_str(id).ok()) {
        headers.insert(L5D_CLIENT_ID, id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forged_identities_never_reach_the_app() {
        let web = "web.ns.serviceaccount.identity.linkerd.cluster.local";
        let cases: [(&[&str], Option<&str>, Option<&str>); 5] = [
            (&[], Some(web), Some(web)),
            (&[], None, None),
            (
                &["admin.ns.serviceaccount.identity.linkerd.cluster.local"],
                None,
                None,
            ),
            (&["forged", "forged-again"], Some(web), Some(web)),
            (&["forged"], None, None),
        ];
        for (sent, verified, want) in cases {
            let mut b = Request::builder().header("l5d-orig-proto", "HTTP/1.1");
            for s in sent {
                b = b.header(L5D_CLIENT_ID, *s);
            }
            let mut req = b.body(()).unwrap();
            set(&mut req, verified);
            let got: Vec<_> = req.headers().get_all(L5D_CLIENT_ID).iter().collect();
            assert_eq!(got.len(), usize::from(want.is_some()), "{sent:?}");
            assert_eq!(got.first().map(|v| v.to_str().unwrap()), want);
            assert_eq!(req.headers()["l5d-orig-proto"], "HTTP/1.1");
        }
    }
}
