//! What the schemas cannot say: each check quotes the rule it enforces and
//! reports the field it concerns. Errors reject the object; warnings load it.

use crate::diagnostic::DocContext;
use crate::meta::LabelSelector;
use crate::object::{Object, Resource};
use crate::policy::*;
use crate::profile::{RequestMatch, ServiceProfileSpec};
use crate::route::*;
use crate::workload::ExternalWorkloadSpec;

/// Linkerd's default inbound policies, the values `accessPolicy` may take.
pub const DEFAULT_POLICIES: [&str; 6] = [
    "all-unauthenticated",
    "all-authenticated",
    "cluster-authenticated",
    "cluster-unauthenticated",
    "deny",
    "audit",
];

const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

pub(crate) fn resource(resource: &Resource, cx: &mut DocContext<'_>) {
    let meta = resource.metadata();
    match meta.name.as_deref() {
        None | Some("") => cx.error(Some("metadata.name"), "required"),
        Some(name) if !is_dns_subdomain(name) => cx.error(
            Some("metadata.name"),
            format!("{name:?} is not a valid name (lowercase letters, digits, '-' and '.')"),
        ),
        Some(_) => {}
    }
    match resource {
        Resource::Server(o) => server(o, cx),
        Resource::ServerAuthorization(o) => server_authorization(&o.spec, cx),
        Resource::AuthorizationPolicy(o) => authorization_policy(&o.spec, cx),
        Resource::MeshTlsAuthentication(o) => meshtls_authentication(&o.spec, cx),
        Resource::NetworkAuthentication(o) => {
            if o.spec.networks.is_empty() {
                cx.error(Some("spec.networks"), "at least one network is required");
            }
        }
        Resource::HttpRoute(o) => http_route(&o.spec, cx),
        Resource::GrpcRoute(o) => grpc_route(&o.spec, cx),
        Resource::ServiceProfile(o) => service_profile(&o.spec, cx),
        Resource::ExternalWorkload(o) => external_workload(&o.spec, cx),
        Resource::ClusterFederatedTrustDomain(o) => federated_trust_domain(&o.spec, cx),
        Resource::Pod(p) => {
            if p.spec.is_none() {
                cx.error(
                    Some("spec"),
                    "a Pod needs a spec (containers, serviceAccountName)",
                );
            }
        }
        Resource::Service(s) => {
            if s.spec.is_none() {
                cx.error(Some("spec"), "a Service needs a spec (selector, ports)");
            }
        }
        Resource::Namespace(_) | Resource::ServiceAccount(_) => {}
    }
}

fn server(o: &Object<ServerSpec>, cx: &mut DocContext<'_>) {
    let spec = &o.spec;
    // "A Server selects pods (podSelector) or external workloads
    // (externalWorkloadSelector, v1beta2 and later), exactly one of them."
    match (&spec.pod_selector, &spec.external_workload_selector) {
        (None, None) => cx.error(
            Some("spec"),
            "a Server needs podSelector or externalWorkloadSelector",
        ),
        (Some(_), Some(_)) => cx.error(
            Some("spec"),
            "podSelector and externalWorkloadSelector are mutually exclusive",
        ),
        _ => {}
    }
    if spec.external_workload_selector.is_some() && matches!(o.version(), "v1alpha1" | "v1beta1") {
        cx.error(
            Some("spec.externalWorkloadSelector"),
            format!(
                "not in Server {}; use policy.linkerd.io/v1beta2 or later",
                o.version()
            ),
        );
    }
    selector(spec.pod_selector.as_ref(), "spec.podSelector", cx);
    selector(
        spec.external_workload_selector.as_ref(),
        "spec.externalWorkloadSelector",
        cx,
    );
    match &spec.port {
        Port::Number(0) => cx.error(Some("spec.port"), "port 0 is not a port"),
        Port::Name(name) if !is_port_name(name) => cx.error(
            Some("spec.port"),
            format!("{name:?} is neither a port number nor a port name (up to 15 lowercase letters, digits and '-')"),
        ),
        _ => {}
    }
    if let Some(policy) = &spec.access_policy {
        if o.version() != "v1beta3" {
            cx.error(
                Some("spec.accessPolicy"),
                format!(
                    "not in Server {}; use policy.linkerd.io/v1beta3",
                    o.version()
                ),
            );
        } else if !DEFAULT_POLICIES.contains(&policy.as_str()) {
            cx.error(
                Some("spec.accessPolicy"),
                format!("{policy:?} is not one of {}", DEFAULT_POLICIES.join(", ")),
            );
        }
    }
}

