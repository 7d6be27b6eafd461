//! Decision time on a large port: 1,000 authorizations and 100 PathPrefix
//! routes, for the worst case the issue names (the request matches the
//! last route and is admitted by the 1,000th authorization), and for a
//! denial (an identity no authorization names).

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::sync::Arc;
use ztmesh_authz::policy::Authorizations;
use ztmesh_authz::*;

fn identity(i: usize) -> String {
    format!("client-{i}.ns-{i}.serviceaccount.identity.linkerd.cluster.local")
}

fn big_server() -> ServerPolicy {
    let authorizations: Vec<Authorization> = (0..1000)
        .map(|i| Authorization {
            kind: "authorizationpolicy".into(),
            name: format!("authz-{i}"),
            networks: vec![Network {
                net: "10.0.0.0/8".parse().unwrap(),
                except: vec!["10.255.0.0/16".parse().unwrap()],
            }],
            authentication: Authentication::TlsAuthenticated(vec![IdentityMatch::Exact(identity(
                i,
            ))]),
        })
        .collect();
    let routes = (0..100)
        .map(|i| Route {
            kind: "httproute".into(),
            name: format!("route-{i}"),
            hostnames: vec![],
            rules: vec![RouteMatches {
                matches: vec![HttpMatch {
                    path: Some(PathMatch::prefix(&format!("/api/v1/resource-{i}"))),
                    method: Some(http::Method::GET),
                    ..Default::default()
                }],
            }],
            authorizations: Arc::default(),
        })
        .collect();
    ServerPolicy {
        kind: "server".into(),
        name: "big".into(),
        protocol: Protocol::Http1,
        authorizations: Arc::new(Authorizations::new(authorizations)),
        http_routes: routes,
        grpc_routes: vec![],
    }
}

fn bench(c: &mut Criterion) {
    let server = big_server();
    let last = identity(999);
    let req = http::Request::get("/api/v1/resource-99/items/42")
        .header("host", "api.default.svc.cluster.local")
        .body(())
        .unwrap();
    let allowed = Client {
        ip: "10.1.2.3".parse().unwrap(),
        tls: true,
        identity: Some(&last),
    };
    assert_eq!(
        decide_request(&server, allowed, &req, None)
            .unwrap()
            .authorization
            .name,
        "authz-999"
    );
    c.bench_function("decide: last of 100 routes, 1,000th authorization", |b| {
        b.iter(|| {
            decide_request(
                black_box(&server),
                black_box(allowed),
                black_box(&req),
                None,
            )
        })
    });
    let stranger = Client {
        identity: Some("stranger.other.serviceaccount.identity.linkerd.cluster.local"),
        ..allowed
    };
    assert!(decide_request(&server, stranger, &req, None).is_err());
    c.bench_function("decide: last of 100 routes, denied", |b| {
        b.iter(|| {
            decide_request(
                black_box(&server),
                black_box(stranger),
                black_box(&req),
                None,
            )
        })
    });
    c.bench_function("decide: connection, 1,000th authorization", |b| {
        b.iter(|| decide_connection(black_box(&server), black_box(allowed), None))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
