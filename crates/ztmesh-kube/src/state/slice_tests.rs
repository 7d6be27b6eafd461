//! EndpointSlices through the store state.

use super::*;
use serde_json::json;

fn slice(name: &str, ready: &[(&str, bool)]) -> serde_json::Value {
    let endpoints: Vec<serde_json::Value> = ready
        .iter()
        .map(|(ip, r)| {
            json!({"addresses": [ip], "conditions": {"ready": r},
                              "targetRef": {"kind": "Pod", "name": "p", "namespace": "n"}})
        })
        .collect();
    json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
           "metadata": {"name": name, "namespace": "n",
                        "labels": {"kubernetes.io/service-name": "svc"}},
           "addressType": "IPv4", "endpoints": endpoints,
           "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]})
}

/// EndpointSlices become destination updates; a malformed one is
/// refused (counted) and its last good version stays.
#[test]
fn endpoint_slices_become_destination_updates() {
    let mut state = StoreState::new(vec![ENDPOINT_SLICE], "linkerd", Metrics::default());
    use WatchEvent::{Apply, Delete, Init, InitDone};
    let mut bad = slice("a", &[]);
    bad["endpoints"] = json!("not a list");
    let steps: Vec<(WatchEvent, Vec<&str>, usize)> = vec![
        (Init, vec![], 0),
        (
            Apply(slice("a", &[("10.0.0.1", true), ("10.0.0.2", false)])),
            vec!["slice a 10.0.0.1"],
            0,
        ),
        (InitDone, vec!["synced"], 0),
        (
            Apply(slice("a", &[("10.0.0.1", true), ("10.0.0.2", true)])),
            vec!["slice a 10.0.0.1,10.0.0.2"],
            0,
        ),
        (Apply(bad), vec![], 1),
        (Apply(slice("b", &[])), vec!["slice b "], 1),
        (Delete(slice("a", &[])), vec!["delete a"], 0),
    ];
    for (i, (event, want, refused)) in steps.into_iter().enumerate() {
        let got: Vec<String> = state
            .handle(0, event)
            .into_iter()
            .map(|e| match e {
                StoreEvent::EndpointSlice(s) => format!(
                    "slice {} {}",
                    s.metadata.name.unwrap_or_default(),
                    s.endpoints
                        .iter()
                        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) != Some(false))
                        .flat_map(|e| e.addresses.clone())
                        .collect::<Vec<_>>()
                        .join(",")
                ),
                StoreEvent::Delete(k) => {
                    assert_eq!(k.kind, "EndpointSlice");
                    format!("delete {}", k.name)
                }
                StoreEvent::Synced => "synced".into(),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(got, want, "step {i}");
        assert_eq!(state.rejected().len(), refused, "step {i}");
    }
    assert_eq!(state.metrics.rejected("EndpointSlice.discovery.k8s.io"), 1);
    assert_eq!(state.metrics.objects("EndpointSlice.discovery.k8s.io"), 1);
}
