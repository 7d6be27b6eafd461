//! The seed's invariants, each with its evidence and offenders:
//! INV-1 (a workload's certificate identity is its service account's,
//! from the chains the proxies present), INV-6 (every edge between
//! meshed workloads is mTLS: every plaintext edge and its
//! `no_tls_reason`, from the proxies' own metrics), INV-7 (policies are
//! namespace-scoped, from the manifests) and INV-10 (identities on every
//! request series; spans). Pure functions of [`Observed`].

use super::chain::Summary;
use super::mesh::Observed;
use super::result::{CheckResult, Group};
use crate::viz::scrape::Sample;
use std::collections::BTreeMap;
use ztmesh_resources::Resource;

pub(crate) fn checks(mesh: &Observed) -> Vec<CheckResult> {
    vec![inv1(mesh), inv6(mesh), inv7(&mesh.resources), inv10(mesh)]
}

fn label<'a>(s: &'a Sample, k: &str) -> Option<&'a str> {
    s.labels.get(k).map(String::as_str)
}

pub(crate) fn inv1(mesh: &Observed) -> CheckResult {
    let (id, title) = (
        "INV-1",
        "every meshed workload's certificate identity is its service account's",
    );
    let mut evidence = Vec::new();
    let mut offenders = Vec::new();
    // A proxy terminates mesh TLS only for the SNI of its own identity
    // (else it passes the connection through to the app), so a proxy
    // holding another identity's certificate answers the chain read with
    // an error: that is not evidence of compliance, it is an offender.
    let mut unread = Vec::new();
    let mut checked = 0;
    for w in &mesh.workloads {
        let name = w.workload.display();
        let chain = match &w.chain {
            Ok(chain) => chain,
            Err(e) => {
                unread.push(format!(
                    "{name}: no certificate for {} read: {e}",
                    w.workload.identity
                ));
                continue;
            }
        };
        checked += 1;
        let Ok(leaf) = Summary::of(&chain[0]) else {
            offenders.push(format!("{name}: presents an unreadable certificate"));
            continue;
        };
        let want = &w.workload.identity;
        let spiffe = ztmesh_identity::IdentityName::parse_dns(want)
            .ok()
            .map(|n| n.spiffe_id());
        let got = leaf.identity().unwrap_or("(no DNS SAN)");
        evidence.push(format!("{name}: {got} {}", leaf.uri_sans.join(" ")));
        if got != want {
            offenders.push(format!(
                "{name}: certificate for {got}, service account's identity is {want}"
            ));
        } else if let Some(spiffe) = spiffe
            && !leaf.uri_sans.contains(&spiffe)
        {
            offenders.push(format!("{name}: URI SAN is not {spiffe}"));
        }
    }
    if !offenders.is_empty() {
        return CheckResult::fail(
            Group::Compliance,
            id,
            title,
            format!(
                "{} workload(s) hold another identity's certificate",
                offenders.len()
            ),
            "give each workload its own service account's token and restart its proxy",
        )
        .evidence(evidence)
        .offenders(offenders.into_iter().chain(unread));
    }
    if checked == 0 {
        return CheckResult::warn(
            Group::Compliance,
            id,
            title,
            "no proxy presented a certificate for its service account's identity: nothing observed",
            "start the proxies (ztmesh check --proxy)",
        )
        .evidence(evidence)
        .offenders(unread);
    }
    if !unread.is_empty() {
        return CheckResult::warn(
            Group::Compliance,
            id,
            title,
            format!(
                "{checked} workload(s) on their own identity; {} not verified: no certificate for their identity read (a proxy holding another identity's certificate answers so too)",
                unread.len()
            ),
            "run ztmesh check --proxy for the workloads named",
        )
        .evidence(evidence)
        .offenders(unread);
    }
    CheckResult::pass(
        Group::Compliance,
        id,
        title,
        format!("{checked} workload(s) checked, each on its own service account's identity"),
    )
    .evidence(evidence)
}

/// One edge as a proxy's metrics report it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Edge {
    pub(crate) src: String,
    pub(crate) dst: String,
    /// None when mTLS; else the `no_tls_reason`.
    pub(crate) no_tls_reason: Option<String>,
    /// Both ends are meshed workloads.
    pub(crate) meshed: bool,
}

