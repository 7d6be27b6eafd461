//! The last good version of each custom resource, across restarts: what
//! is recorded, forgotten, and put in force when a restarted store is
//! listed only a refused version.

use super::*;
use serde_json::json;

const SERVER: Kind = Kind {
    group: "policy.linkerd.io",
    kind: "Server",
};
const NAMESPACE: Kind = Kind {
    group: "",
    kind: "Namespace",
};

/// A Server at `rv`; without a selector it is refused ("a Server needs
/// podSelector or externalWorkloadSelector").
fn server(name: &str, rv: &str, port: u16, good: bool) -> serde_json::Value {
    let mut o = json!({"apiVersion": "policy.linkerd.io/v1beta3", "kind": "Server",
                       "metadata": {"name": name, "namespace": "n", "resourceVersion": rv},
                       "spec": {"port": port}});
    if good {
        o["spec"]["podSelector"] = json!({"matchLabels": {"app": name}});
    }
    o
}

fn ns(name: &str) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "Namespace",
           "metadata": {"name": name, "resourceVersion": "1"}})
}

/// Each update as `apply NAME:PORT`, `delete NAME` or `synced`.
fn updates(events: Vec<StoreEvent>) -> Vec<String> {
    events
        .into_iter()
        .map(|e| match e {
            StoreEvent::Apply(r) => match *r {
                ztmesh_resources::Resource::Server(s) => {
                    format!("apply {}:{:?}", s.name(), s.spec.port)
                }
                other => format!("apply {}", other.key().name),
            },
            StoreEvent::Delete(k) => format!("delete {}", k.name),
            StoreEvent::Synced => "synced".into(),
            other => format!("{other:?}"),
        })
        .collect()
}

/// Each record change as `write NAME@RV` or `remove NAME`.
fn records(records: Vec<Record>) -> Vec<String> {
    records
        .into_iter()
        .map(|r| match r {
            Record::Write(r) => format!("write {}@{}", r.name, r.resource_version),
            Record::Remove((_, _, name)) => format!("remove {name}"),
        })
        .collect()
}

fn store(recorded: &BTreeMap<last_good::Key, Recorded>) -> StoreState {
    StoreState::new(vec![NAMESPACE, SERVER], "linkerd", Metrics::default())
        .with_last_good(recorded.clone())
}

