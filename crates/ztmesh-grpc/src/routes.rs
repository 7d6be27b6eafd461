//! Route pieces shared by the inbound and outbound policy adapters: HTTP
//! matches, host matches and route metadata, in linkerd2-proxy-api's types.

use linkerd2_proxy_api::{http_route as http_proto, meta};
use ztmesh_policy::{HttpRouteMatch, PathMatch, RouteRef, ValueMatch};

pub fn http_match(m: &HttpRouteMatch) -> http_proto::HttpRouteMatch {
    use http_proto::header_match::Value as H;
    use http_proto::path_match::Kind as P;
    use http_proto::query_param_match::Value as Q;
    http_proto::HttpRouteMatch {
        path: m.path.as_ref().map(|p| http_proto::PathMatch {
            kind: Some(match p {
                PathMatch::Exact(v) => P::Exact(v.clone()),
                PathMatch::Prefix(v) => P::Prefix(v.clone()),
                PathMatch::Regex(v) => P::Regex(v.clone()),
            }),
        }),
        headers: m
            .headers
            .iter()
            .map(|h| match h {
                ValueMatch::Exact { name, value } => http_proto::HeaderMatch {
                    name: name.clone(),
                    value: Some(H::Exact(value.clone().into_bytes())),
                },
                ValueMatch::Regex { name, value } => http_proto::HeaderMatch {
                    name: name.clone(),
                    value: Some(H::Regex(value.clone())),
                },
            })
            .collect(),
        query_params: m
            .query_params
            .iter()
            .map(|q| match q {
                ValueMatch::Exact { name, value } => http_proto::QueryParamMatch {
                    name: name.clone(),
                    value: Some(Q::Exact(value.clone())),
                },
                ValueMatch::Regex { name, value } => http_proto::QueryParamMatch {
                    name: name.clone(),
                    value: Some(Q::Regex(value.clone())),
                },
            })
            .collect(),
        method: m
            .method
            .as_deref()
            .and_then(|s| http::Method::from_bytes(s.as_bytes()).ok())
            .map(Into::into),
    }
}

pub fn route_meta(r: &RouteRef) -> meta::Metadata {
    let kind = match r {
        RouteRef::Default(name) => meta::metadata::Kind::Default(name.to_string()),
        RouteRef::Resource { group, kind, name } => {
            meta::metadata::Kind::Resource(meta::Resource {
                group: group.clone(),
                kind: kind.clone(),
                name: name.clone(),
                ..Default::default()
            })
        }
    };
    meta::Metadata { kind: Some(kind) }
}

/// Host matches: `*.example.com` as a suffix, anything else exact.
pub fn hosts(hostnames: &[String]) -> Vec<http_proto::HostMatch> {
    use http_proto::host_match::{Match, Suffix};
    hostnames
        .iter()
        .map(|h| http_proto::HostMatch {
            r#match: Some(match h.strip_prefix("*.") {
                Some(rest) => Match::Suffix(Suffix {
                    reverse_labels: rest.split('.').rev().map(String::from).collect(),
                }),
                None => Match::Exact(h.clone()),
            }),
        })
        .collect()
}
