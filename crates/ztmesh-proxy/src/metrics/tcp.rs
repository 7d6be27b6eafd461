//! Transport families: `tcp_open_total`, `tcp_open_connections`,
//! `tcp_read_bytes_total`, `tcp_write_bytes_total` and `tcp_close_total`
//! (by `errno`). A connection resolves its label set once, at open, and
//! keeps the handles in its [`TcpCounters`].

use super::labels::{CloseLabels, DstLabels, PolicyLabels, TcpLabelValues, TcpLabels, TlsLabel};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::Arc;

/// The errno name linkerd2-proxy labels a failed connection with.
pub fn errno_name(e: &std::io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::ECONNRESET) => "ECONNRESET",
        Some(libc::EPIPE) => "EPIPE",
        Some(libc::ETIMEDOUT) => "ETIMEDOUT",
        Some(libc::ECONNREFUSED) => "ECONNREFUSED",
        Some(libc::ECONNABORTED) => "ECONNABORTED",
        Some(libc::EHOSTUNREACH) => "EHOSTUNREACH",
        Some(libc::ENETUNREACH) => "ENETUNREACH",
        Some(_) => "EOTHER",
        None => match e.kind() {
            std::io::ErrorKind::ConnectionReset => "ECONNRESET",
            std::io::ErrorKind::BrokenPipe => "EPIPE",
            std::io::ErrorKind::TimedOut => "ETIMEDOUT",
            _ => "EOTHER",
        },
    }
}

#[derive(Debug, Default)]
pub struct TcpMetrics {
    open: Family<TcpLabels, Counter>,
    open_connections: Family<TcpLabels, Gauge>,
    read: Family<TcpLabels, Counter>,
    write: Family<TcpLabels, Counter>,
    close: Family<CloseLabels, Counter>,
}

/// One connection's handles into its label set's series.
#[derive(Debug)]
pub struct TcpCounters {
    labels: TcpLabels,
    open_connections: Gauge,
    read: Counter,
    write: Counter,
    clean_close: Counter,
    close: Family<CloseLabels, Counter>,
}

impl TcpMetrics {
    /// The counters of one inbound connection's label set; records the
    /// open. `policy` is the server's labels ([`super::server_labels`]).
    pub fn open_inbound(
        &self,
        target: std::net::SocketAddr,
        tls: &TlsLabel,
        policy: &PolicyLabels,
    ) -> Arc<TcpCounters> {
        self.open(TcpLabelValues {
            direction: "inbound",
            authority: None,
            target,
            tls: tls.clone(),
            policy: policy.clone(),
            dst: DstLabels::default(),
        })
    }

    /// The counters of one outbound connection to an endpoint: `authority`
    /// the logical name it was opened for (None when it is shared by the
    /// names the endpoint serves, or reached by address), `dst` the
    /// endpoint's labels from Destination.
    pub fn open_outbound(
        &self,
        authority: Option<&str>,
        target: std::net::SocketAddr,
        tls: &TlsLabel,
        dst: &DstLabels,
    ) -> Arc<TcpCounters> {
        self.open(TcpLabelValues {
            direction: "outbound",
            authority: authority.map(Arc::from),
            target,
            tls: tls.clone(),
            policy: PolicyLabels::NONE,
            dst: dst.clone(),
        })
    }

    fn open(&self, values: TcpLabelValues) -> Arc<TcpCounters> {
        let labels = TcpLabels(Arc::new(values));
        self.open.get_or_create(&labels).inc();
        let counters = TcpCounters {
            open_connections: self.open_connections.get_or_create_owned(&labels),
            read: self.read.get_or_create_owned(&labels),
            write: self.write.get_or_create_owned(&labels),
            // A clean close's series is there (at 0) from the first open.
            clean_close: self.close.get_or_create_owned(&CloseLabels {
                conn: labels.clone(),
                errno: "",
            }),
            close: self.close.clone(),
            labels,
        };
        counters.open_connections.inc();
        Arc::new(counters)
    }

    /// Adds the families to a scrape's registry.
    pub fn register(&self, registry: &mut Registry) {
        crate::metrics::register(
            registry,
            "tcp_open",
            "Total count of opened connections",
            self.open.clone(),
        );
        crate::metrics::register(
            registry,
            "tcp_open_connections",
            "Number of currently-open connections",
            self.open_connections.clone(),
        );
        crate::metrics::register(
            registry,
            "tcp_read_bytes",
            "Total count of bytes read from peers",
            self.read.clone(),
        );
        crate::metrics::register(
            registry,
            "tcp_write_bytes",
            "Total count of bytes written to peers",
            self.write.clone(),
        );
        crate::metrics::register(
            registry,
            "tcp_close",
            "Total count of closed connections",
            self.close.clone(),
        );
    }

    /// The families in the Prometheus text format.
    pub fn encode(&self, out: &mut String) {
        super::encode_into(out, |r| self.register(r));
    }
}

impl TcpCounters {
    pub fn close(&self, read: u64, written: u64) {
        self.clean_close.inc();
        self.closed(read, written);
    }

    /// A close caused by an I/O error (counted with its errno).
    pub fn close_with_error(&self, read: u64, written: u64, error: &std::io::Error) {
        self.close
            .get_or_create(&CloseLabels {
                conn: self.labels.clone(),
                errno: errno_name(error),
            })
            .inc();
        self.closed(read, written);
    }

    fn closed(&self, read: u64, written: u64) {
        self.read.inc_by(read);
        self.write.inc_by(written);
        self.open_connections.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_closes_and_errnos_by_label_set() {
        let m = TcpMetrics::default();
        let target: std::net::SocketAddr = "10.0.0.1:80".parse().unwrap();
        let tls = TlsLabel::Identified {
            client_id: "web.ns.serviceaccount.identity.linkerd.cluster.local".into(),
        };
        let srv = super::super::server_labels("server", "web", 80);
        let a = m.open_inbound(target, &tls, &srv);
        let b = m.open_inbound(target, &tls, &srv);
        let c = m.open_inbound(target, &tls, &srv);
        a.close(10, 20);
        b.close_with_error(1, 2, &std::io::Error::from_raw_os_error(libc::ECONNRESET));
        let mut out = String::new();
        m.encode(&mut out);
        let labels = "direction=\"inbound\",peer=\"src\",target_addr=\"10.0.0.1:80\",target_ip=\"10.0.0.1\",target_port=\"80\",tls=\"true\",client_id=\"web.ns.serviceaccount.identity.linkerd.cluster.local\",srv_group=\"policy.linkerd.io\",srv_kind=\"server\",srv_name=\"web\",srv_port=\"80\"";
        let cases = [
            ("tcp_open_total", "", "3"),
            ("tcp_open_connections", "", "1"),
            ("tcp_read_bytes_total", "", "11"),
            ("tcp_write_bytes_total", "", "22"),
            ("tcp_close_total", ",errno=\"\"", "1"),
            ("tcp_close_total", ",errno=\"ECONNRESET\"", "1"),
        ];
        for (family, extra, want) in cases {
            let line = format!("{family}{{{labels}{extra}}} {want}\n");
            assert!(out.contains(&line), "{line} in\n{out}");
            assert!(
                out.contains(&format!("# TYPE {family} ")),
                "{family}: {out}"
            );
        }
        drop(c);
    }
}