/// One step: (kind, event, index updates, record changes, refused objects
/// with whether something of them is in force).
type Step = (
    usize,
    WatchEvent,
    Vec<&'static str>,
    Vec<&'static str>,
    Vec<(&'static str, bool)>,
);

fn run(
    state: &mut StoreState,
    steps: Vec<Step>,
    recorded: &mut BTreeMap<last_good::Key, Recorded>,
) {
    for (i, (kind, event, want, want_records, refused)) in steps.into_iter().enumerate() {
        assert_eq!(
            updates(state.handle(kind, event)),
            want,
            "step {i}: updates"
        );
        let changes = state.take_records();
        // What a LastGoodDir would hold after writing them.
        for change in &changes {
            match change {
                Record::Write(r) => {
                    recorded.insert(r.key(), (**r).clone());
                }
                Record::Remove(key) => {
                    recorded.remove(key);
                }
            }
        }
        assert_eq!(records(changes), want_records, "step {i}: records");
        let now: Vec<(String, bool)> = state
            .rejected()
            .into_iter()
            .map(|(r, previous)| (r.object, previous))
            .collect();
        let refused: Vec<(String, bool)> = refused
            .into_iter()
            .map(|(o, p)| (o.to_string(), p))
            .collect();
        assert_eq!(now, refused, "step {i}: refused");
    }
}

#[test]
fn the_last_good_version_outlives_a_restart() {
    use WatchEvent::{Apply, Delete, Init, InitDone};
    let mut recorded = BTreeMap::new();

    // The first run: good versions are recorded, once per version.
    let mut first = store(&recorded);
    run(
        &mut first,
        vec![
            (0, Init, vec![], vec![], vec![]),
            // Core kinds are not recorded.
            (0, Apply(ns("n")), vec!["apply n"], vec![], vec![]),
            (0, InitDone, vec![], vec![], vec![]),
            (1, Init, vec![], vec![], vec![]),
            (
                1,
                Apply(server("a", "10", 7001, true)),
                vec!["apply a:Number(7001)"],
                vec!["write a@10"],
                vec![],
            ),
            (
                1,
                Apply(server("b", "11", 7002, true)),
                vec!["apply b:Number(7002)"],
                vec!["write b@11"],
                vec![],
            ),
            (
                1,
                Apply(server("c", "12", 7003, true)),
                vec!["apply c:Number(7003)"],
                vec!["write c@12"],
                vec![],
            ),
            (1, InitDone, vec!["synced"], vec![], vec![]),
            // The same version again (a relist): nothing to write.
            (
                1,
                Apply(server("a", "10", 7001, true)),
                vec!["apply a:Number(7001)"],
                vec![],
                vec![],
            ),
            // A bad version: the good one stays in force and recorded.
            (
                1,
                Apply(server("a", "20", 9999, false)),
                vec![],
                vec![],
                vec![("Server n/a", true)],
            ),
            // A new good version of b replaces its record.
            (
                1,
                Apply(server("b", "21", 7012, true)),
                vec!["apply b:Number(7012)"],
                vec!["write b@21"],
                vec![("Server n/a", true)],
            ),
            // A deletion forgets the record.
            (
                1,
                Delete(server("c", "22", 7003, true)),
                vec!["delete c"],
                vec!["remove c"],
                vec![("Server n/a", true)],
            ),
        ],
        &mut recorded,
    );
    assert_eq!(
        recorded
            .values()
            .map(|r| format!("{}@{}", r.name, r.resource_version))
            .collect::<Vec<_>>(),
        vec!["a@10", "b@21"]
    );

    // Restarted: the API server holds only a's bad version. The recorded
    // one is put in force, and the refusal is still counted and shown.
    let mut second = store(&recorded);
    run(
        &mut second,
        vec![
            (0, Init, vec![], vec![], vec![]),
            (0, Apply(ns("n")), vec!["apply n"], vec![], vec![]),
            (0, InitDone, vec![], vec![], vec![]),
            (1, Init, vec![], vec![], vec![]),
            (
                1,
                Apply(server("a", "20", 9999, false)),
                vec!["apply a:Number(7001)"],
                vec![],
                vec![("Server n/a", true)],
            ),
            // A new object refused at start has no record: nothing in force.
            (
                1,
                Apply(server("d", "23", 7004, false)),
                vec![],
                vec![],
                vec![("Server n/a", true), ("Server n/d", false)],
            ),
            // b was deleted while the controller was down: the listing
            // without it forgets its record.
            (
                1,
                InitDone,
                vec!["synced"],
                vec!["remove b"],
                vec![("Server n/a", true), ("Server n/d", false)],
            ),
            // Fixed: the new version is in force and recorded.
            (
                1,
                Apply(server("a", "30", 7011, true)),
                vec!["apply a:Number(7011)"],
                vec!["write a@30"],
                vec![("Server n/d", false)],
            ),
        ],
        &mut recorded,
    );
    assert_eq!(second.metrics.rejected("Server.policy.linkerd.io"), 2);
    assert_eq!(second.metrics.objects("Server.policy.linkerd.io"), 1);
    assert_eq!(
        recorded
            .values()
            .map(|r| format!("{}@{}", r.name, r.resource_version))
            .collect::<Vec<_>>(),
        vec!["a@30"]
    );

    // Without records (the store started without a directory), the same
    // start has nothing of a in force.
    let mut forgetful = StoreState::new(vec![NAMESPACE, SERVER], "linkerd", Metrics::default());
    let events = forgetful.handle(1, Apply(server("a", "20", 9999, false)));
    assert!(events.is_empty(), "{:?}", updates(events));
    assert!(forgetful.take_records().is_empty());
}

#[test]
fn a_record_that_no_longer_loads_is_forgotten() {
    use WatchEvent::Apply;
    // Recorded, then made invalid (a newer loader refuses it): at start
    // the refused object has nothing in force, and the record goes.
    let mut bad = Recorded {
        kind: "Server.policy.linkerd.io".into(),
        namespace: "n".into(),
        name: "a".into(),
        resource_version: "10".into(),
        object: server("a", "10", 7001, false),
    };
    bad.object["spec"]["port"] = json!(0);
    let mut recorded = BTreeMap::from([(bad.key(), bad)]);
    let mut state = store(&recorded);
    run(
        &mut state,
        vec![(
            1,
            Apply(server("a", "20", 9999, false)),
            vec![],
            vec!["remove a"],
            vec![("Server n/a", false)],
        )],
        &mut recorded,
    );
    assert!(recorded.is_empty());
}
