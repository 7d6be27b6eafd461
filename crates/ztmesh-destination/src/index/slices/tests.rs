//! Endpoints from EndpointSlices, as a table: the objects applied, then
//! the endpoints of `booksapp/books:7002` (address, identity if meshed).

use crate::DestinationCluster;
use crate::index::Index;
use crate::model::EndpointSet;
use serde_json::json;
use ztmesh_resources::Resource;

fn resource(v: serde_json::Value) -> Box<Resource> {
    let text = v.to_string();
    let loaded = ztmesh_resources::load_str(&text, "test");
    assert!(loaded.errors().next().is_none(), "{:?}", loaded.diagnostics);
    Box::new(loaded.resources.into_iter().next().expect("one resource"))
}

fn service(selector: bool) -> Box<Resource> {
    let mut spec = json!({"ports": [{"name": "http", "port": 7002, "targetPort": "web"},
                                    {"name": "admin", "port": 9990, "targetPort": 9990}]});
    if selector {
        spec["selector"] = json!({"app": "books"});
    }
    resource(json!({"apiVersion": "v1", "kind": "Service",
                    "metadata": {"name": "books", "namespace": "booksapp"}, "spec": spec}))
}

/// A pod labelled app=books; meshed as Linkerd's injector leaves it.
fn pod(name: &str, ip: &str, meshed: bool) -> Box<Resource> {
    let mut meta = json!({"name": name, "namespace": "booksapp", "labels": {"app": "books"}});
    if meshed {
        meta["annotations"] = json!({"linkerd.io/inject": "enabled"});
    }
    resource(json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta,
        "spec": {"serviceAccountName": "books",
                 "containers": [{"name": "app", "ports": [{"name": "web", "containerPort": 7002}]}]},
        "status": {"podIP": ip}}))
}

fn external_workload() -> Box<Resource> {
    let id = "ew.booksapp.serviceaccount.identity.linkerd.cluster.local";
    resource(
        json!({"apiVersion": "workload.linkerd.io/v1beta1", "kind": "ExternalWorkload",
        "metadata": {"name": "ew", "namespace": "booksapp", "labels": {"app": "books"}},
        "spec": {"meshTLS": {"identity": id, "serverName": id},
                 "workloadIPs": [{"ip": "10.0.1.1"}], "ports": [{"port": 7002, "name": "web"}]}}),
    )
}

/// A slice of books: (address, ready, target pod).
fn slice(name: &str, endpoints: &[(&str, Option<bool>, Option<&str>)]) -> EndpointSliceJson {
    let endpoints: Vec<serde_json::Value> = endpoints
        .iter()
        .map(|(ip, ready, pod)| {
            let mut e = json!({"addresses": [ip]});
            if let Some(ready) = ready {
                e["conditions"] = json!({"ready": ready});
            }
            if let Some(pod) = pod {
                e["targetRef"] = json!({"kind": "Pod", "namespace": "booksapp", "name": pod});
            }
            e
        })
        .collect();
    EndpointSliceJson(json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
        "metadata": {"name": name, "namespace": "booksapp",
                     "labels": {"kubernetes.io/service-name": "books"}},
        "ports": [{"name": "http", "port": 7002, "protocol": "TCP"},
                  {"name": "admin", "port": 9990, "protocol": "TCP"}],
        "endpoints": endpoints,
    }))
}

struct EndpointSliceJson(serde_json::Value);

