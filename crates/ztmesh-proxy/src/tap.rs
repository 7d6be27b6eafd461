//! Tap: a live stream of the requests this proxy handles
//! (`io.linkerd.proxy.tap.Tap/Observe`), served on the control port over
//! mTLS, and only to the tap identity (`LINKERD2_PROXY_TAP_SVC_NAME`).
//!
//! Observers register a match (HTTP method, authority, path exact or
//! prefix, combined with all / any / not; source and destination matches
//! are refused as unsupported) and a limit; each matching request yields
//! `RequestInit`, `ResponseInit` and `ResponseEnd` events. With no observer
//! the request path pays one atomic load.

use linkerd2_proxy_api::tap::{
    self as proto, observe_request::r#match as m, tap_event, tap_server::Tap,
};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use tokio::sync::mpsc;
use tonic::{Request, Response, Status};

/// Events queued per observer; a slow observer loses events, never slows requests.
const QUEUE: usize = 1_000;

#[derive(Default)]
pub struct Taps {
    active: AtomicUsize,
    next_stream: AtomicU64,
    observers: Mutex<Vec<Observer>>,
}

struct Observer {
    filter: proto::observe_request::Match,
    remaining: u32,
    tx: mpsc::Sender<Result<proto::TapEvent, Status>>,
}

/// A tapped request, waiting for its response.
pub(crate) struct Tapped {
    base: proto::TapEvent,
    id: tap_event::http::StreamId,
    started: tokio::time::Instant,
    to: Vec<mpsc::Sender<Result<proto::TapEvent, Status>>>,
}

/// Whether `req` is one that filter `f` (as [`observe_filter`] accepted it) selects.
pub fn matches<B>(f: &proto::observe_request::Match, req: &http::Request<B>) -> bool {
    use m::http::string_match::Match as S;
    let s = |sm: &m::http::StringMatch, v: &str| match &sm.r#match {
        Some(S::Exact(e)) => e == v,
        Some(S::Prefix(p)) => v.starts_with(p.as_str()),
        None => true,
    };
    match &f.r#match {
        None => true,
        Some(m::Match::All(seq)) => seq.matches.iter().all(|x| matches(x, req)),
        Some(m::Match::Any(seq)) => seq.matches.iter().any(|x| matches(x, req)),
        Some(m::Match::Not(x)) => !matches(x, req),
        Some(m::Match::Http(h)) => match &h.r#match {
            Some(m::http::Match::Method(method)) => {
                http::Method::try_from(method.clone()).is_ok_and(|mm| mm == *req.method())
            }
            Some(m::http::Match::Authority(a)) => s(a, &crate::proxy_http::request_authority(req)),
            Some(m::http::Match::Path(p)) => s(p, req.uri().path()),
            _ => true,
        },
        // Refused when the observer registers.
        Some(_) => false,
    }
}

fn supported(f: &proto::observe_request::Match) -> bool {
    match &f.r#match {
        None | Some(m::Match::Http(_)) => true,
        Some(m::Match::All(s)) | Some(m::Match::Any(s)) => s.matches.iter().all(supported),
        Some(m::Match::Not(x)) => supported(x),
        Some(_) => false,
    }
}

/// Why `Observe` refuses a request.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ObserveError {
    #[error("limit must be at least 1")]
    NoLimit,
    #[error("only HTTP method, authority and path matches (and all / any / not) are supported")]
    Unsupported,
}

impl From<ObserveError> for Status {
    fn from(e: ObserveError) -> Self {
        match e {
            ObserveError::NoLimit => Status::invalid_argument(e.to_string()),
            ObserveError::Unsupported => Status::unimplemented(e.to_string()),
        }
    }
}

/// An `ObserveRequest` checked as `Observe` checks it: its filter and limit.
pub fn observe_filter(
    req: proto::ObserveRequest,
) -> Result<(proto::observe_request::Match, u32), ObserveError> {
    if req.limit == 0 {
        return Err(ObserveError::NoLimit);
    }
    let filter = req.r#match.unwrap_or_default();
    if !supported(&filter) {
        return Err(ObserveError::Unsupported);
    }
    Ok((filter, req.limit))
}

impl Taps {
    /// An observer of every request, up to `limit` (the tests' tap
    /// client, without the gRPC service and its mTLS).
    #[cfg(any(test, feature = "test-util"))]
    pub fn observe_all(&self, limit: u32) -> mpsc::Receiver<Result<proto::TapEvent, Status>> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let mut observers = self.observers.lock().expect("taps lock");
        observers.push(Observer {
            filter: proto::observe_request::Match { r#match: None },
            remaining: limit,
            tx,
        });
        self.active.store(observers.len(), Ordering::Relaxed);
        rx
    }