/// Where an edge's client is known not to be: a plaintext inbound edge
/// carries no client identity, so it may be a client outside the mesh or a
/// meshed workload dialing around its own proxy.
pub(crate) const UNKNOWN_CLIENT: &str = "(unknown client)";

/// The edges in `w`'s metrics: `request_total` (HTTP) and `tcp_open_total`
/// (connections), inbound and outbound. `ztmesh check`'s own chain reads
/// are TLS connections without a client certificate that carry no data
/// and are closed at once: a `no_client_certificate` connection series
/// counts only when its connections carried data (`tcp_read_bytes_total`)
/// or are still open (`tcp_open_connections`), as a real client's do.
pub(crate) fn edges(
    name: &str,
    samples: &[Sample],
    by_ip: &BTreeMap<String, String>,
    by_identity: &BTreeMap<String, String>,
) -> BTreeMap<Edge, f64> {
    let used = crate::viz::routes::with_traffic(samples);
    let mut out = BTreeMap::new();
    for s in samples {
        if !(s.name == "request_total" || s.name == "tcp_open_total") || s.value <= 0.0 {
            continue;
        }
        let reason = label(s, "no_tls_reason").map(String::from);
        if crate::viz::routes::handshake_only(s, &used) {
            continue;
        }
        let peer_of =
            |id: Option<&str>| id.map(|i| by_identity.get(i).cloned().unwrap_or(i.to_string()));
        let edge = match label(s, "direction") {
            Some("inbound") => Edge {
                src: peer_of(label(s, "client_id")).unwrap_or_else(|| UNKNOWN_CLIENT.into()),
                dst: name.to_string(),
                meshed: label(s, "client_id").is_some_and(|i| by_identity.contains_key(i)),
                no_tls_reason: reason,
            },
            Some("outbound") => {
                let target = label(s, "target_addr").unwrap_or("?");
                let ip = target.rsplit_once(':').map(|(ip, _)| ip).unwrap_or(target);
                let dst = peer_of(label(s, "server_id"))
                    .or_else(|| by_ip.get(ip).cloned())
                    .or_else(|| label(s, "authority").map(String::from))
                    .unwrap_or_else(|| target.to_string());
                Edge {
                    src: name.to_string(),
                    meshed: by_ip.contains_key(ip)
                        || label(s, "server_id").is_some_and(|i| by_identity.contains_key(i)),
                    dst,
                    no_tls_reason: reason,
                }
            }
            _ => continue,
        };
        *out.entry(edge).or_insert(0.0) += s.value;
    }
    out
}

/// Every workload's edges, merged.
pub(crate) fn all_edges(mesh: &Observed) -> BTreeMap<Edge, f64> {
    let by_ip: BTreeMap<String, String> = mesh
        .workloads
        .iter()
        .map(|w| (w.workload.ip.to_string(), w.workload.display()))
        .collect();
    let by_identity: BTreeMap<String, String> = mesh
        .workloads
        .iter()
        .map(|w| (w.workload.identity.clone(), w.workload.display()))
        .collect();
    let mut out = BTreeMap::new();
    for w in &mesh.workloads {
        if let Ok(m) = &w.metrics {
            for (e, n) in edges(&w.workload.display(), m, &by_ip, &by_identity) {
                *out.entry(e).or_insert(0.0) += n;
            }
        }
    }
    out
}

