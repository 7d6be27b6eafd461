//! Outbound policy for Service ports: routes, weighted backends, defaults.

use std::time::Duration;
use ztmesh_policy::RouteRef;
use ztmesh_policy::outbound::*;
use ztmesh_resources::load_str;

fn apply(index: &mut OutboundIndex, yaml: &str) {
    let loaded = load_str(yaml, "t.yaml");
    assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
    for r in &loaded.resources {
        index.apply(r);
    }
}

const SVC: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop, annotations: {balancer.linkerd.io/failure-accrual: consecutive, balancer.linkerd.io/failure-accrual-consecutive-max-failures: '3'}}\nspec: {clusterIP: 10.96.1.1, ports: [{port: 80}]}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: web-v2, namespace: shop}\nspec: {ports: [{port: 80}]}\n";
const SPLIT: &str = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: split, namespace: shop}\nspec:\n  parentRefs: [{name: web, kind: Service, group: core, port: 80}]\n  rules:\n  - matches: [{path: {type: PathPrefix, value: /api}}]\n    backendRefs: [{name: web, port: 80, weight: 90}, {name: web-v2, port: 80, weight: 10}]\n    timeouts: {request: 2s}\n  - {}\n";

#[test]
fn weighted_split_and_defaults() {
    let mut index = OutboundIndex::new("cluster.local");
    apply(&mut index, SVC);
    let default = index.policy("shop", "web", 80).unwrap();
    assert_eq!(default.authority, "web.shop.svc.cluster.local:80");
    assert_eq!(default.http_routes.len(), 1);
    assert_eq!(default.http_routes[0].0, RouteRef::Default("default"));
    assert_eq!(default.http_routes[0].1.rules[0].backends[0].name, "web");
    assert_eq!(
        default.failure_accrual,
        Some(ConsecutiveFailures {
            max_failures: 3,
            min_penalty: Duration::from_secs(1),
            max_penalty: Duration::from_secs(60),
            jitter: 0.5
        })
    );

    let mut rx = index.watch("shop", "web", 80).unwrap();
    rx.borrow_and_update();
    apply(&mut index, SPLIT);
    assert!(rx.has_changed().unwrap());
    let p = rx.borrow_and_update().clone();
    let (reference, route) = &p.http_routes[0];
    assert!(matches!(reference, RouteRef::Resource { name, .. } if name == "split"));
    let weights: Vec<_> = route.rules[0]
        .backends
        .iter()
        .map(|b| (b.authority.as_str(), b.weight))
        .collect();
    assert_eq!(
        weights,
        vec![
            ("web.shop.svc.cluster.local:80", 90),
            ("web-v2.shop.svc.cluster.local:80", 10)
        ]
    );
    assert_eq!(route.rules[0].request_timeout, Some(Duration::from_secs(2)));
    assert_eq!(
        route.rules[1].backends[0].name, "web",
        "a rule without backendRefs goes to the parent"
    );
    assert!(
        index.policy("shop", "web-v2", 80).unwrap().http_routes[0].0
            == RouteRef::Default("default"),
        "the route is web's only"
    );

    assert_eq!(
        index.resolve(&OutboundTarget::Authority(
            "web.shop.svc.cluster.local:80".into()
        )),
        Some(("shop".into(), "web".into(), 80))
    );
    assert_eq!(
        index.resolve(&OutboundTarget::Addr("10.96.1.1:80".parse().unwrap())),
        Some(("shop".into(), "web".into(), 80))
    );
    assert_eq!(
        index.resolve(&OutboundTarget::Authority(
            "web.shop.svc.cluster.local:81".into()
        )),
        None,
        "no such port"
    );
    assert_eq!(
        index.resolve(&OutboundTarget::Authority(
            "nope.shop.svc.cluster.local:80".into()
        )),
        None
    );
}

#[test]
fn failure_accrual_annotations_table() {
    let ann = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    format!("balancer.linkerd.io/failure-accrual{k}"),
                    v.to_string(),
                )
            })
            .collect()
    };
    assert_eq!(failure_accrual(&ann(&[])), Ok(None));
    let custom = failure_accrual(&ann(&[
        ("", "consecutive"),
        ("-consecutive-min-penalty", "500ms"),
        ("-consecutive-max-penalty", "10s"),
        ("-consecutive-jitter-ratio", "0"),
    ]))
    .unwrap()
    .unwrap();
    assert_eq!(
        (custom.min_penalty, custom.max_penalty, custom.jitter),
        (Duration::from_millis(500), Duration::from_secs(10), 0.0)
    );
    for bad in [
        vec![("", "sometimes")],
        vec![("", "consecutive"), ("-consecutive-max-failures", "many")],
        vec![
            ("", "consecutive"),
            ("-consecutive-min-penalty", "2m"),
            ("-consecutive-max-penalty", "1m"),
        ],
        vec![("", "consecutive"), ("-consecutive-jitter-ratio", "-1")],
    ] {
        assert!(failure_accrual(&ann(&bad)).is_err(), "{bad:?}");
    }
}