    pub(crate) fn is_active(&self) -> bool {
        self.active.load(Ordering::Relaxed) > 0
    }

    /// A request starts: events for every observer it matches. `logical`
    /// is the authority to report: the name the request was routed by (a
    /// Service's) where known, in place of an address (None: the
    /// request's own); `source` the client's address.
    pub(crate) fn request<B>(
        &self,
        inbound: bool,
        req: &http::Request<B>,
        logical: Option<&str>,
        source: Option<SocketAddr>,
        destination: SocketAddr,
        identities: (&str, &str),
    ) -> Option<Tapped> {
        if !self.is_active() {
            return None;
        }
        let mut to = Vec::new();
        {
            let mut observers = self.observers.lock().expect("taps lock");
            observers.retain_mut(|o| {
                if o.tx.is_closed() || o.remaining == 0 {
                    return false;
                }
                if matches(&o.filter, req) {
                    o.remaining -= 1;
                    to.push(o.tx.clone());
                }
                o.remaining > 0
            });
            self.active.store(observers.len(), Ordering::Relaxed);
        }
        if to.is_empty() {
            return None;
        }
        let meta = |pairs: &[(&str, &str)]| tap_event::EndpointMeta {
            labels: pairs
                .iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        let base = proto::TapEvent {
            source: source.map(Into::into),
            source_meta: Some(meta(&[("tls_identity", identities.0)])),
            destination: Some(destination.into()),
            destination_meta: Some(meta(&[("tls_identity", identities.1)])),
            route_meta: None,
            proxy_direction: if inbound {
                tap_event::ProxyDirection::Inbound
            } else {
                tap_event::ProxyDirection::Outbound
            } as i32,
            event: None,
        };
        let id = tap_event::http::StreamId {
            base: 0,
            stream: self.next_stream.fetch_add(1, Ordering::Relaxed),
        };
        let t = Tapped {
            base,
            id,
            started: tokio::time::Instant::now(),
            to,
        };
        t.send(tap_event::http::Event::RequestInit(
            tap_event::http::RequestInit {
                id: Some(id),
                method: Some(req.method().clone().into()),
                scheme: None,
                authority: logical
                    .map(String::from)
                    .unwrap_or_else(|| crate::proxy_http::request_authority(req)),
                path: req.uri().path().to_string(),
                headers: None,
            },
        ));
        Some(t)
    }
}

impl Tapped {
    fn send(&self, event: tap_event::http::Event) {
        let mut e = self.base.clone();
        e.event = Some(tap_event::Event::Http(tap_event::Http {
            event: Some(event),
        }));
        for tx in &self.to {
            let _ = tx.try_send(Ok(e.clone()));
        }
    }

    /// The response head arrived (the stream's end is reported with it).
    pub(crate) fn response(self, status: u16) {
        let since = prost_types::Duration::try_from(self.started.elapsed()).ok();
        self.send(tap_event::http::Event::ResponseInit(
            tap_event::http::ResponseInit {
                id: Some(self.id),
                since_request_init: since,
                http_status: status.into(),
                headers: None,
            },
        ));
        self.send(tap_event::http::Event::ResponseEnd(
            tap_event::http::ResponseEnd {
                id: Some(self.id),
                since_request_init: since,
                since_response_init: Some(prost_types::Duration::default()),
                response_bytes: 0,
                eos: None,
                trailers: None,
            },
        ));
    }
}

/// The gRPC service over [`Taps`].
pub(crate) struct TapService(pub(crate) std::sync::Arc<Taps>);

type Events = tokio_stream::wrappers::ReceiverStream<Result<proto::TapEvent, Status>>;

#[tonic::async_trait]
impl Tap for TapService {
    type ObserveStream = Events;

    async fn observe(
        &self,
        req: Request<proto::ObserveRequest>,
    ) -> Result<Response<Events>, Status> {
        let (filter, limit) = observe_filter(req.into_inner())?;
        tracing::info!(limit, "tap observer registered");
        let (tx, rx) = mpsc::channel(QUEUE);
        let mut observers = self.0.observers.lock().expect("taps lock");
        observers.push(Observer {
            filter,
            remaining: limit,
            tx,
        });
        self.0.active.store(observers.len(), Ordering::Relaxed);
        Ok(Response::new(tokio_stream::wrappers::ReceiverStream::new(
            rx,
        )))
    }
}
