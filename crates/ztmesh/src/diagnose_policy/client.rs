//! The client `diagnose policy` asks about, built as the proxy builds it
//! (ztmesh-proxy's `ClientTls::authz_client`): an IP is a plaintext client;
//! a mesh identity is a TLS client whose identity is what the proxy reads
//! from the certificate, its first DNS SAN (`ztmesh_tls::peer_identity`).
//! The identity service issues every leaf with the DNS form first and the
//! SPIFFE ID as a URI SAN, so a SPIFFE ID given with --from stands for the
//! DNS form of the same service account. KIND/NAME (deploy/NAME, po/NAME,
//! ew/NAME, or the older NS/NAME) names a workload in the manifests
//! ([`crate::resource`]): its identity (a Pod's service account's, an
//! ExternalWorkload's meshTLS identity) and address. The client's address is --from-ip,
//! else the address the manifests give the workload with that identity,
//! else unknown (and said so, never invented): when the answer would then
//! depend on it, [`admitting_network`] says which network would be admitted.

use std::net::{IpAddr, Ipv4Addr};
use ztmesh_policy::{ClusterInfo, WorkloadRef};
use ztmesh_resources::Resource;

use crate::resource::WorkloadName;

/// --from, as the proxy would see the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Asked {
    /// A plaintext client at this address.
    Ip(IpAddr),
    /// A mesh TLS client: the identity the proxy reads from its certificate.
    Identity(String),
    /// KIND/NAME in a namespace: the workload's identity, from the manifests.
    Workload(String, WorkloadName),
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum BadClient {
    #[error(
        "--from {0:?} is neither an IP address nor a mesh identity (a DNS-like name such as books.booksapp.serviceaccount.identity.linkerd.cluster.local, or a spiffe:// ID) nor a workload (deploy/NAME, po/NAME, ew/NAME)"
    )]
    NotAClient(String),
    #[error("--from: {0}")]
    Workload(#[from] crate::resource::ResourceError),
    #[error(
        "--from {given:?}: {source} (the identity service issues SPIFFE IDs of service accounts only, and the proxy reads a client's identity from the DNS SAN beside it)"
    )]
    NotAServiceAccount {
        given: String,
        source: ztmesh_identity::NameError,
    },
}

/// Parses --from into the client the proxy would see; a workload's
/// namespace is `namespace` unless --from gives one (NS/NAME).
pub(crate) fn parse_from(
    from: &str,
    namespace: &str,
    cluster: &ClusterInfo,
) -> Result<Asked, BadClient> {
    if let Ok(ip) = from.parse::<IpAddr>() {
        return Ok(Asked::Ip(ip));
    }
    if from.starts_with("spiffe://") {
        return ztmesh_identity::IdentityName::parse_spiffe(from, &cluster.control_plane_ns)
            .map(|name| Asked::Identity(name.to_string()))
            .map_err(|source| BadClient::NotAServiceAccount {
                given: from.into(),
                source,
            });
    }
    if from.contains('/') {
        let (ns, name) = crate::resource::workload_arg(from, None)?;
        let ns = ns.unwrap_or_else(|| namespace.into());
        return Ok(Asked::Workload(ns, name));
    }
    if from.contains('.') && ztmesh_tls::server_name(from).is_ok() {
        return Ok(Asked::Identity(from.into()));
    }
    Err(BadClient::NotAClient(from.into()))
}

/// The identity (as the proxy reads it) of a workload in the manifests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct WorkloadIdentity {
    pub(crate) identity: String,
    pub(crate) namespace: String,
    pub(crate) workload: WorkloadRef,
}