pub(crate) fn inv6(mesh: &Observed) -> CheckResult {
    let (id, title) = ("INV-6", "every edge between meshed workloads is mTLS");
    let edges = all_edges(mesh);
    let describe = |e: &Edge, n: f64| match &e.no_tls_reason {
        None => format!("{} -> {}: mTLS ({n} requests/connections)", e.src, e.dst),
        Some(r) => format!(
            "{} -> {}: plaintext, no_tls_reason={r} ({n} requests/connections)",
            e.src, e.dst
        ),
    };
    let evidence: Vec<String> = edges.iter().map(|(e, n)| describe(e, *n)).collect();
    let plain_meshed: Vec<String> = edges
        .iter()
        .filter(|(e, _)| e.meshed && e.no_tls_reason.is_some())
        .map(|(e, n)| describe(e, *n))
        .collect();
    let plain_other: Vec<String> = edges
        .iter()
        .filter(|(e, _)| !e.meshed && e.no_tls_reason.is_some())
        .map(|(e, n)| describe(e, *n))
        .collect();
    let mtls = edges.keys().filter(|e| e.no_tls_reason.is_none()).count();
    if !plain_meshed.is_empty() {
        return CheckResult::fail(
            Group::Compliance,
            id,
            title,
            format!("{} plaintext edge(s) between meshed workloads", plain_meshed.len()),
            "mesh both ends with their proxies and check the Destination answers the server's identity",
        )
        .evidence(evidence)
        .offenders(plain_meshed.into_iter().chain(plain_other));
    }
    if !plain_other.is_empty() {
        let first = edges
            .keys()
            .find(|e| !e.meshed && e.no_tls_reason.is_some())
            .and_then(|e| e.no_tls_reason.clone())
            .unwrap_or_default();
        return CheckResult::warn(
            Group::Compliance,
            id,
            title,
            format!(
                "{mtls} mTLS edge(s); {} plaintext edge(s) with an unknown client or a destination outside the mesh (no_tls_reason={first})",
                plain_other.len()
            ),
            "find the client (the proxy's log names its address): mesh it, or deny unauthenticated clients on that port; a meshed workload must dial through its own proxy",
        )
        .evidence(evidence)
        .offenders(plain_other);
    }
    if edges.is_empty() {
        return CheckResult::warn(
            Group::Compliance,
            id,
            title,
            "no traffic observed in the proxies' metrics",
            "send traffic through the mesh, then check again",
        );
    }
    CheckResult::pass(
        Group::Compliance,
        id,
        title,
        format!("all {mtls} edge(s) are mTLS"),
    )
    .evidence(evidence)
}

/// What in `r` admits another namespace's identities or unauthenticated
/// networks.
pub(crate) fn unscoped(r: &Resource) -> Vec<String> {
    let key = r.key();
    let ns = key.namespace.as_str();
    let mut out = Vec::new();
    let identity = |id: &str, out: &mut Vec<String>| {
        match super::grants::identity_namespace(id) {
        _ if id == "*" => out.push(format!("{key}: admits any mesh identity (\"*\")")),
        Some("*") => out.push(format!("{key}: admits {id} of every namespace")),
        Some(n) if n != ns => out.push(format!("{key}: admits {id} of namespace {n}")),
        Some(_) => {}
        None => out.push(format!(
            "{key}: admits {id}, whose namespace cannot be told (a suffix wildcard or not SA.NS.serviceaccount.identity...): it may reach every namespace"
        )),
    }
    };
    match r {
        Resource::MeshTlsAuthentication(o) => {
            for id in o.spec.identities.iter().flatten() {
                identity(id, &mut out);
            }
            for r in o.spec.identity_refs.iter().flatten() {
                if r.name == "*" {
                    out.push(format!("{key}: admits every {} (name \"*\")", r.kind));
                    continue;
                }
                if let Some(n) = &r.namespace
                    && n != ns
                {
                    out.push(format!("{key}: admits {} {n}/{}", r.kind, r.name));
                }
                if r.kind.eq_ignore_ascii_case("namespace") && r.name != ns {
                    out.push(format!("{key}: admits namespace {}", r.name));
                }
            }
        }
        Resource::AuthorizationPolicy(o) => {
            let refs = &o.spec.required_authentication_refs;
            if refs.is_empty() {
                out.push(format!(
                    "{key}: no requiredAuthenticationRefs: admits every client, unauthenticated too"
                ));
            }
            let authenticates = refs.iter().any(|r| {
                r.kind.eq_ignore_ascii_case("MeshTLSAuthentication")
                    || r.kind.eq_ignore_ascii_case("ServiceAccount")
            });
            if !refs.is_empty() && !authenticates {
                out.push(format!(
                    "{key}: no MeshTLSAuthentication or ServiceAccount required: admits unauthenticated clients"
                ));
            }
            for r in refs {
                if let Some(n) = &r.namespace
                    && n != ns
                {
                    out.push(format!(
                        "{key}: requires {} {n}/{} of another namespace",
                        r.kind, r.name
                    ));
                }
            }
        }
        Resource::NetworkAuthentication(o) => {
            let nets: Vec<String> = o
                .spec
                .networks
                .iter()
                .map(|n| n.cidr.0.to_string())
                .collect();
            out.push(format!(
                "{key}: admits unauthenticated clients from {}",
                nets.join(", ")
            ));
        }
        Resource::ServerAuthorization(o) => {
            let c = &o.spec.client;
            if c.unauthenticated {
                out.push(format!("{key}: admits unauthenticated clients"));
            }
            if let Some(m) = &c.mesh_tls {
                if m.unauthenticated_tls {
                    out.push(format!("{key}: admits TLS clients without identity"));
                }
                for id in m.identities.iter().flatten() {
                    identity(id, &mut out);
                }
                for sa in m.service_accounts.iter().flatten() {
                    if let Some(n) = &sa.namespace
                        && n != ns
                    {
                        out.push(format!("{key}: admits service account {n}/{}", sa.name));
                    }
                }
            }
        }
        _ => {}
    }
    out
}

