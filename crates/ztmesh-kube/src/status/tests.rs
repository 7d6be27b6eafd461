//! Table test: the status entries a route gets.

use super::*;

fn names(list: &[(&str, &str)]) -> Names {
    list.iter()
        .map(|(ns, n)| (ns.to_string(), n.to_string()))
        .collect()
}

fn route(parents: Value, backends: Value, status: Value) -> Value {
    json!({"apiVersion": "policy.linkerd.io/v1beta3", "kind": "HTTPRoute",
           "metadata": {"name": "r", "namespace": "booksapp", "generation": 3},
           "spec": {"parentRefs": parents, "rules": [{"backendRefs": backends}]},
           "status": status})
}

/// (type, status, reason) of each of our entries' conditions.
fn conditions(parents: &[Value]) -> Vec<Vec<(String, String, String)>> {
    parents
        .iter()
        .filter(|p| p["controllerName"] == CONTROLLER_NAME)
        .map(|p| {
            p["conditions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| {
                    let s = |k: &str| c[k].as_str().unwrap().to_string();
                    (s("type"), s("status"), s("reason"))
                })
                .collect()
        })
        .collect()
}

fn c(t: &str, s: &str, r: &str) -> (String, String, String) {
    (t.into(), s.into(), r.into())
}

#[test]
fn each_parent_gets_accepted_and_resolved_refs() {
    let server = json!({"group": "policy.linkerd.io", "kind": "Server", "name": "authors"});
    let service = json!({"group": "core", "kind": "Service", "name": "authors", "port": 7001});
    let gateway = json!({"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "gw"});
    let backend = json!([{"name": "authors", "port": 7001}]);
    let missing = json!([{"name": "gone", "port": 7001}]);
    let servers = names(&[("booksapp", "authors")]);
    let services = names(&[("booksapp", "authors")]);
    let cases = [
        (
            route(json!([server]), backend.clone(), json!(null)),
            vec![vec![
                c("Accepted", "True", "Accepted"),
                c("ResolvedRefs", "True", "ResolvedRefs"),
            ]],
        ),
        (
            route(
                json!([{"group": "policy.linkerd.io", "kind": "Server", "name": "nope"}]),
                backend.clone(),
                json!(null),
            ),
            vec![vec![
                c("Accepted", "False", "NoMatchingParent"),
                c("ResolvedRefs", "True", "ResolvedRefs"),
            ]],
        ),
        (
            route(json!([service]), missing, json!(null)),
            vec![vec![
                c("Accepted", "True", "Accepted"),
                c("ResolvedRefs", "False", "BackendNotFound"),
            ]],
        ),
        // A Gateway parent is another controller's: no entry of ours.
        (
            route(json!([gateway]), backend.clone(), json!(null)),
            vec![],
        ),
    ];
    for (r, want) in cases {
        let got = parents(&r, &servers, &services, "2026-12-01T00:00:00Z");
        assert_eq!(conditions(&got), want, "{r}");
    }
}

#[test]
fn a_written_status_is_stable_and_others_entries_stay() {
    let server = json!({"group": "policy.linkerd.io", "kind": "Server", "name": "authors"});
    let theirs = json!({"parentRef": {"name": "gw"}, "controllerName": "example.com/gateway", "conditions": []});
    let servers = names(&[("booksapp", "authors")]);
    let first = parents(
        &route(json!([server]), json!([]), json!({"parents": [theirs]})),
        &servers,
        &Names::new(),
        "2026-12-01T00:00:00Z",
    );
    assert_eq!(
        first[0], theirs,
        "another controller's entry is kept, first"
    );
    // Read back later: the same entries, so nothing is written again.
    let again = parents(
        &route(json!([server]), json!([]), json!({"parents": first})),
        &servers,
        &Names::new(),
        "2026-12-01T01:00:00Z",
    );
    assert_eq!(again, first);
}