fn server_authorization(spec: &ServerAuthorizationSpec, cx: &mut DocContext<'_>) {
    // "server: name or selector, exactly one."
    match (&spec.server.name, &spec.server.selector) {
        (None, None) => cx.error(Some("spec.server"), "name or selector is required"),
        (Some(_), Some(_)) => cx.error(
            Some("spec.server"),
            "name and selector are mutually exclusive",
        ),
        _ => {}
    }
    selector(spec.server.selector.as_ref(), "spec.server.selector", cx);
    // "client: unauthenticated, or meshTLS."
    match (&spec.client.mesh_tls, spec.client.unauthenticated) {
        (None, false) => cx.error(
            Some("spec.client"),
            "authorizes no clients: set meshTLS or unauthenticated: true",
        ),
        (Some(_), true) => cx.error(
            Some("spec.client"),
            "meshTLS and unauthenticated are mutually exclusive",
        ),
        _ => {}
    }
    if let Some(mtls) = &spec.client.mesh_tls {
        let ids = mtls.identities.as_ref().is_some_and(|v| !v.is_empty())
            || mtls
                .service_accounts
                .as_ref()
                .is_some_and(|v| !v.is_empty());
        match (mtls.unauthenticated_tls, ids) {
            (false, false) => cx.error(
                Some("spec.client.meshTLS"),
                "authorizes no clients: list identities or serviceAccounts, or set unauthenticatedTLS: true",
            ),
            (true, true) => cx.error(Some("spec.client.meshTLS"), "unauthenticatedTLS excludes identities and serviceAccounts"),
            _ => {}
        }
    }
}

fn authorization_policy(spec: &AuthorizationPolicySpec, cx: &mut DocContext<'_>) {
    let t = &spec.target_ref;
    let ok = t.is_kind("policy.linkerd.io", "Server")
        || t.is_kind("policy.linkerd.io", "HTTPRoute")
        || t.is_kind("gateway.networking.k8s.io", "HTTPRoute")
        || t.is_kind("gateway.networking.k8s.io", "GRPCRoute")
        || t.is_kind("", "Namespace")
        || t.is_kind("core", "Namespace");
    if !ok {
        cx.error(
            Some("spec.targetRef"),
            format!(
                "{}/{} cannot be targeted; target a policy.linkerd.io Server or HTTPRoute, a gateway.networking.k8s.io HTTPRoute or GRPCRoute, or a Namespace",
                t.group.as_deref().unwrap_or(""),
                t.kind
            ),
        );
    }
    if spec.required_authentication_refs.is_empty() {
        cx.warn(
            Some("spec.requiredAuthenticationRefs"),
            "empty: the policy admits every client on every network; list a MeshTLSAuthentication or NetworkAuthentication to restrict it",
        );
    }
    for (i, r) in spec.required_authentication_refs.iter().enumerate() {
        let ok = r.is_kind("policy.linkerd.io", "MeshTLSAuthentication")
            || r.is_kind("policy.linkerd.io", "NetworkAuthentication")
            || r.is_kind("", "ServiceAccount")
            || r.is_kind("core", "ServiceAccount");
        if !ok {
            cx.error(
                Some(&format!("spec.requiredAuthenticationRefs[{i}]")),
                format!(
                    "{}/{} is not an authentication; use policy.linkerd.io MeshTLSAuthentication or NetworkAuthentication, or a ServiceAccount",
                    r.group.as_deref().unwrap_or(""),
                    r.kind
                ),
            );
        }
    }
}

