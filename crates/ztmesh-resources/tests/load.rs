//! Loading manifests: the seed fixtures as they are, and every kind of bad
//! document with the diagnostic it must produce.

use ztmesh_resources::load::Severity;
use ztmesh_resources::{Resource, load_str};

fn seeds_dir() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/seeds");
    assert!(
        dir.is_dir(),
        "the seed fixtures are expected at {} (the repository's own copy of the seeds' YAML)",
        dir.display()
    );
    dir
}

fn load_seed(name: &str) -> ztmesh_resources::Loaded {
    let path = seeds_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    load_str(&text, name)
}

#[test]
fn seed_server_authorization_loads_with_a_fix_it_warning() {
    let loaded = load_seed("seed002-server-authorization.yaml");
    assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
    assert_eq!(loaded.resources.len(), 2);
    let warnings: Vec<String> = loaded.warnings().map(|d| d.to_string()).collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("document 2 (ServerAuthorization my-app/allow-web-to-api) apiVersion")
            && warnings[0].contains("change apiVersion to policy.linkerd.io/v1beta1"),
        "{}",
        warnings[0]
    );
    let Resource::ServerAuthorization(saz) = &loaded.resources[1] else {
        panic!("{:?}", loaded.resources[1])
    };
    assert_eq!(saz.api_version, "policy.linkerd.io/v1beta1");
    let sas = saz
        .spec
        .client
        .mesh_tls
        .as_ref()
        .unwrap()
        .service_accounts
        .as_ref()
        .unwrap();
    assert_eq!(sas[0].name, "web-frontend");
    let Resource::Server(srv) = &loaded.resources[0] else {
        panic!()
    };
    assert_eq!(
        srv.spec.proxy_protocol,
        Some(ztmesh_resources::policy::ProxyProtocol::Http2)
    );
}

#[test]
fn seed_default_deny_skips_network_policies_with_a_note() {
    let loaded = load_seed("seed002-default-deny.yaml");
    assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
    assert_eq!(loaded.resources.len(), 1);
    let notes: Vec<String> = loaded.warnings().map(|d| d.to_string()).collect();
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!(
        notes[0].contains("NetworkPolicy my-app/deny-all") && notes[0].contains("skipped"),
        "{}",
        notes[0]
    );
    assert!(
        notes[1].contains("NetworkPolicy my-app/allow-web-to-api"),
        "{}",
        notes[1]
    );
}

#[test]
fn seed_service_profile_and_booksapp_load_cleanly() {
    let loaded = load_seed("seed002-service-profile.yaml");
    assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
    let Resource::ServiceProfile(sp) = &loaded.resources[0] else {
        panic!()
    };
    let routes = sp.spec.routes.as_ref().unwrap();
    assert_eq!(
        (
            routes[0].name.as_str(),
            routes[0].is_retryable,
            routes[0].timeout.as_deref()
        ),
        ("GET /api/users", true, Some("5s"))
    );

    let loaded = load_seed("seed003-booksapp-authors.yaml");
    assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
    let kinds: Vec<String> = loaded
        .resources
        .iter()
        .map(|r| r.key().to_string())
        .collect();
    assert_eq!(
        kinds,
        vec![
            "HTTPRoute.policy.linkerd.io booksapp/authors-get-route",
            "AuthorizationPolicy booksapp/authors-get-policy",
            "MeshTLSAuthentication booksapp/authors-get-authn"
        ]
    );
}

#[test]
fn every_seed_fixture_loads_without_errors() {
    for entry in std::fs::read_dir(seeds_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let loaded = load_str(
                &std::fs::read_to_string(&path).unwrap(),
                &path.display().to_string(),
            );
            assert!(
                !loaded.has_errors(),
                "{}: {:?}",
                path.display(),
                loaded.diagnostics
            );
            assert!(!loaded.resources.is_empty(), "{}", path.display());
        }
    }
}

const SERVER: &str =
    "apiVersion: policy.linkerd.io/v1beta3\nkind: Server\nmetadata: {name: s, namespace: ns}\n";