/// The identity of a Pod (its service account's) or ExternalWorkload
/// (its meshTLS identity, a SPIFFE one in DNS form).
pub(crate) fn workload_identity(r: &Resource, cluster: &ClusterInfo) -> Option<WorkloadIdentity> {
    let key = r.key();
    let (identity, workload) = match r {
        Resource::ExternalWorkload(o) => {
            let id = &o.spec.mesh_tls.identity;
            let id = match id.starts_with("spiffe://") {
                true => ztmesh_identity::IdentityName::parse_spiffe(id, &cluster.control_plane_ns)
                    .ok()?
                    .to_string(),
                false => id.clone(),
            };
            (id, WorkloadRef::External(key.name))
        }
        Resource::Pod(p) => {
            let sa = p
                .spec
                .as_ref()
                .and_then(|s| s.service_account_name.as_deref())
                .unwrap_or("default");
            (
                cluster.service_account_identity(&key.namespace, sa),
                WorkloadRef::Pod(key.name),
            )
        }
        _ => return None,
    };
    Some(WorkloadIdentity {
        identity,
        namespace: key.namespace,
        workload,
    })
}

/// Where the client connects from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Address {
    /// --from-ip, or --from itself.
    Given(IpAddr),
    /// The address the manifests give the workload with the client's identity.
    Workload(IpAddr, WorkloadRef),
    Unknown,
}

impl Address {
    /// The address decided on: an unknown one is decided as 0.0.0.0.
    pub(crate) fn ip(&self) -> IpAddr {
        match self {
            Self::Given(ip) | Self::Workload(ip, _) => *ip,
            Self::Unknown => Ipv4Addr::UNSPECIFIED.into(),
        }
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Given(ip) => write!(f, "{ip}"),
            Self::Workload(ip, w) => write!(f, "{ip}, the address of {w}"),
            Self::Unknown => f.write_str("an unspecified address"),
        }
    }
}

/// The client's address: given, else its workload's first known address.
pub(crate) fn address(
    given: Option<IpAddr>,
    identity: &str,
    known: &[WorkloadIdentity],
    index: Option<&ztmesh_policy::Index>,
) -> Address {
    if let Some(ip) = given {
        return Address::Given(ip);
    }
    let found = index.and_then(|index| {
        known
            .iter()
            .filter(|w| w.identity == identity)
            .find_map(|w| {
                let wl = index.workload(&w.namespace, &w.workload)?;
                Some(Address::Workload(*wl.ips.first()?, w.workload.clone()))
            })
    });
    found.unwrap_or(Address::Unknown)
}

/// A workload named with --from: its identity and its address (--from-ip wins).
pub(crate) fn workload_client<'k>(
    index: &ztmesh_policy::Index,
    known: &'k [WorkloadIdentity],
    ns: &str,
    name: &WorkloadName,
    from_ip: Option<IpAddr>,
) -> anyhow::Result<(Address, &'k str)> {
    let w = crate::resource::resolve(index, ns, name)?;
    let id = known
        .iter()
        .find(|k| k.namespace == ns && k.workload == w)
        .ok_or_else(|| anyhow::anyhow!("workload {w} in namespace {ns} has no mesh identity"))?;
    let address = match from_ip {
        Some(ip) => Address::Given(ip),
        None => index
            .workload(ns, &w)
            .and_then(|wl| wl.ips.first())
            .map(|ip| Address::Workload(*ip, w.clone()))
            .unwrap_or(Address::Unknown),
    };
    Ok((address, id.identity.as_str()))
}