fn meshtls_authentication(spec: &MeshTlsAuthenticationSpec, cx: &mut DocContext<'_>) {
    let ids = spec.identities.as_ref().is_some_and(|v| !v.is_empty());
    let refs = spec.identity_refs.as_ref().is_some_and(|v| !v.is_empty());
    match (ids, refs) {
        (false, false) => cx.error(Some("spec"), "identities or identityRefs is required"),
        (true, true) => cx.error(
            Some("spec"),
            "identities and identityRefs are mutually exclusive",
        ),
        _ => {}
    }
    for (i, id) in spec.identities.iter().flatten().enumerate() {
        // "*" or "*.suffix" or an exact DNS-like name, or an exact SPIFFE
        // ID (matched exactly, never by suffix, as Linkerd does).
        if let Some(rest) = id.strip_prefix("spiffe://") {
            let ok = rest.split_once('/').is_some_and(|(domain, path)| {
                is_dns_subdomain(domain) && !path.is_empty() && !path.contains('*')
            });
            if !ok {
                cx.error(
                    Some(&format!("spec.identities[{i}]")),
                    format!("{id:?} is not a SPIFFE ID (spiffe://TRUST_DOMAIN/PATH)"),
                );
            }
            continue;
        }
        let body = id.strip_prefix("*.").unwrap_or(id);
        if id != "*" && (body.is_empty() || body.contains('*') || !is_dns_subdomain(body)) {
            cx.error(
                Some(&format!("spec.identities[{i}]")),
                format!("{id:?} is not an identity, \"*\", or \"*.suffix\""),
            );
        }
    }
    for (i, r) in spec.identity_refs.iter().flatten().enumerate() {
        if !(r.is_kind("", "ServiceAccount")
            || r.is_kind("", "Namespace")
            || r.is_kind("core", "ServiceAccount")
            || r.is_kind("core", "Namespace"))
        {
            cx.error(
                Some(&format!("spec.identityRefs[{i}]")),
                format!("{} is not ServiceAccount or Namespace", r.kind),
            );
        }
    }
}

fn http_route(spec: &HttpRouteSpec, cx: &mut DocContext<'_>) {
    if spec.parent_refs.as_ref().is_none_or(|p| p.is_empty()) {
        cx.warn(
            Some("spec.parentRefs"),
            "no parentRefs: the route attaches to nothing",
        );
    }
    for (r, rule) in spec.rules.iter().flatten().enumerate() {
        for (m, matched) in rule.matches.iter().flatten().enumerate() {
            let at = format!("spec.rules[{r}].matches[{m}]");
            if let Some(path) = &matched.path {
                let value = path.value.as_deref().unwrap_or("/");
                match path.kind.unwrap_or(PathMatchType::PathPrefix) {
                    PathMatchType::RegularExpression => {
                        regex(value, &format!("{at}.path.value"), cx)
                    }
                    _ if !value.starts_with('/') => cx.error(
                        Some(&format!("{at}.path.value")),
                        format!("{value:?} must start with '/'"),
                    ),
                    _ => {}
                }
            }
            if let Some(method) = &matched.method
                && !METHODS.contains(&method.as_str())
            {
                cx.error(
                    Some(&format!("{at}.method")),
                    format!("{method:?} is not one of {}", METHODS.join(", ")),
                );
            }
            for (h, header) in matched.headers.iter().flatten().enumerate() {
                if header.kind == Some(ValueMatchType::RegularExpression) {
                    regex(&header.value, &format!("{at}.headers[{h}].value"), cx);
                }
            }
            for (q, query) in matched.query_params.iter().flatten().enumerate() {
                if query.kind == Some(ValueMatchType::RegularExpression) {
                    regex(&query.value, &format!("{at}.queryParams[{q}].value"), cx);
                }
            }
        }
        if let Some(t) = &rule.timeouts {
            for (name, value) in [
                ("request", &t.request),
                ("backendRequest", &t.backend_request),
            ] {
                if let Some(v) = value
                    && let Err(e) = crate::duration::parse(v)
                {
                    cx.error(
                        Some(&format!("spec.rules[{r}].timeouts.{name}")),
                        e.to_string(),
                    );
                }
            }
        }
    }
}

fn grpc_route(spec: &GrpcRouteSpec, cx: &mut DocContext<'_>) {
    if spec.parent_refs.as_ref().is_none_or(|p| p.is_empty()) {
        cx.warn(
            Some("spec.parentRefs"),
            "no parentRefs: the route attaches to nothing",
        );
    }
    for (r, rule) in spec.rules.iter().flatten().enumerate() {
        for (m, matched) in rule.matches.iter().flatten().enumerate() {
            if let Some(method) = &matched.method {
                let at = format!("spec.rules[{r}].matches[{m}].method");
                if method.service.is_none() && method.method.is_none() {
                    cx.error(Some(&at), "service or method is required");
                }
                if method.kind == Some(ValueMatchType::RegularExpression) {
                    for v in [&method.service, &method.method].into_iter().flatten() {
                        regex(v, &at, cx);
                    }
                }
            }
        }
    }
}