#[test]
fn bad_documents_table() {
    // (yaml, expected field path or None, substring of the message)
    let cases: Vec<(String, Option<&str>, &str)> = vec![
        (format!("{SERVER}spec: {{podSelector: {{}}, port: 80, proxyProtocl: HTTP/1}}"), Some("spec.proxyProtocl"), "unknown field `proxyProtocl`"),
        (format!("{SERVER}spec: {{port: 80}}"), Some("spec"), "needs podSelector or externalWorkloadSelector"),
        (format!("{SERVER}spec: {{podSelector: {{}}, externalWorkloadSelector: {{}}, port: 80}}"), Some("spec"), "mutually exclusive"),
        (format!("{SERVER}spec: {{podSelector: {{}}, port: 0}}"), Some("spec.port"), "port 0"),
        (format!("{SERVER}spec: {{podSelector: {{}}, port: HTTP_PORT}}"), Some("spec.port"), "neither a port number nor a port name"),
        (format!("{SERVER}spec: {{podSelector: {{}}, port: 80, proxyProtocol: HTTP/3}}"), Some("spec.proxyProtocol"), "unknown variant `HTTP/3`"),
        (format!("{SERVER}spec: {{podSelector: {{}}, port: 80, accessPolicy: maybe}}"), Some("spec.accessPolicy"), "is not one of all-unauthenticated"),
        (
            "apiVersion: policy.linkerd.io/v1beta1\nkind: Server\nmetadata: {name: s}\nspec: {podSelector: {}, port: 80, accessPolicy: deny}".into(),
            Some("spec.accessPolicy"),
            "use policy.linkerd.io/v1beta3",
        ),
        (
            "apiVersion: policy.linkerd.io/v1beta1\nkind: Server\nmetadata: {name: s}\nspec: {externalWorkloadSelector: {}, port: 80}".into(),
            Some("spec.externalWorkloadSelector"),
            "v1beta2 or later",
        ),
        (format!("{SERVER}spec: {{podSelector: {{matchExpressions: [{{key: a, operator: In}}]}}, port: 80}}"), Some("spec.podSelector"), "needs values"),
        ("apiVersion: policy.linkerd.io/v9\nkind: Server\nmetadata: {name: s}\nspec: {}".into(), Some("apiVersion"), "use one of: policy.linkerd.io/v1alpha1"),
        ("apiVersion: policy.linkerd.io/v1beta3\nkind: Server\nmetadata: {namespace: x}\nspec: {podSelector: {}, port: 80}".into(), Some("metadata.name"), "required"),
        ("kind: Server\nmetadata: {name: s}".into(), None, "apiVersion and kind are required"),
        ("- a\n- b".into(), None, "must be a mapping"),
        ("apiVersion: v1\nkind: Server: x: y".into(), None, "not valid YAML"),
        (
            "apiVersion: policy.linkerd.io/v1beta1\nkind: ServerAuthorization\nmetadata: {name: a}\nspec: {server: {name: s}, client: {meshTLS: {serviceAccounts: [{nam: web}]}}}".into(),
            Some("spec.client.meshTLS.serviceAccounts[0].nam"),
            "unknown field `nam`",
        ),
        (
            "apiVersion: policy.linkerd.io/v1beta1\nkind: ServerAuthorization\nmetadata: {name: a}\nspec: {server: {name: s}, client: {}}".into(),
            Some("spec.client"),
            "authorizes no clients",
        ),
        (
            "apiVersion: policy.linkerd.io/v1beta1\nkind: ServerAuthorization\nmetadata: {name: a}\nspec: {server: {}, client: {unauthenticated: true}}".into(),
            Some("spec.server"),
            "name or selector is required",
        ),
        (
            "apiVersion: policy.linkerd.io/v1beta1\nkind: ServerAuthorization\nmetadata: {name: a}\nspec: {server: {name: s}, client: {unauthenticated: true, networks: [{cidr: 10.0.0.0/33}]}}".into(),
            Some("spec.client.networks[0].cidr"),
            "is not a CIDR",
        ),
        (
            "apiVersion: policy.linkerd.io/v1alpha1\nkind: AuthorizationPolicy\nmetadata: {name: a}\nspec: {targetRef: {kind: Deployment, name: x}, requiredAuthenticationRefs: []}".into(),
            Some("spec.targetRef"),
            "cannot be targeted",
        ),
        (
            "apiVersion: policy.linkerd.io/v1alpha1\nkind: MeshTLSAuthentication\nmetadata: {name: a}\nspec: {identities: ['*.*.example']}".into(),
            Some("spec.identities[0]"),
            "is not an identity",
        ),
        (
            "apiVersion: policy.linkerd.io/v1alpha1\nkind: MeshTLSAuthentication\nmetadata: {name: a}\nspec: {identities: ['spiffe://cluster.local']}".into(),
            Some("spec.identities[0]"),
            "is not a SPIFFE ID",
        ),
        (
            "apiVersion: policy.linkerd.io/v1alpha1\nkind: MeshTLSAuthentication\nmetadata: {name: a}\nspec: {identities: ['spiffe://cluster.local/ns/*']}".into(),
            Some("spec.identities[0]"),
            "is not a SPIFFE ID",
        ),
        (
            "apiVersion: policy.linkerd.io/v1alpha1\nkind: MeshTLSAuthentication\nmetadata: {name: a}\nspec: {}".into(),
            Some("spec"),
            "identities or identityRefs is required",
        ),
        (
            "apiVersion: policy.linkerd.io/v1alpha1\nkind: NetworkAuthentication\nmetadata: {name: a}\nspec: {networks: []}".into(),
            Some("spec.networks"),
            "at least one network",
        ),
        (
            "apiVersion: policy.linkerd.io/v1beta3\nkind: HTTPRoute\nmetadata: {name: r}\nspec: {parentRefs: [{name: s, kind: Server, group: policy.linkerd.io}], rules: [{matches: [{path: {type: RegularExpression, value: '/a('}}]}]}".into(),
            Some("spec.rules[0].matches[0].path.value"),
            "not a valid regular expression",
        ),
        (
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec: {parentRefs: [{name: s}], rules: [{matches: [{method: FETCH}]}]}".into(),
            Some("spec.rules[0].matches[0].method"),
            "\"FETCH\" is not one of GET",
        ),
        (
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec: {parentRefs: [{name: s}], rules: [{matches: [{path: {type: Exact, value: api}}]}]}".into(),
            Some("spec.rules[0].matches[0].path.value"),
            "must start with '/'",
        ),
        (
            "apiVersion: linkerd.io/v1alpha2\nkind: ServiceProfile\nmetadata: {name: a.b.svc.cluster.local}\nspec: {routes: [{name: x, condition: {pathRegex: '/a'}, timeout: soon}]}".into(),
            Some("spec.routes[0].timeout"),
            "is not a duration",
        ),
        (
            "apiVersion: linkerd.io/v1alpha2\nkind: ServiceProfile\nmetadata: {name: a.b.svc.cluster.local}\nspec: {routes: [{name: x, condition: {}}]}".into(),
            Some("spec.routes[0].condition"),
            "needs one of all, any, not, pathRegex, method",
        ),
        (
            "apiVersion: workload.linkerd.io/v1beta1\nkind: ExternalWorkload\nmetadata: {name: w}\nspec: {meshTLS: {identity: x, serverName: x}}".into(),
            Some("spec.workloadIPs"),
            "at least one address",
        ),
    ];
    for (yaml, field, message) in cases {
        let loaded = load_str(&yaml, "test.yaml");
        let errors: Vec<_> = loaded.errors().collect();
        assert_eq!(errors.len(), 1, "{yaml}\n{:?}", loaded.diagnostics);
        let e = errors[0];
        assert_eq!(e.field.as_deref(), field, "{yaml}\n{e}");
        assert!(e.message.contains(message), "{yaml}\n{e}");
        assert!(
            loaded.resources.is_empty(),
            "a rejected object is not loaded: {yaml}"
        );
        assert!(
            e.to_string().starts_with("error: test.yaml document 1"),
            "{e}"
        );
    }
}

