//! Which route a request takes.
//!
//! As linkerd's `http-route` crate ranks them (Gateway API precedence):
//! among the routes whose hostnames admit the request, and their rules
//! whose matches do, the best match wins: the more specific hostname
//! first, then the longer path match (exact, regex or prefix, by the
//! length matched), then more header matches, more query parameter
//! matches, a method match. Ties go to the route listed first.

use crate::policy::{GrpcMatch, HostMatch, HttpMatch, PathMatch, Route, ValueMatch};
use http::Request;

/// How well a request matched: greater is better.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Score {
    /// 0: no hostnames; 1 + length for a suffix; 1_000_000 + length exact.
    host: usize,
    path: usize,
    headers: usize,
    query_params: usize,
    method: bool,
}

/// The request's facts the matches look at, read once.
pub struct RequestFacts<'a> {
    pub method: &'a http::Method,
    pub path: &'a str,
    /// The path without trailing slashes, for prefix matches.
    trimmed: &'a str,
    pub query: Option<&'a str>,
    /// Without a port; compared case-insensitively.
    pub host: Option<&'a str>,
    pub headers: &'a http::HeaderMap,
}

impl<'a> RequestFacts<'a> {
    pub fn new<B>(req: &'a Request<B>) -> Self {
        let path = req.uri().path();
        let host = req.uri().host().or_else(|| {
            req.headers()
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(|h| h.rsplit_once(':').map(|(h, _)| h).unwrap_or(h))
        });
        Self {
            method: req.method(),
            path,
            trimmed: path.trim_end_matches('/'),
            query: req.uri().query(),
            host,
            headers: req.headers(),
        }
    }
}

/// The best HTTP route for the request: its position, itself, its score.
pub fn find_http<'r>(
    routes: &'r [Route<HttpMatch>],
    req: &RequestFacts<'_>,
) -> Option<(usize, &'r Route<HttpMatch>, Score)> {
    best(routes, req, http_score)
}

/// The best gRPC route for the request (service and method from the path):
/// its position, itself, its score.
pub fn find_grpc<'r>(
    routes: &'r [Route<GrpcMatch>],
    req: &RequestFacts<'_>,
) -> Option<(usize, &'r Route<GrpcMatch>, Score)> {
    best(routes, req, grpc_score)
}

fn best<'r, M>(
    routes: &'r [Route<M>],
    req: &RequestFacts<'_>,
    score: impl Fn(&M, &RequestFacts<'_>) -> Option<Score>,
) -> Option<(usize, &'r Route<M>, Score)> {
    let mut best: Option<(usize, &Route<M>, Score)> = None;
    for (i, route) in routes.iter().enumerate() {
        let Some(host) = host_score(&route.hostnames, req.host) else {
            continue;
        };
        let rule_best = route
            .rules
            .iter()
            .filter_map(|rule| {
                if rule.matches.is_empty() {
                    return Some(Score::default());
                }
                rule.matches.iter().filter_map(|m| score(m, req)).max()
            })
            .max();
        if let Some(mut s) = rule_best {
            s.host = host;
            if best.is_none_or(|(_, _, b)| s > b) {
                best = Some((i, route, s));
            }
        }
    }
    best
}

fn host_score(hostnames: &[HostMatch], host: Option<&str>) -> Option<usize> {
    if hostnames.is_empty() {
        return Some(0);
    }
    let host = host?;
    hostnames
        .iter()
        .filter_map(|h| match h {
            HostMatch::Exact(e) => e.eq_ignore_ascii_case(host).then_some(1_000_000 + e.len()),
            HostMatch::Suffix(s) => (host.len() > s.len()
                && host.as_bytes()[host.len() - s.len()..].eq_ignore_ascii_case(s.as_bytes()))
            .then_some(1 + s.len()),
        })
        .max()
}

/// The score of one HTTP match, or None if the request does not match it.
pub fn http_score(m: &HttpMatch, req: &RequestFacts<'_>) -> Option<Score> {
    let mut s = Score::default();
    if let Some(method) = &m.method {
        if method != req.method {
            return None;
        }
        s.method = true;
    }
    s.path = match &m.path {
        None => 1,
        Some(p) => path_len(p, req)?,
    };
    if !m.headers.iter().all(|h| header_matches(h, req.headers)) {
        return None;
    }
    s.headers = m.headers.len();
    if !m.query_params.iter().all(|q| query_matches(q, req.query)) {
        return None;
    }
    s.query_params = m.query_params.len();
    Some(s)
}

/// How much of the path a path match covers, if it matches.
pub fn path_len(p: &PathMatch, req: &RequestFacts<'_>) -> Option<usize> {
    match p {
        PathMatch::Exact(e) => (e == req.path).then_some(e.len()),
        PathMatch::Prefix(prefix) if prefix == "/" => Some(1),
        // "A prefix matches whole path segments: /authors matches /authors
        // and /authors/1, not /authorsx."
        PathMatch::Prefix(prefix) => {
            let t = req.trimmed;
            (t.starts_with(prefix.as_str())
                && (t.len() == prefix.len() || t.as_bytes()[prefix.len()] == b'/'))
                .then_some(prefix.len())
        }
        PathMatch::Regex(re, _) => re
            .as_ref()
            .filter(|re| re.is_match(req.path))
            .map(|_| req.path.len()),
    }
}

pub fn header_matches(m: &ValueMatch, headers: &http::HeaderMap) -> bool {
    let (name, check): (&str, &dyn Fn(&str) -> bool) = match m {
        ValueMatch::Exact { name, value } => (name, &move |v: &str| v == value),
        ValueMatch::Regex { name, value, .. } => match value {
            Some(re) => (name, &move |v: &str| re.is_match(v)),
            None => return false,
        },
    };
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(check)
}

pub fn query_matches(m: &ValueMatch, query: Option<&str>) -> bool {
    let Some(query) = query else {
        return false;
    };
    let pairs = query
        .split('&')
        .map(|kv| kv.split_once('=').unwrap_or((kv, "")));
    match m {
        ValueMatch::Exact { name, value } => {
            pairs.into_iter().any(|(k, v)| k == name && v == value)
        }
        ValueMatch::Regex { name, value, .. } => match value {
            Some(re) => pairs.into_iter().any(|(k, v)| k == name && re.is_match(v)),
            None => false,
        },
    }
}

/// gRPC: `/package.Service/Method`; a more specific rpc match ranks higher.
pub fn grpc_score(m: &GrpcMatch, req: &RequestFacts<'_>) -> Option<Score> {
    let mut parts = req.path.strip_prefix('/')?.splitn(2, '/');
    let (service, method) = (parts.next()?, parts.next().unwrap_or(""));
    let mut s = Score::default();
    if let Some(want) = &m.service {
        if want != service {
            return None;
        }
        s.path += 2;
    }
    if let Some(want) = &m.method {
        if want != method {
            return None;
        }
        s.path += 1;
    }
    if !m.headers.iter().all(|h| header_matches(h, req.headers)) {
        return None;
    }
    s.headers = m.headers.len();
    Some(s)
}
