//! The scenarios every store must pass, written once over [`Store`]: the
//! same YAML, the same edits, the same expectations on the policy index.
//! `NS` in the YAML is replaced by the store's namespace prefix (a real
//! API server keeps objects across runs, so each run has its own).

use std::collections::BTreeSet;
use std::future::Future;
use ztmesh_policy::{ClientAuthentication, IdentityMatch, Index, ServerRef, WorkloadRef};

/// A store under test: objects go in as YAML, the policy index comes out.
pub trait Store {
    /// The namespace prefix of this run.
    fn prefix(&self) -> &str;
    /// Creates or replaces the objects of `yaml` (`kubectl apply`, or a file).
    fn apply(&mut self, yaml: &str) -> impl Future<Output = ()>;
    /// Deletes one object (`kind` as kubectl names it: `plural.group`).
    fn delete(&mut self, kind: &str, ns: &str, name: &str) -> impl Future<Output = ()>;
    /// Waits (with a deadline) until `cond` holds of the policy index;
    /// returns the last summary seen if it never does.
    fn wait_for(
        &mut self,
        what: &str,
        cond: &(dyn Fn(&Index) -> bool + Sync),
    ) -> impl Future<Output = ()>;
    /// The reasons `object` (`Kind ns/name`) is refused for now, if it is.
    fn refused(&mut self, object: &str) -> impl Future<Output = Option<Vec<String>>>;
}

/// What a workload port allows: the Server (or default) and, per
/// authorization on the server or its routes, the identities it admits
/// (`*` for any client).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allowed {
    pub server: ServerRef,
    pub clients: BTreeSet<String>,
}

pub fn allowed(index: &Index, ns: &str, pod: &str, port: u16) -> Option<Allowed> {
    let server = index.server(ns, &WorkloadRef::Pod(pod.into()), port).ok()?;
    let mut clients = BTreeSet::new();
    let authzs = server.authorizations.iter().chain(
        server
            .http_routes
            .values()
            .flat_map(|r| r.authorizations.iter()),
    );
    for (_, authz) in authzs {
        match &authz.authentication {
            ClientAuthentication::Unauthenticated | ClientAuthentication::TlsUnauthenticated => {
                clients.insert("*".into());
            }
            ClientAuthentication::TlsAuthenticated(ids) => {
                for id in ids {
                    clients.insert(match id {
                        IdentityMatch::Exact(s) => s.clone(),
                        IdentityMatch::Suffix(labels) => format!("*.{}", labels.join(".")),
                    });
                }
            }
        }
    }
    Some(Allowed {
        server: server.reference,
        clients,
    })
}

const BOOKS: &str = "books.booksapp.serviceaccount.identity.linkerd.cluster.local";
const WEBAPP: &str = "webapp.booksapp.serviceaccount.identity.linkerd.cluster.local";

/// booksapp's authors: a meshed pod, its Server, and seed 003's policy.
const BOOKSAPP: &str = r#"
apiVersion: v1
kind: Namespace
metadata:
  name: NS-booksapp
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: authors
  namespace: NS-booksapp
---
apiVersion: v1
kind: Pod
metadata:
  name: authors
  namespace: NS-booksapp
  labels:
    app: authors
    linkerd.io/control-plane-ns: linkerd
spec:
  serviceAccountName: authors
  containers:
    - name: app
      image: authors
      ports:
        - name: service
          containerPort: 7001
---
apiVersion: policy.linkerd.io/v1beta2
kind: Server
metadata:
  name: authors
  namespace: NS-booksapp
spec:
  podSelector:
    matchLabels:
      app: authors
  port: service
  proxyProtocol: HTTP/1
---
apiVersion: policy.linkerd.io/v1beta1
kind: HTTPRoute
metadata:
  name: authors-get-route
  namespace: NS-booksapp
spec:
  parentRefs:
    - name: authors
      kind: Server
      group: policy.linkerd.io
  rules:
    - matches:
        - path:
            value: "/authors.json"
            type: "PathPrefix"
          method: GET
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata:
  name: authors-get-policy
  namespace: NS-booksapp
spec:
  targetRef:
    group: policy.linkerd.io
    kind: HTTPRoute
    name: authors-get-route
  requiredAuthenticationRefs:
    - name: authors-get-authn
      kind: MeshTLSAuthentication
      group: policy.linkerd.io
---
apiVersion: policy.linkerd.io/v1alpha1
kind: MeshTLSAuthentication
metadata:
  name: authors-get-authn
  namespace: NS-booksapp
spec:
  identities:
    - "books.booksapp.serviceaccount.identity.linkerd.cluster.local"
    - "webapp.booksapp.serviceaccount.identity.linkerd.cluster.local"