/// Exact SPIFFE IDs are MeshTLSAuthentication identities, as in Linkerd.
#[test]
fn spiffe_ids_are_meshtls_identities() {
    let yaml = "apiVersion: policy.linkerd.io/v1alpha1\nkind: MeshTLSAuthentication\nmetadata: {name: a, namespace: ns}\nspec: {identities: ['spiffe://cluster.local/ns/booksapp/sa/books', 'web.ns.serviceaccount.identity.linkerd.cluster.local']}";
    let loaded = load_str(yaml, "test.yaml");
    assert_eq!(loaded.errors().count(), 0, "{:?}", loaded.diagnostics);
    assert_eq!(loaded.resources.len(), 1);
}

#[test]
fn other_kinds_are_skipped_with_a_note_and_documents_are_counted() {
    let yaml = "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n---\n# just a comment\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: booksapp, annotations: {config.linkerd.io/default-inbound-policy: deny}}\n";
    let loaded = load_str(yaml, "mixed.yaml");
    assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
    let warnings: Vec<_> = loaded.warnings().collect();
    assert_eq!(warnings.len(), 1);
    assert!(
        warnings[0]
            .message
            .contains("apps/v1 Deployment is not a kind ztmesh uses")
    );
    assert_eq!(warnings[0].severity, Severity::Warning);
    assert_eq!(loaded.resources.len(), 1);
    assert_eq!(loaded.resources[0].key().to_string(), "Namespace booksapp");
}

#[test]
fn hostile_nesting_and_size_are_refused_before_parsing() {
    // The attacker's file: 400 KB of nested `[` (serde_yaml needs minutes).
    let nested = format!("a: {}\n", "[".repeat(400_000));
    // The bound is checked before parsing: the diagnostic below comes from
    // the pre-parse scan (serde_yaml never sees the file).
    let loaded = load_str(&nested, "deep.yaml");
    let errors: Vec<String> = loaded.errors().map(|d| d.to_string()).collect();
    assert_eq!(
        errors,
        vec!["error: deep.yaml: nesting deeper than 100 levels at line 1"]
    );

    // Block nesting by indentation counts too, on the line that goes too deep.
    let block: String = (0..150)
        .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
        .collect();
    let errors: Vec<String> = load_str(&block, "block.yaml")
        .errors()
        .map(|d| d.to_string())
        .collect();
    assert_eq!(
        errors,
        vec!["error: block.yaml: nesting deeper than 100 levels at line 101"]
    );

    let big = format!("# {}\n", "x".repeat(2_411_725));
    let errors: Vec<String> = load_str(&big, "big.yaml")
        .errors()
        .map(|d| d.to_string())
        .collect();
    assert_eq!(
        errors,
        vec!["error: big.yaml: 2.3 MiB is over the 1 MiB limit"]
    );

    // Legal nesting just under the bound still loads.
    let limits = ztmesh_resources::bounds::Limits::default();
    let fine = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: p, annotations: {{a: \"{}\"}}}}\nspec: {{containers: [{{name: c, image: x}}]}}\n",
        "[".repeat(5000)
    );
    let loaded = ztmesh_resources::load_str_with(&fine, "fine.yaml", &limits);
    assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
    assert_eq!(loaded.resources.len(), 1);
}