pub(crate) fn inv7(resources: &[Resource]) -> CheckResult {
    let (id, title) = ("INV-7", "policies are namespace-scoped");
    let policies: Vec<String> = resources
        .iter()
        .filter(|r| {
            matches!(
                r,
                Resource::MeshTlsAuthentication(_)
                    | Resource::NetworkAuthentication(_)
                    | Resource::ServerAuthorization(_)
                    | Resource::AuthorizationPolicy(_)
            )
        })
        .map(|r| r.key().to_string())
        .collect();
    // The manifests as written, then the policy as compiled for each
    // declared workload port (what the proxies enforce).
    let offenders: Vec<String> = resources
        .iter()
        .flat_map(unscoped)
        .chain(super::grants::compiled(resources))
        .collect();
    if resources.is_empty() {
        return super::result::not_observed(id, title, "no manifests observed");
    }
    if offenders.is_empty() {
        let detail = format!(
            "{} authorization object(s), each admitting only its own namespace's identities",
            policies.len()
        );
        return CheckResult::pass(Group::Compliance, id, title, detail).evidence(policies);
    }
    CheckResult::fail(
        Group::Compliance,
        id,
        title,
        format!("{} grant(s) reach beyond their namespace or admit unauthenticated clients", offenders.len()),
        "list only the namespace's own identities in MeshTLSAuthentications; drop NetworkAuthentications and unauthenticated clients",
    )
    .evidence(policies)
    .offenders(offenders)
}

pub(crate) fn inv10(mesh: &Observed) -> CheckResult {
    let (id, title) = ("INV-10", "identities appear in all metrics and traces");
    let mut series = 0;
    let mut offenders = Vec::new();
    for w in &mesh.workloads {
        for s in w
            .metrics
            .iter()
            .flatten()
            .filter(|s| s.name == "request_total")
        {
            series += 1;
            let ok = match (label(s, "direction"), label(s, "tls")) {
                (Some("inbound"), Some("true")) => label(s, "client_id").is_some(),
                (Some("outbound"), Some("true")) => label(s, "server_id").is_some(),
                (_, Some("no_identity")) => label(s, "no_tls_reason").is_some(),
                _ => false,
            };
            if !ok {
                let labels: Vec<String> = s
                    .labels
                    .iter()
                    .map(|(k, v)| format!("{k}=\"{v}\""))
                    .collect();
                offenders.push(format!(
                    "{}: request_total{{{}}}",
                    w.workload.display(),
                    labels.join(",")
                ));
            }
        }
    }
    let spans = "spans: not observed (check reads no trace collector); the proxy sets ztmesh.client_id on inbound spans, and no server identity on outbound spans".to_string();
    let evidence = [
        format!(
            "{series} request_total series, each with client_id (inbound), server_id (outbound) or no_tls_reason"
        ),
        spans.clone(),
    ];
    if !offenders.is_empty() {
        return CheckResult::fail(
            Group::Compliance,
            id,
            title,
            format!(
                "{} request series without an identity or a reason",
                offenders.len()
            ),
            "upgrade the proxies named: their request metrics lack identity labels",
        )
        .evidence(evidence)
        .offenders(offenders);
    }
    if series == 0 {
        return CheckResult::warn(
            Group::Compliance,
            id,
            title,
            "no request series observed",
            "send traffic through the mesh, then check again",
        )
        .evidence(evidence);
    }
    CheckResult::warn(
        Group::Compliance,
        id,
        title,
        format!("metrics: all {series} request series carry identities; {spans}"),
        "configure a trace collector (LINKERD2_PROXY_TRACE_COLLECTOR_SVC_ADDR) and check its spans' identity attributes",
    )
    .evidence(evidence)
}

#[cfg(test)]
pub(crate) mod tests;
