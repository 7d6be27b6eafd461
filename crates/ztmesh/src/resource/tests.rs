//! Table tests of naming: every kind's forms, the older argument forms,
//! resolution on the demo's manifests, and errors in words.

use super::*;

/// The demo's manifests, as `ztmesh demo` writes them, and one pod
/// labelled app=reviews.
fn demo_index() -> Index {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("booksapp.yaml"),
        include_str!("../demo/booksapp.yaml"),
    )
    .unwrap();
    let pods = r#"
apiVersion: v1
kind: Pod
metadata: {name: reviews-7d9f-x2, namespace: booksapp, labels: {app: reviews}}
spec: {containers: [{name: reviews, image: reviews}]}
"#;
    std::fs::write(dir.path().join("pods.yaml"), pods).unwrap();
    crate::diagnose_policy::policy_index(dir.path()).unwrap().0
}

#[test]
fn kinds_and_names_select() {
    let pod = |n: &str| WorkloadRef::Pod(n.into());
    let ew = |n: &str| WorkloadRef::External(n.into());
    let app = |a: &str| Workload {
        labels: [("app".to_string(), a.to_string())].into_iter().collect(),
        ..Workload::default()
    };
    let none = Workload::default();
    // (argument, namespace, workload, its labels, selected)
    let cases = [
        ("pod/authors", "booksapp", pod("authors"), &none, true),
        ("po/authors", "booksapp", pod("books"), &none, false),
        ("pods", "booksapp", pod("books"), &none, true),
        ("pods", "booksapp", ew("books"), &none, false),
        ("externalworkload/db", "data", ew("db"), &none, true),
        ("ew", "data", ew("db"), &none, true),
        ("EW/db", "data", pod("db"), &none, false),
        ("ns/booksapp", "booksapp", ew("x"), &none, true),
        ("namespace/booksapp", "other", pod("x"), &none, false),
        ("ns", "other", pod("x"), &none, true),
        (
            "deploy/authors",
            "booksapp",
            ew("authors"),
            &app("authors"),
            true,
        ),
        (
            "deployment/authors",
            "booksapp",
            pod("a-1"),
            &app("authors"),
            true,
        ),
        ("deploy/authors", "booksapp", pod("authors"), &none, false),
        ("sts/db", "data", pod("db-0"), &app("db"), true),
        ("statefulsets/db", "data", pod("db-0"), &app("web"), false),
        ("ds/agent", "kube", pod("agent-x"), &app("agent"), true),
        ("daemonset", "kube", pod("agent-x"), &app("agent"), true),
        ("deploy", "kube", pod("agent-x"), &none, false),
    ];
    for (arg, ns, wref, wl, want) in cases {
        let r: Resource = arg.parse().unwrap_or_else(|e| panic!("{arg}: {e}"));
        assert_eq!(r.selects(ns, &wref, wl), want, "{arg} {ns} {wref}");
    }
}

#[test]
fn bad_kinds_are_refused_in_words() {
    for (bad, reason) in [
        ("rs/authors", "not rs objects"),
        ("svc/authors", "not svc objects"),
        ("cm/authors", "unknown kind 'cm'"),
        ("pod/", "expected KIND or KIND/NAME"),
        ("pod/a/b", "expected KIND or KIND/NAME"),
    ] {
        let err = bad.parse::<Resource>().unwrap_err().to_string();
        assert!(err.contains(reason), "{bad}: {err}");
        assert!(!err.contains("Pod("), "{bad}: {err}");
    }
    for (arg, display) in [
        ("po/authors", "pod/authors"),
        ("deploy/web", "deployment/web"),
        ("sts", "statefulset"),
        ("ew/db", "externalworkload/db"),
    ] {
        assert_eq!(arg.parse::<Resource>().unwrap().to_string(), display);
    }
}

