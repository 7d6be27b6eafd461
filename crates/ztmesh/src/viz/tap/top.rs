//! `viz top`'s table, from tap events: one row per (source, destination,
//! method, path), as `linkerd viz top` shows it: count, best, worst and
//! last latency, success rate; the busiest first. Pure.

use super::event::{Direction, Kind, TapLine};
use std::collections::HashMap;

/// A row's key: who asked whom for what.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub source: String,
    pub destination: String,
    pub method: String,
    pub path: String,
}

#[derive(Debug, Default, PartialEq)]
pub struct Row {
    pub count: u64,
    pub ok: u64,
    pub answered: u64,
    pub best_ms: Option<f64>,
    pub worst_ms: Option<f64>,
    pub last_ms: Option<f64>,
}

/// The rows so far, and the requests still waiting for their response.
#[derive(Debug, Default)]
pub struct Top {
    rows: HashMap<Key, Row>,
    open: HashMap<(String, Direction, u64), Key>,
}

/// A peer as a person reads it: its workload from the event's metadata,
/// else its identity's `SA.NS`, else its IP (the port is the client's
/// ephemeral one, meaningless here).
fn peer(
    labels: &std::collections::BTreeMap<String, String>,
    id: &Option<String>,
    addr: &str,
) -> String {
    for (label, kind) in [
        ("deployment", "deploy"),
        ("statefulset", "sts"),
        ("daemonset", "ds"),
        ("pod", "po"),
    ] {
        if let Some(name) = labels.get(label) {
            return format!("{kind}/{name}");
        }
    }
    if let Some(id) = id
        && let Some((sa, rest)) = id.split_once('.')
    {
        let ns = rest.split('.').next().unwrap_or_default();
        return format!("{sa}.{ns}");
    }
    addr.parse::<std::net::SocketAddr>()
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|_| addr.to_string())
}

/// The tapped workload's own name (`externalworkload/authors` of
/// `booksapp/externalworkload/authors`).
fn own(workload: &str) -> String {
    workload
        .split_once('/')
        .map(|(_, n)| n)
        .unwrap_or(workload)
        .to_string()
}

impl Top {
    pub fn record(&mut self, e: &TapLine) {
        let stream = (e.workload.clone(), e.direction, e.id);
        match e.kind {
            Kind::Req => {
                let (source, destination) = match e.direction {
                    Direction::Inbound => {
                        (peer(&e.src_labels, &e.src_id, &e.src), own(&e.workload))
                    }
                    Direction::Outbound => {
                        let to = e
                            .authority
                            .clone()
                            .filter(|a| !a.is_empty())
                            .unwrap_or_else(|| e.dst.clone());
                        let named = peer(&e.dst_labels, &e.dst_id, "");
                        (own(&e.workload), if named.is_empty() { to } else { named })
                    }
                };
                let key = Key {
                    source,
                    destination,
                    method: e.method.clone().unwrap_or_else(|| "-".into()),
                    path: e.path.clone().unwrap_or_else(|| "-".into()),
                };
                self.rows.entry(key.clone()).or_default().count += 1;
                self.open.insert(stream, key);
            }
            Kind::Rsp => {
                let Some(key) = self.open.remove(&stream) else {
                    return;
                };
                let Some(row) = self.rows.get_mut(&key) else {
                    return;
                };
                row.answered += 1;
                if e.status.is_some_and(|s| s < 500) {
                    row.ok += 1;
                }
                if let Some(l) = e.latency_ms {
                    row.best_ms = Some(row.best_ms.map_or(l, |b| b.min(l)));
                    row.worst_ms = Some(row.worst_ms.map_or(l, |w| w.max(l)));
                    row.last_ms = Some(l);
                }
            }
            Kind::End => {}
        }
    }