/// When the address is unknown and the answer is no: the network of an
/// authorization that would admit the client from there (the answer then
/// depends on the address, which only the user knows).
pub(crate) fn admitting_network(
    policy: &ztmesh_authz::ServerPolicy,
    client: ztmesh_authz::Client<'_>,
    req: Option<&http::Request<()>>,
) -> Option<(String, String)> {
    let all = policy
        .authorizations
        .list()
        .iter()
        .chain(
            policy
                .http_routes
                .iter()
                .flat_map(|r| r.authorizations.list()),
        )
        .chain(
            policy
                .grpc_routes
                .iter()
                .flat_map(|r| r.authorizations.list()),
        );
    all.flat_map(|a| &a.networks).find_map(|n| {
        let from = ztmesh_authz::Client {
            ip: n.net.network(),
            ..client
        };
        let label = match req {
            Some(req) => ztmesh_authz::decide_request(policy, from, req, None)
                .ok()?
                .authorization
                .label(),
            None => ztmesh_authz::decide_connection(policy, from, None)
                .ok()?
                .authorization
                .label(),
        };
        Some((n.net.to_string(), label))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ztmesh_authz::{Client, decide_request};

    const WEBAPP_DNS: &str = "webapp.booksapp.serviceaccount.identity.linkerd.cluster.local";

    /// The identity the proxy reads from the leaf the identity service
    /// issues to booksapp/SA.
    fn proxy_sees(pki: &ztmesh_test_support::TestPki, sa: &str) -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let issued = pki
            .ca(std::time::Duration::from_secs(3600))
            .issue(
                &pki.identity("booksapp", sa),
                &key,
                std::time::SystemTime::now(),
            )
            .unwrap();
        ztmesh_tls::peer_identity(&issued.leaf).expect("the leaf has a DNS SAN")
    }

    /// The policy index and workload identities of the demo's manifests.
    fn demo_index() -> (ztmesh_policy::Index, Vec<super::WorkloadIdentity>) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("booksapp.yaml"),
            include_str!("../demo/booksapp.yaml"),
        )
        .unwrap();
        crate::diagnose_policy::policy_index(dir.path()).unwrap()
    }

    #[test]
    fn every_identity_form_gets_the_proxys_answer() {
        let (index, known) = demo_index();
        let authors = WorkloadRef::External("authors".into());
        let server = index.server("booksapp", &authors, 7001).unwrap();
        let policy =
            ztmesh_grpc::authz::server_policy(&ztmesh_grpc::inbound::to_proto(&server)).unwrap();
        let req = http::Request::get("/authors.json").body(()).unwrap();
        let cluster = ClusterInfo::default();
        let pki = ztmesh_test_support::TestPki::new();
        // (service account, allowed by the seed's policy)
        let cases = [
            ("webapp", true),
            ("books", true),
            ("traffic", false),
            ("authors", false),
        ];
        for (sa, allowed) in cases {
            let seen = proxy_sees(&pki, sa);
            let proxy = Client {
                ip: "127.0.9.4".parse().unwrap(),
                tls: true,
                identity: Some(&seen),
            };
            let want = decide_request(&policy, proxy, &req, None).is_ok();
            assert_eq!(want, allowed, "{sa}: the seed's policy");
            // The demo names each ExternalWorkload after its service account.
            let forms = [
                format!("{sa}.booksapp.serviceaccount.identity.linkerd.cluster.local"),
                format!("spiffe://cluster.local/ns/booksapp/sa/{sa}"),
                format!("booksapp/{sa}"),
                format!("booksapp/externalworkload/{sa}"),
                format!("ew/{sa}"),
                format!("deploy/{sa}"),
            ];
            for form in forms {
                let (id, address) = match parse_from(&form, "booksapp", &cluster).unwrap() {
                    Asked::Identity(id) => {
                        let address = address(None, &id, &known, Some(&index));
                        (id, address)
                    }
                    Asked::Workload(ns, name) => {
                        let (address, id) =
                            workload_client(&index, &known, &ns, &name, None).unwrap();
                        (id.to_string(), address)
                    }
                    Asked::Ip(_) => panic!("{form} is not an IP"),
                };
                assert_eq!(id, seen, "{form}");
                let want_ip = index
                    .workload("booksapp", &WorkloadRef::External(sa.into()))
                    .unwrap()
                    .ips[0];
                assert_eq!(
                    address,
                    Address::Workload(want_ip, WorkloadRef::External(sa.into())),
                    "{form}"
                );
                let ip = address.ip();
                let asked = Client {
                    ip,
                    tls: true,
                    identity: Some(&id),
                };
                let got = decide_request(&policy, asked, &req, None).is_ok();
                assert_eq!(
                    got, want,
                    "{form}: diagnose must answer as the proxy decides"
                );
            }
        }
    }

    #[test]
    fn an_unknown_address_matters_only_when_a_network_would_admit_the_client() {
        let dir = tempfile::tempdir().unwrap();
        let seeds = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/seeds");
        std::fs::copy(
            seeds.join("seed002-server-authorization.yaml"),
            dir.path().join("seed.yaml"),
        )
        .unwrap();
        let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: api-server, namespace: my-app, labels: {app: my-api}}\nspec: {containers: [{name: app, ports: [{containerPort: 8080}]}]}\n";
        std::fs::write(dir.path().join("pod.yaml"), pod).unwrap();
        let (index, _) = crate::diagnose_policy::policy_index(dir.path()).unwrap();
        let api = WorkloadRef::Pod("api-server".into());
        let server = index.server("my-app", &api, 8080).unwrap();
        let policy =
            ztmesh_grpc::authz::server_policy(&ztmesh_grpc::inbound::to_proto(&server)).unwrap();
        let req = http::Request::get("/api/users").body(()).unwrap();
        let web = "web-frontend.my-app.serviceaccount.identity.linkerd.cluster.local";
        let legacy = "legacy-service.legacy.serviceaccount.identity.linkerd.cluster.local";
        let cases = [
            (
                web,
                Some((
                    "10.0.0.0/8".to_string(),
                    "serverauthorization/allow-web-to-api".to_string(),
                )),
            ),
            (legacy, None),
        ];
        for (id, want) in cases {
            let client = Client {
                ip: Address::Unknown.ip(),
                tls: true,
                identity: Some(id),
            };
            assert!(decide_request(&policy, client, &req, None).is_err(), "{id}");
            assert_eq!(admitting_network(&policy, client, Some(&req)), want, "{id}");
        }
    }

    #[test]
    fn from_forms() {
        let cluster = ClusterInfo::default();
        let cases = [
            ("127.0.9.4", Some(Asked::Ip("127.0.9.4".parse().unwrap()))),
            (WEBAPP_DNS, Some(Asked::Identity(WEBAPP_DNS.into()))),
            (
                "spiffe://cluster.local/ns/booksapp/sa/webapp",
                Some(Asked::Identity(WEBAPP_DNS.into())),
            ),
            ("spiffe://cluster.local/webapp", None),
            ("webapp", None),
            (
                "booksapp/webapp",
                Some(Asked::Workload(
                    "booksapp".into(),
                    WorkloadName::Any("webapp".into()),
                )),
            ),
            ("booksapp/", None),
            (
                "deploy/webapp",
                Some(Asked::Workload(
                    "client-ns".into(),
                    WorkloadName::App(crate::resource::OwnerKind::Deployment, "webapp".into()),
                )),
            ),
            (
                "po/webapp-1",
                Some(Asked::Workload(
                    "client-ns".into(),
                    WorkloadName::Exact(WorkloadRef::Pod("webapp-1".into())),
                )),
            ),
            ("svc/webapp", None),
        ];
        for (from, want) in cases {
            assert_eq!(parse_from(from, "client-ns", &cluster).ok(), want, "{from}");
        }
    }

    #[test]
    fn the_address_is_given_known_or_said_to_be_unknown() {
        let (index, known) = demo_index();
        let webapp = WorkloadRef::External("webapp".into());
        let given: IpAddr = "203.0.113.7".parse().unwrap();
        let cases = [
            (Some(given), WEBAPP_DNS, Some(&index), Address::Given(given)),
            (
                None,
                WEBAPP_DNS,
                Some(&index),
                Address::Workload("127.0.9.4".parse().unwrap(), webapp),
            ),
            (
                None,
                "nobody.booksapp.serviceaccount.identity.linkerd.cluster.local",
                Some(&index),
                Address::Unknown,
            ),
            (None, WEBAPP_DNS, None, Address::Unknown),
        ];
        for (given, id, index, want) in cases {
            assert_eq!(address(given, id, &known, index), want, "{id}");
        }
        assert_eq!(
            Address::Workload(
                "127.0.9.4".parse().unwrap(),
                WorkloadRef::External("webapp".into())
            )
            .to_string(),
            "127.0.9.4, the address of externalworkload/webapp"
        );
        assert_eq!(Address::Unknown.to_string(), "an unspecified address");
    }
}