#[test]
fn workload_arguments_old_and_new() {
    let ns = |ns: &str| (!ns.is_empty()).then(|| ns.to_string());
    let exact = |n: &str, w: WorkloadRef| Ok((ns(n), WorkloadName::Exact(w)));
    let any = |n: &str, name: &str| Ok((ns(n), WorkloadName::Any(name.into())));
    let app =
        |n: &str, name: &str| Ok((ns(n), WorkloadName::App(OwnerKind::Deployment, name.into())));
    let ext = |n: &str| WorkloadRef::External(n.into());
    // (argument, -n, namespace ("" for none) and name)
    type Want = Result<(Option<String>, WorkloadName), ResourceError>;
    let cases: [(&str, Option<&str>, Want); 11] = [
        (
            "deploy/authors",
            Some("booksapp"),
            app("booksapp", "authors"),
        ),
        (
            "ew/authors",
            Some("booksapp"),
            exact("booksapp", ext("authors")),
        ),
        ("po/a-1", None, exact("", WorkloadRef::Pod("a-1".into()))),
        ("authors", Some("booksapp"), any("booksapp", "authors")),
        // The older forms: the namespace in the argument.
        ("booksapp/authors", None, any("booksapp", "authors")),
        (
            "booksapp/authors",
            Some("booksapp"),
            any("booksapp", "authors"),
        ),
        (
            "booksapp/externalworkload/authors",
            None,
            exact("booksapp", ext("authors")),
        ),
        ("booksapp/deploy/authors", None, app("booksapp", "authors")),
        (
            "booksapp/authors",
            Some("other"),
            Err(ResourceError::TwoNamespaces {
                input: "booksapp/authors".into(),
                in_arg: "booksapp".into(),
                flag: "other".into(),
            }),
        ),
        (
            "ns/booksapp",
            None,
            Err(ResourceError::NotOneWorkload("ns/booksapp".into())),
        ),
        ("a/b/c/d", None, Err(ResourceError::Shape("a/b/c/d".into()))),
    ];
    for (arg, ns, want) in cases {
        assert_eq!(workload_arg(arg, ns), want, "{arg} -n {ns:?}");
    }
}

#[test]
fn names_resolve_as_linkerd_users_mean_them() {
    let index = demo_index();
    let ext = |n: &str| Ok(WorkloadRef::External(n.into()));
    let reviews = || Ok(WorkloadRef::Pod("reviews-7d9f-x2".into()));
    let cases = [
        ("authors", ext("authors")),
        ("ew/authors", ext("authors")),
        ("externalworkload/authors", ext("authors")),
        ("deploy/authors", ext("authors")),
        ("books", ext("books")),
        ("sts/books", ext("books")),
        // Nothing is named reviews: the pod labelled app=reviews is meant.
        ("reviews", reviews()),
        ("deploy/reviews", reviews()),
        ("po/reviews-7d9f-x2", reviews()),
    ];
    for (name, want) in cases {
        let name: WorkloadName = name.parse().unwrap();
        assert_eq!(resolve(&index, "booksapp", &name), want, "{name}");
    }
}

#[test]
fn not_found_says_what_was_looked_for_and_what_exists() {
    let index = demo_index();
    let there = "pod/reviews-7d9f-x2, externalworkload/authors, externalworkload/books, \
                 externalworkload/traffic, externalworkload/webapp";
    let cases = [
        (
            "booksapp",
            "nobody",
            format!(
                "no workload named \"nobody\" (a Pod or ExternalWorkload, or labelled \
                 app=nobody) in namespace booksapp (workloads there: {there})"
            ),
        ),
        (
            "booksapp",
            "deploy/nobody",
            format!(
                "no workload deployment/nobody (none labelled app=nobody) in namespace \
                 booksapp (workloads there: {there})"
            ),
        ),
        (
            "booksapp",
            "po/authors",
            format!("no workload pod/authors in namespace booksapp (workloads there: {there})"),
        ),
        (
            "elsewhere",
            "pod/authors",
            "no workload pod/authors in namespace elsewhere (the manifests declare no workloads there)"
                .to_string(),
        ),
    ];
    for (ns, name, want) in cases {
        let err = resolve(&index, ns, &name.parse().unwrap()).unwrap_err();
        assert_eq!(err.to_string(), want, "{name}");
    }
}

#[test]
fn an_empty_selection_says_what_exists() {
    let index = demo_index();
    let r = |s: &str| s.parse::<Resource>().unwrap();
    let cases = [
        (
            Some("booksapp"),
            Some(r("deploy/nobody")),
            "no deployment/nobody (the workloads labelled app=nobody) in namespace booksapp \
             (workloads there: externalworkload/authors, externalworkload/books, \
             externalworkload/traffic, externalworkload/webapp, pod/reviews-7d9f-x2)",
        ),
        (
            Some("booksapp"),
            Some(r("po/reviews-7d9f-x2")),
            "pod/reviews-7d9f-x2 in namespace booksapp: pod/reviews-7d9f-x2 without an \
             address (nothing to ask)",
        ),
        (
            Some("nowhere"),
            None,
            "no workloads in namespace nowhere (the manifests declare no workloads there)",
        ),
    ];
    for (ns, res, want) in cases {
        assert_eq!(
            nothing_selected(&index, ns, res.as_ref()).to_string(),
            want,
            "{res:?}"
        );
    }
}
