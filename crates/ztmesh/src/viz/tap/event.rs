//! One tap event as the viz API streams it (a line of JSON) and the CLI
//! prints it: [`TapLine`], made from the proxy's `TapEvent` by
//! [`TapLine::from_proto`]; pure.

use linkerd2_proxy_api::tap::{self as proto};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// Which side of the proxy saw the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Inbound,
    Outbound,
}

/// Which part of an exchange an event is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// The request's head.
    Req,
    /// The response's head.
    Rsp,
    /// The response's end.
    End,
}

/// One event of one exchange, as seen by the proxy of `workload`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TapLine {
    /// `NS/NAME` of the tapped workload.
    pub workload: String,
    pub direction: Direction,
    pub kind: Kind,
    /// The exchange's id (the same on its req, rsp and end).
    pub id: u64,
    /// The client's address, as the event carries it.
    pub src: String,
    /// The server's address.
    pub dst: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst_id: Option<String>,
    /// The endpoints' other metadata (`pod`, `deployment`, `namespace`...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub src_labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub dst_labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u32>,
    /// Request start to response head (rsp), or to response end (end).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
}

fn addr(a: &Option<linkerd2_proxy_api::net::TcpAddress>) -> String {
    a.and_then(|a| std::net::SocketAddr::try_from(a).ok())
        .map(|a| a.to_string())
        .unwrap_or_else(|| "-".into())
}

fn labels(
    m: &Option<proto::tap_event::EndpointMeta>,
) -> (Option<String>, BTreeMap<String, String>) {
    let mut labels: BTreeMap<String, String> = m
        .as_ref()
        .map(|m| {
            m.labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    let id = labels.remove("tls_identity").filter(|i| !i.is_empty());
    (id, labels)
}

fn ms(d: &Option<prost_types::Duration>) -> Option<f64> {
    d.and_then(|d| Duration::try_from(d).ok())
        .map(|d| d.as_secs_f64() * 1000.0)
}

impl TapLine {
    /// The event of `workload`'s proxy; None for events that are not HTTP.
    pub fn from_proto(workload: &str, e: &proto::TapEvent) -> Option<Self> {
        use proto::tap_event::{Event, ProxyDirection, http::Event as H};
        let direction = if e.proxy_direction == ProxyDirection::Inbound as i32 {
            Direction::Inbound
        } else {
            Direction::Outbound
        };
        let (src_id, src_labels) = labels(&e.source_meta);
        let (dst_id, dst_labels) = labels(&e.destination_meta);
        let mut line = Self {
            workload: workload.to_string(),
            direction,
            kind: Kind::Req,
            id: 0,
            src: addr(&e.source),
            dst: addr(&e.destination),
            src_id,
            dst_id,
            src_labels,
            dst_labels,
            method: None,
            authority: None,
            path: None,
            status: None,
            latency_ms: None,
        };
        let Event::Http(http) = e.event.as_ref()?;
        match http.event.as_ref()? {
            H::RequestInit(r) => {
                line.id = r.id.map(|i| i.stream).unwrap_or(0);
                line.method = r
                    .method
                    .clone()
                    .and_then(|m| http::Method::try_from(m).ok())
                    .map(|m| m.to_string());
                line.authority = Some(r.authority.clone());
                line.path = Some(r.path.clone());
            }
            H::ResponseInit(r) => {
                line.kind = Kind::Rsp;
                line.id = r.id.map(|i| i.stream).unwrap_or(0);
                line.status = Some(r.http_status);
                line.latency_ms = ms(&r.since_request_init);
            }
            H::ResponseEnd(r) => {
                line.kind = Kind::End;
                line.id = r.id.map(|i| i.stream).unwrap_or(0);
                line.latency_ms = ms(&r.since_request_init);
            }
        }
        Some(line)
    }

    /// One line, as `linkerd viz tap` prints events.
    pub fn describe(&self) -> String {
        let dir = match self.direction {
            Direction::Inbound => "in ",
            Direction::Outbound => "out",
        };
        let dash = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
        let head = format!(
            "id={} proxy={dir} src={} dst={} src_id={} dst_id={}",
            self.id,
            self.src,
            self.dst,
            dash(&self.src_id),
            dash(&self.dst_id)
        );
        let latency = crate::table::ms(self.latency_ms);
        match self.kind {
            Kind::Req => format!(
                "req {head} :method={} :authority={} :path={}",
                dash(&self.method),
                dash(&self.authority),
                dash(&self.path)
            ),
            Kind::Rsp => format!(
                "rsp {head} :status={} latency={latency}",
                self.status.unwrap_or(0)
            ),
            Kind::End => format!("end {head} duration={latency}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::tap_event::{self, http as h};

    fn event(ev: h::Event, inbound: bool) -> proto::TapEvent {
        let meta = |id: &str, more: &[(&str, &str)]| {
            let mut labels: std::collections::HashMap<String, String> = more
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            labels.insert("tls_identity".into(), id.into());
            Some(tap_event::EndpointMeta { labels })
        };
        proto::TapEvent {
            source: Some(
                "127.0.9.4:40000"
                    .parse::<std::net::SocketAddr>()
                    .unwrap()
                    .into(),
            ),
            source_meta: meta("webapp.id", &[("deployment", "webapp")]),
            destination: Some(
                "127.0.9.2:7001"
                    .parse::<std::net::SocketAddr>()
                    .unwrap()
                    .into(),
            ),
            destination_meta: meta("", &[]),
            route_meta: None,
            proxy_direction: if inbound {
                tap_event::ProxyDirection::Inbound as i32
            } else {
                tap_event::ProxyDirection::Outbound as i32
            },
            event: Some(tap_event::Event::Http(tap_event::Http { event: Some(ev) })),
        }
    }

    #[test]
    fn events_become_lines() {
        let id = Some(h::StreamId { base: 0, stream: 7 });
        let req = event(
            h::Event::RequestInit(h::RequestInit {
                id,
                method: Some(http::Method::GET.into()),
                scheme: None,
                authority: "authors.booksapp.svc.cluster.local:7001".into(),
                path: "/authors.json".into(),
                headers: None,
            }),
            true,
        );
        let rsp = event(
            h::Event::ResponseInit(h::ResponseInit {
                id,
                since_request_init: Some(Duration::from_micros(1500).try_into().unwrap()),
                http_status: 403,
                headers: None,
            }),
            false,
        );
        let line = TapLine::from_proto("booksapp/authors", &req).unwrap();
        assert_eq!(
            line.describe(),
            "req id=7 proxy=in  src=127.0.9.4:40000 dst=127.0.9.2:7001 src_id=webapp.id dst_id=- :method=GET :authority=authors.booksapp.svc.cluster.local:7001 :path=/authors.json"
        );
        assert_eq!(
            line.src_labels.get("deployment").map(String::as_str),
            Some("webapp")
        );
        let json = serde_json::to_string(&line).unwrap();
        assert_eq!(serde_json::from_str::<TapLine>(&json).unwrap(), line);
        let line = TapLine::from_proto("booksapp/webapp", &rsp).unwrap();
        assert_eq!(
            (line.kind, line.status, line.direction),
            (Kind::Rsp, Some(403), Direction::Outbound)
        );
        assert!(
            line.describe().ends_with(":status=403 latency=1.5ms"),
            "{}",
            line.describe()
        );
    }
}