    /// The table: the busiest rows first, at most `max`.
    pub fn table(&self, max: usize) -> Vec<[String; 9]> {
        let mut rows: Vec<_> = self.rows.iter().collect();
        rows.sort_by(|a, b| b.1.count.cmp(&a.1.count).then(a.0.cmp(b.0)));
        let mut table = vec![
            [
                "SOURCE",
                "DESTINATION",
                "METHOD",
                "PATH",
                "COUNT",
                "BEST",
                "WORST",
                "LAST",
                "SUCCESS",
            ]
            .map(String::from),
        ];
        for (k, r) in rows.into_iter().take(max) {
            let ms = crate::table::ms;
            table.push([
                k.source.clone(),
                k.destination.clone(),
                k.method.clone(),
                k.path.clone(),
                r.count.to_string(),
                ms(r.best_ms),
                ms(r.worst_ms),
                ms(r.last_ms),
                if r.answered > 0 {
                    format!("{:.1}%", r.ok as f64 * 100.0 / r.answered as f64)
                } else {
                    "-".into()
                },
            ]);
        }
        table
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(workload: &str, direction: Direction, kind: Kind, id: u64) -> TapLine {
        TapLine {
            workload: workload.into(),
            direction,
            kind,
            id,
            src: "127.0.9.4:40001".into(),
            dst: "127.0.9.2:7001".into(),
            src_id: Some("webapp.booksapp.serviceaccount.identity.linkerd.cluster.local".into()),
            dst_id: None,
            src_labels: Default::default(),
            dst_labels: Default::default(),
            method: Some("GET".into()),
            authority: Some("authors.booksapp.svc.cluster.local:7001".into()),
            path: Some("/authors.json".into()),
            status: None,
            latency_ms: None,
        }
    }

    #[test]
    fn rows_name_the_peers_and_the_method() {
        let authors = "booksapp/externalworkload/authors";
        let mut top = Top::default();
        // (workload, direction, id, path, status, latency)
        let exchanges = [
            (authors, Direction::Inbound, 1, "/authors.json", 200, 2.0),
            (authors, Direction::Inbound, 2, "/authors.json", 503, 4.0),
            (authors, Direction::Inbound, 3, "/authors/1", 200, 1.0),
            (
                "booksapp/externalworkload/webapp",
                Direction::Outbound,
                1,
                "/authors.json",
                200,
                3.0,
            ),
        ];
        for (w, dir, id, path, status, latency) in exchanges {
            let mut req = line(w, dir, Kind::Req, id);
            req.path = Some(path.into());
            top.record(&req);
            let mut rsp = line(w, dir, Kind::Rsp, id);
            (rsp.status, rsp.latency_ms) = (Some(status), Some(latency));
            top.record(&rsp);
        }
        let table = top.table(10);
        let row = |r: &[String; 9]| r.iter().map(String::as_str).collect::<Vec<_>>().join(" ");
        let want = [
            "SOURCE DESTINATION METHOD PATH COUNT BEST WORST LAST SUCCESS",
            "webapp.booksapp externalworkload/authors GET /authors.json 2 2.0ms 4.0ms 4.0ms 50.0%",
            "externalworkload/webapp authors.booksapp.svc.cluster.local:7001 GET /authors.json 1 3.0ms 3.0ms 3.0ms 100.0%",
            "webapp.booksapp externalworkload/authors GET /authors/1 1 1.0ms 1.0ms 1.0ms 100.0%",
        ];
        assert_eq!(table.iter().map(row).collect::<Vec<_>>(), want);
    }

    #[test]
    fn peers_by_labels_identity_or_ip() {
        let labels = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let cases = [
            (
                labels(&[("pod", "web-1"), ("deployment", "web")]),
                None,
                "10.0.0.1:5000",
                "deploy/web",
            ),
            (
                labels(&[("pod", "web-1")]),
                None,
                "10.0.0.1:5000",
                "po/web-1",
            ),
            (
                labels(&[]),
                Some("books.booksapp.serviceaccount.identity.linkerd.cluster.local".to_string()),
                "10.0.0.1:5000",
                "books.booksapp",
            ),
            (labels(&[]), None, "10.0.0.1:5000", "10.0.0.1"),
        ];
        for (l, id, addr, want) in cases {
            assert_eq!(peer(&l, &id, addr), want, "{l:?} {id:?}");
        }
    }
}