fn service_profile(spec: &ServiceProfileSpec, cx: &mut DocContext<'_>) {
    for (i, route) in spec.routes.iter().flatten().enumerate() {
        let at = format!("spec.routes[{i}]");
        request_match(&route.condition, &format!("{at}.condition"), cx);
        if let Some(t) = &route.timeout
            && let Err(e) = crate::duration::parse(t)
        {
            cx.error(Some(&format!("{at}.timeout")), e.to_string());
        }
    }
    if let Some(budget) = &spec.retry_budget {
        if !(0.0..=1000.0).contains(&budget.retry_ratio) {
            cx.error(
                Some("spec.retryBudget.retryRatio"),
                "must be between 0 and 1000",
            );
        }
        if let Err(e) = crate::duration::parse(&budget.ttl) {
            cx.error(Some("spec.retryBudget.ttl"), e.to_string());
        }
    }
}

fn request_match(m: &RequestMatch, at: &str, cx: &mut DocContext<'_>) {
    let set = [
        m.all.is_some(),
        m.any.is_some(),
        m.not.is_some(),
        m.path_regex.is_some(),
        m.method.is_some(),
    ];
    if !set.contains(&true) {
        cx.error(
            Some(at),
            "a condition needs one of all, any, not, pathRegex, method",
        );
    }
    if let Some(re) = &m.path_regex {
        regex(re, &format!("{at}.pathRegex"), cx);
    }
    for (i, sub) in m.all.iter().flatten().enumerate() {
        request_match(sub, &format!("{at}.all[{i}]"), cx);
    }
    for (i, sub) in m.any.iter().flatten().enumerate() {
        request_match(sub, &format!("{at}.any[{i}]"), cx);
    }
    if let Some(sub) = &m.not {
        request_match(sub, &format!("{at}.not"), cx);
    }
}

fn external_workload(spec: &ExternalWorkloadSpec, cx: &mut DocContext<'_>) {
    if spec.mesh_tls.identity.is_empty() {
        cx.error(Some("spec.meshTLS.identity"), "required");
    }
    if spec.mesh_tls.server_name.is_empty() {
        cx.error(Some("spec.meshTLS.serverName"), "required");
    }
    if spec.workload_ips.as_ref().is_none_or(|ips| ips.is_empty()) {
        cx.error(Some("spec.workloadIPs"), "at least one address is required");
    }
    for (i, port) in spec.ports.iter().flatten().enumerate() {
        if port.port == 0 {
            cx.error(
                Some(&format!("spec.ports[{i}].port")),
                "port 0 is not a port",
            );
        }
    }
}

fn selector(sel: Option<&LabelSelector>, at: &str, cx: &mut DocContext<'_>) {
    if let Some(sel) = sel
        && let Err(e) = sel.validate()
    {
        cx.error(Some(at), e.to_string());
    }
}

fn regex(re: &str, at: &str, cx: &mut DocContext<'_>) {
    if let Err(e) = regex::Regex::new(re) {
        cx.error(
            Some(at),
            format!("{re:?} is not a valid regular expression: {e}"),
        );
    }
}

fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// IANA service name: 1-15 of [a-z0-9-], at least one letter, no leading/trailing '-'.
fn is_port_name(s: &str) -> bool {
    (1..=15).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && s.bytes().any(|b| b.is_ascii_lowercase())
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A trust domain name as SPIFFE allows it: lowercase letters, digits,
/// '-', '.' and '_'.
pub(crate) fn is_trust_domain(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._".contains(&b))
}

fn federated_trust_domain(
    spec: &crate::federation::ClusterFederatedTrustDomainSpec,
    cx: &mut DocContext<'_>,
) {
    use crate::federation::ProfileType;
    if !is_trust_domain(&spec.trust_domain) {
        cx.error(
            Some("spec.trustDomain"),
            format!(
                "{:?} is not a trust domain name (lowercase letters, digits, '-', '.', '_')",
                spec.trust_domain
            ),
        );
    }
    let url = &spec.bundle_endpoint_url;
    let authority = url
        .strip_prefix("https://")
        .map(|rest| rest.split(['/', '?', '#']).next().unwrap_or_default());
    if !matches!(authority, Some(a) if !a.is_empty() && !a.contains('@')) {
        cx.error(
            Some("spec.bundleEndpointURL"),
            format!("{url:?} is not an https:// URL with a host"),
        );
    }
    if spec.bundle_endpoint_profile.profile == ProfileType::HttpsSpiffe {
        cx.error(
            Some("spec.bundleEndpointProfile.type"),
            "the https_spiffe profile is not supported; use https_web (the endpoint's certificate verified by a Web PKI CA)",
        );
    }
    if spec.bundle_endpoint_profile.endpoint_spiffe_id.is_some() {
        cx.warn(
            Some("spec.bundleEndpointProfile.endpointSPIFFEID"),
            "ignored: it belongs to the https_spiffe profile",
        );
    }
}