enum Step {
    Apply(Box<Resource>),
    Slice(EndpointSliceJson),
    DeleteSlice(&'static str),
    UseSlices,
}

/// `addr identity` (or `addr -` unmeshed), sorted.
fn summary(set: &EndpointSet) -> Vec<String> {
    set.endpoints
        .values()
        .map(|e| {
            let id = e.tls.as_ref().map_or("-", |t| t.identity.as_str());
            format!("{} {id}", e.addr)
        })
        .collect()
}

#[test]
fn endpoints_come_from_ready_slice_endpoints() {
    const BOOKS: &str = "books.booksapp.serviceaccount.identity.linkerd.cluster.local";
    let meshed = |addr: &str| format!("{addr} {BOOKS}");
    use Step::*;
    let steps: Vec<(&str, Step, Vec<String>)> = vec![
        ("selector mode", Apply(service(true)), vec![]),
        (
            "a pod: selected",
            Apply(pod("b1", "10.0.0.1", true)),
            vec![meshed("10.0.0.1:7002")],
        ),
        (
            "slices on: none yet, the selector no longer counts",
            UseSlices,
            vec![],
        ),
        (
            "ready, not ready, unknown readiness (ready), no target",
            Slice(slice(
                "books-a",
                &[
                    ("10.0.0.1", Some(true), Some("b1")),
                    ("10.0.0.2", Some(false), Some("b2")),
                    ("10.0.0.3", None, Some("b3")),
                    ("10.0.0.4", Some(true), None),
                ],
            )),
            vec![
                meshed("10.0.0.1:7002"),
                "10.0.0.3:7002 -".into(),
                "10.0.0.4:7002 -".into(),
            ],
        ),
        (
            "the target pod appears: meshed",
            Apply(pod("b3", "10.0.0.3", true)),
            vec![
                meshed("10.0.0.1:7002"),
                meshed("10.0.0.3:7002"),
                "10.0.0.4:7002 -".into(),
            ],
        ),
        (
            "an unmeshed target pod stays plain",
            Apply(pod("b3", "10.0.0.3", false)),
            vec![
                meshed("10.0.0.1:7002"),
                "10.0.0.3:7002 -".into(),
                "10.0.0.4:7002 -".into(),
            ],
        ),
        (
            "a second slice adds to the first",
            Slice(slice("books-b", &[("10.0.0.9", Some(true), None)])),
            vec![
                meshed("10.0.0.1:7002"),
                "10.0.0.3:7002 -".into(),
                "10.0.0.4:7002 -".into(),
                "10.0.0.9:7002 -".into(),
            ],
        ),
        (
            "a slice replaced",
            Slice(slice("books-a", &[("10.0.0.1", Some(false), Some("b1"))])),
            vec!["10.0.0.9:7002 -".into()],
        ),
        ("a slice deleted", DeleteSlice("books-b"), vec![]),
        (
            "an ExternalWorkload still joins by the selector",
            Apply(external_workload()),
            vec!["10.0.1.1:7002 ew.booksapp.serviceaccount.identity.linkerd.cluster.local".into()],
        ),
        (
            "a Service without selector (slices managed by hand) has its slices",
            Apply(service(false)),
            vec![],
        ),
        (
            "its slice",
            Slice(slice("books-a", &[("10.0.0.1", None, Some("b1"))])),
            vec![meshed("10.0.0.1:7002")],
        ),
    ];
    let mut index = Index::new(DestinationCluster::default());
    let mut watch = index.watch_endpoints("booksapp", "books", 7002);
    for (what, step, want) in steps {
        match step {
            Apply(r) => index.apply(*r),
            Slice(s) => index.apply_endpoint_slice(&serde_json::from_value(s.0).expect("a slice")),
            DeleteSlice(name) => index.delete(&ztmesh_resources::load::ResourceKey {
                kind: "EndpointSlice".into(),
                namespace: "booksapp".into(),
                name: name.into(),
            }),
            UseSlices => index.use_endpoint_slices(),
        }
        assert_eq!(
            summary(&index.endpoints("booksapp", "books", 7002)),
            want,
            "{what}"
        );
        // The watch follows.
        assert_eq!(
            summary(&watch.borrow_and_update()),
            want,
            "{what} (watched)"
        );
    }
    // The other port maps by name to the slice's admin port.
    assert_eq!(
        summary(&index.endpoints("booksapp", "books", 9990)),
        vec![meshed("10.0.0.1:9990")]
    );
    // A port the Service does not have: nothing.
    assert!(index.endpoints("booksapp", "books", 1).endpoints.is_empty());
}