"#;

/// Seed 002's default deny: a Server on every pod's 8080 with no
/// authorization, in a namespace whose default is deny.
const DEFAULT_DENY: &str = r#"
apiVersion: v1
kind: Namespace
metadata:
  name: NS-my-app
  annotations:
    config.linkerd.io/default-inbound-policy: deny
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: api
  namespace: NS-my-app
---
apiVersion: v1
kind: Pod
metadata:
  name: api
  namespace: NS-my-app
  labels:
    app: api-server
    linkerd.io/control-plane-ns: linkerd
spec:
  serviceAccountName: api
  containers:
    - name: app
      image: api
---
apiVersion: policy.linkerd.io/v1beta2
kind: Server
metadata:
  name: default-deny
  namespace: NS-my-app
spec:
  podSelector: {}
  port: 8080
"#;

const AUTHN_BOOKS_ONLY: &str = r#"
apiVersion: policy.linkerd.io/v1alpha1
kind: MeshTLSAuthentication
metadata:
  name: authors-get-authn
  namespace: NS-booksapp
spec:
  identities:
    - "books.booksapp.serviceaccount.identity.linkerd.cluster.local"
"#;

/// A Server with no selector: refused ("needs podSelector or
/// externalWorkloadSelector") by every store.
const BROKEN_SERVER: &str = r#"
apiVersion: policy.linkerd.io/v1beta2
kind: Server
metadata:
  name: authors
  namespace: NS-booksapp
spec:
  port: 9999
"#;

fn with_prefix(yaml: &str, prefix: &str) -> String {
    yaml.replace("NS-", &format!("{prefix}-"))
}

fn expect(
    ns: String,
    pod: &'static str,
    port: u16,
    want: Allowed,
) -> impl Fn(&Index) -> bool + Sync {
    move |index| allowed(index, &ns, pod, port).as_ref() == Some(&want)
}

fn clients(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

/// Runs every scenario, in order, over `store`.
pub async fn run<S: Store>(store: &mut S) {
    let p = store.prefix().to_string();
    let books_ns = format!("{p}-booksapp");
    let authors = |ids: &[&str]| Allowed {
        server: ServerRef::Server("authors".into()),
        clients: clients(ids),
    };

    // The booksapp policy: only books and webapp may GET the authors routes.
    store.apply(&with_prefix(BOOKSAPP, &p)).await;
    store
        .wait_for(
            "booksapp: authors:7001 admits books and webapp",
            &expect(books_ns.clone(), "authors", 7001, authors(&[BOOKS, WEBAPP])),
        )
        .await;

    // Default deny: the Server admits no one; other ports follow the
    // namespace's default, deny.
    store.apply(&with_prefix(DEFAULT_DENY, &p)).await;
    let my_app = format!("{p}-my-app");
    store
        .wait_for(
            "default deny: api:8080 admits no one",
            &expect(
                my_app.clone(),
                "api",
                8080,
                Allowed {
                    server: ServerRef::Server("default-deny".into()),
                    clients: BTreeSet::new(),
                },
            ),
        )
        .await;
    store
        .wait_for(
            "default deny: api:9090 falls to the namespace's deny",
            &expect(
                my_app,
                "api",
                9090,
                Allowed {
                    server: ServerRef::Default("deny"),
                    clients: BTreeSet::new(),
                },
            ),
        )
        .await;

    // A live edit: webapp is no longer admitted.
    store.apply(&with_prefix(AUTHN_BOOKS_ONLY, &p)).await;
    store
        .wait_for(
            "live edit: authors:7001 admits books only",
            &expect(books_ns.clone(), "authors", 7001, authors(&[BOOKS])),
        )
        .await;

    // A broken object is refused with its reason; the last good Server stays.
    store.apply(&with_prefix(BROKEN_SERVER, &p)).await;
    let object = format!("Server {books_ns}/authors");
    let reasons = store.refused(&object).await;
    let reasons = reasons.unwrap_or_else(|| panic!("{object} should be refused"));
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("a Server needs podSelector or externalWorkloadSelector")),
        "{object}: {reasons:?}"
    );
    store
        .wait_for(
            "broken object: the last good Server stays in force",
            &expect(books_ns.clone(), "authors", 7001, authors(&[BOOKS])),
        )
        .await;

    // A deletion: without its AuthorizationPolicy the route admits no one.
    store
        .delete(
            "authorizationpolicies.policy.linkerd.io",
            &books_ns,
            "authors-get-policy",
        )
        .await;
    store
        .wait_for(
            "deletion: authors:7001 admits no one",
            &expect(books_ns, "authors", 7001, authors(&[])),
        )
        .await;
}
