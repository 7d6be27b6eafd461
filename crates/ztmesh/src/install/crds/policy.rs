//! policy.linkerd.io: Server, ServerAuthorization, AuthorizationPolicy,
//! MeshTLSAuthentication, NetworkAuthentication (ztmesh-resources'
//! `policy` module, field for field).

use super::crd::{Crd, Version, use_instead};
use crate::install::schema::{Schema, array, map, obj, obj_req};

const GROUP: &str = "policy.linkerd.io";

pub(super) fn label_selector() -> Schema {
    obj(vec![
        ("matchLabels", map(Schema::Str)),
        (
            "matchExpressions",
            array(obj_req(
                vec![
                    ("key", Schema::Str),
                    (
                        "operator",
                        Schema::Enum(&["In", "NotIn", "Exists", "DoesNotExist"]),
                    ),
                    ("values", array(Schema::Str)),
                ],
                &["key", "operator"],
            )),
        ),
    ])
}

/// A group/kind/name reference (AuthorizationPolicy, MeshTLSAuthentication).
pub(super) fn target_ref() -> Schema {
    obj_req(
        vec![
            ("group", Schema::Str),
            ("kind", Schema::Str),
            ("name", Schema::Str),
            ("namespace", Schema::Str),
        ],
        &["kind", "name"],
    )
}

fn networks() -> Schema {
    array(obj_req(
        vec![("cidr", Schema::Str), ("except", array(Schema::Str))],
        &["cidr"],
    ))
}

fn server(version: &str) -> Schema {
    let mut props = vec![
        ("podSelector", label_selector()),
        ("port", Schema::IntOrStr),
        (
            "proxyProtocol",
            Schema::Enum(&["unknown", "HTTP/1", "HTTP/2", "gRPC", "opaque", "TLS"]),
        ),
    ];
    if matches!(version, "v1beta2" | "v1beta3") {
        props.push(("externalWorkloadSelector", label_selector()));
    }
    if version == "v1beta3" {
        props.push(("accessPolicy", Schema::Str));
    }
    obj_req(props, &["port"])
}

fn server_authorization() -> Schema {
    obj_req(
        vec![
            (
                "server",
                obj(vec![("name", Schema::Str), ("selector", label_selector())]),
            ),
            (
                "client",
                obj(vec![
                    ("networks", networks()),
                    (
                        "meshTLS",
                        obj(vec![
                            ("unauthenticatedTLS", Schema::Bool),
                            ("identities", array(Schema::Str)),
                            (
                                "serviceAccounts",
                                array(obj_req(
                                    vec![("name", Schema::Str), ("namespace", Schema::Str)],
                                    &["name"],
                                )),
                            ),
                        ]),
                    ),
                    ("unauthenticated", Schema::Bool),
                ]),
            ),
        ],
        &["server", "client"],
    )
}

pub(super) fn crds() -> Vec<Crd> {
    let dep = |kind, old, new| use_instead(GROUP, kind, old, new);
    vec![
        Crd {
            group: GROUP,
            kind: "Server",
            plural: "servers",
            short_names: &["srv"],
            versions: vec![
                Version::new("v1alpha1", server("v1alpha1"))
                    .deprecated(dep("Server", "v1alpha1", "v1beta3")),
                Version::new("v1beta1", server("v1beta1"))
                    .deprecated(dep("Server", "v1beta1", "v1beta3")),
                Version::new("v1beta2", server("v1beta2")),
                Version::new("v1beta3", server("v1beta3")).storage(),
            ],
        },
        Crd {
            group: GROUP,
            kind: "ServerAuthorization",
            plural: "serverauthorizations",
            short_names: &["saz", "serverauthz", "srvauthz"],
            versions: vec![
                Version::new("v1alpha1", server_authorization())
                    .deprecated(dep("ServerAuthorization", "v1alpha1", "v1beta1")),
                Version::new("v1beta1", server_authorization()).storage(),
                // Not a Linkerd version: the seeds write it, so it is served,
                // with v1beta1's schema, and ztmesh loads it as v1beta1.
                Version::new("v1beta2", server_authorization()).deprecated(format!(
                    "{GROUP}/v1beta2 ServerAuthorization is not a version Linkerd serves; use {GROUP}/v1beta1 ServerAuthorization"
                )),
            ],
        },
        Crd {
            group: GROUP,
            kind: "AuthorizationPolicy",
            plural: "authorizationpolicies",
            short_names: &["authzpolicy"],
            versions: vec![
                Version::new(
                    "v1alpha1",
                    obj_req(
                        vec![
                            ("targetRef", target_ref()),
                            ("requiredAuthenticationRefs", array(target_ref())),
                        ],
                        &["targetRef", "requiredAuthenticationRefs"],
                    ),
                )
                .storage(),
            ],
        },
        Crd {
            group: GROUP,
            kind: "MeshTLSAuthentication",
            plural: "meshtlsauthentications",
            short_names: &["meshtlsauthn"],
            versions: vec![
                Version::new(
                    "v1alpha1",
                    obj(vec![
                        ("identities", array(Schema::Str)),
                        ("identityRefs", array(target_ref())),
                    ]),
                )
                .storage(),
            ],
        },
        Crd {
            group: GROUP,
            kind: "NetworkAuthentication",
            plural: "networkauthentications",
            short_names: &["netauthn", "networkauthn"],
            versions: vec![
                Version::new(
                    "v1alpha1",
                    obj_req(vec![("networks", networks())], &["networks"]),
                )
                .storage(),
            ],
        },
    ]
}
