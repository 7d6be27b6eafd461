//! Discovery's updates and endpoints, table-tested.

use super::*;
use proto::update::Update;

fn addr(a: &str) -> proto::WeightedAddr {
    proto::WeightedAddr {
        addr: Some(a.parse::<SocketAddr>().unwrap().into()),
        ..Default::default()
    }
}

#[test]
fn updates_table() {
    let mut set = BTreeMap::new();
    let keys =
        |s: &BTreeMap<SocketAddr, Endpoint>| s.keys().map(|k| k.to_string()).collect::<Vec<_>>();
    assert!(apply(
        &mut set,
        Update::Add(proto::WeightedAddrSet {
            addrs: vec![addr("10.0.0.1:80"), addr("10.0.0.2:80")],
            ..Default::default()
        })
    ));
    assert_eq!(keys(&set), vec!["10.0.0.1:80", "10.0.0.2:80"]);
    assert!(apply(
        &mut set,
        Update::Remove(proto::AddrSet {
            addrs: vec!["10.0.0.1:80".parse::<SocketAddr>().unwrap().into()]
        })
    ));
    assert_eq!(keys(&set), vec!["10.0.0.2:80"]);
    assert!(apply(
        &mut set,
        Update::Add(proto::WeightedAddrSet {
            addrs: vec![addr("10.0.0.3:80")],
            ..Default::default()
        })
    ));
    assert_eq!(keys(&set), vec!["10.0.0.2:80", "10.0.0.3:80"]);
    assert!(apply(
        &mut set,
        Update::NoEndpoints(proto::NoEndpoints { exists: true })
    ));
    assert!(set.is_empty());
    assert!(!apply(
        &mut set,
        Update::NoEndpoints(proto::NoEndpoints { exists: false })
    ));
}

#[test]
fn endpoints_carry_the_set_and_address_labels_as_dst_labels() {
    let mut set = BTreeMap::new();
    let map = |kv: &[(&str, &str)]| -> std::collections::HashMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let mut w = addr("10.0.0.1:7001");
    w.metric_labels = map(&[
        ("pod", "authors-1"),
        ("deployment", "authors"),
        ("namespace", "booksapp"),
    ]);
    apply(
        &mut set,
        Update::Add(proto::WeightedAddrSet {
            addrs: vec![w],
            metric_labels: map(&[("namespace", "other"), ("service", "authors")]),
        }),
    );
    let e = &set[&"10.0.0.1:7001".parse::<SocketAddr>().unwrap()];
    let text = crate::metrics::encode_text(|r| {
        let f = prometheus_client::metrics::family::Family::<
            DstLabels,
            prometheus_client::metrics::counter::Counter,
        >::default();
        f.get_or_create(&e.labels).inc();
        r.register("x", "x", f);
    });
    // The address's own labels win over the set's; sorted by key.
    assert!(
        text.contains("x_total{dst_deployment=\"authors\",dst_namespace=\"booksapp\",dst_pod=\"authors-1\",dst_service=\"authors\"} 1"),
        "{text}"
    );
}
