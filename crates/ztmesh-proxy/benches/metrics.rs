//! The metrics hot path and a scrape: recording one request on a
//! connection's cached label set (request, authorization allow, response
//! with its latency), and encoding `/metrics` with 100 HTTP label sets
//! and their TCP, authorization and route series.
//!
//! With `ZTMESH_METRICS_DUMP=FILE`, it first writes that exposition to
//! FILE, so two builds' family names and label sets can be diffed.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};
use ztmesh_proxy::authz_metrics::{AuthzLabels, AuthzMetrics, Family};
use ztmesh_proxy::identity::IdentityMetrics;
use ztmesh_proxy::metrics::{
    DstLabels, HttpMetrics, PolicyLabels, StatsCache, StatsKey, TcpMetrics, TlsLabel,
    permit_labels, server_labels,
};
use ztmesh_proxy::route_metrics::{RouteEvent, RouteMetrics};

const CLIENT: &str = "web.emojivoto.serviceaccount.identity.linkerd.cluster.local";

struct All {
    identity: IdentityMetrics,
    http: HttpMetrics,
    tcp: TcpMetrics,
    authz: AuthzMetrics,
    routes: RouteMetrics,
}

impl All {
    fn encode(&self) -> String {
        let mut out = String::new();
        self.identity.encode(&mut out);
        self.http.encode(&mut out);
        self.tcp.encode(&mut out);
        self.authz.encode(&mut out);
        self.routes.encode(&mut out);
        ztmesh_proxy::process_metrics::encode(&mut out);
        out
    }
}

/// `n` label sets in each family, as a busy proxy has them.
fn populated(n: usize) -> All {
    let all = All {
        identity: IdentityMetrics::default(),
        http: HttpMetrics::default(),
        tcp: TcpMetrics::default(),
        authz: AuthzMetrics::default(),
        routes: RouteMetrics::default(),
    };
    all.identity.record_ok(
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
    );
    all.identity.record_error();
    let tls_in = TlsLabel::Identified {
        client_id: CLIENT.into(),
    };
    let tls_out = TlsLabel::ServerIdentified {
        server_id: "emoji.emojivoto.serviceaccount.identity.linkerd.cluster.local".into(),
    };
    let plain = TlsLabel::NoIdentity {
        reason: "no_tls_from_remote",
    };
    let dst_labels: std::collections::BTreeMap<String, String> = [
        ("deployment", "emoji"),
        ("namespace", "emojivoto"),
        ("pod", "emoji-5d9c8-x2x7k"),
        ("serviceaccount", "emoji"),
        ("service", "emoji-svc"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for i in 0..n {
        let target: SocketAddr = format!("10.0.{}.{}:8080", i / 250, i % 250 + 1)
            .parse()
            .unwrap();
        let authority = format!("svc-{i}.emojivoto.svc.cluster.local:8080");
        let policy = permit_labels(
            ("server", "web-http"),
            8080,
            ("default", "default"),
            ("authorizationpolicy", "web-authz"),
        );
        let no_dst = DstLabels::default();
        let s = all.http.stats(
            &StatsKey {
                direction: "inbound",
                authority: Some(&authority),
                target,
                policy: &policy,
                dst: &no_dst,
            },
            &tls_in,
        );
        s.request();
        s.response(200, Duration::from_millis(3));
        s.response(503, Duration::from_millis(40));
        s.response_grpc(200, Some(14), Duration::from_millis(7));
        let dst = DstLabels::new(&dst_labels);
        let s = all.http.stats(
            &StatsKey {
                direction: "outbound",
                authority: Some(&authority),
                target,
                policy: &PolicyLabels::NONE,
                dst: &dst,
            },
            &tls_out,
        );
        s.request();
        s.response(200, Duration::from_micros(800));
        let c = all
            .tcp
            .open_inbound(target, &tls_in, &server_labels("server", "web-http", 8080));
        c.close(1200, 3400);
        let c = all
            .tcp
            .open_outbound(Some(&authority), target, &plain, &dst);
        c.close_with_error(10, 20, &std::io::Error::from_raw_os_error(104));
        let labels = AuthzLabels {
            target,
            server: ("server", "web-http"),
            route: ("default", "default"),
            authz: ("authorizationpolicy", "web-authz"),
            tls: &tls_in,
        };
        all.authz.record(Family::HttpAllow, &labels);
        all.authz.record(
            Family::TcpDeny,
            &AuthzLabels {
                route: ("", ""),
                authz: ("", ""),
                tls: &plain,
                ..labels
            },
        );
        all.routes
            .record(RouteEvent::Request, &authority, "GET /api");
        all.routes.record(RouteEvent::Retry, &authority, "GET /api");
        all.routes.response(&authority, "GET /api", 200, false);
    }
    all
}

fn bench(c: &mut Criterion) {
    if let Some(path) = std::env::var_os("ZTMESH_METRICS_DUMP") {
        std::fs::write(path, populated(3).encode()).expect("write the dump");
    }

    // One request on a connection whose label set is cached.
    let all = populated(100);
    let cache = StatsCache::default();
    let target: SocketAddr = "10.0.0.1:8080".parse().unwrap();
    let tls = TlsLabel::Identified {
        client_id: CLIENT.into(),
    };
    let policy = permit_labels(
        ("server", "web-http"),
        8080,
        ("default", "default"),
        ("authorizationpolicy", "web-authz"),
    );
    let no_dst = DstLabels::default();
    c.bench_function("record request on cached label set", |b| {
        b.iter(|| {
            let key = StatsKey {
                direction: "inbound",
                authority: None,
                target,
                policy: &policy,
                dst: &no_dst,
            };
            let s = cache.get(&all.http, &key, &tls);
            s.request();
            s.response(200, black_box(Duration::from_micros(1500)));
        })
    });
    c.bench_function("record authz allow", |b| {
        b.iter(|| {
            all.authz.record(
                Family::HttpAllow,
                &AuthzLabels {
                    target,
                    server: ("server", "web-http"),
                    route: ("default", "default"),
                    authz: ("authorizationpolicy", "web-authz"),
                    tls: &tls,
                },
            )
        })
    });
    c.bench_function("encode /metrics, 100 label sets", |b| {
        b.iter(|| black_box(all.encode().len()))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
