//! HTTPRoute (policy.linkerd.io and gateway.networking.k8s.io) and
//! GRPCRoute (ztmesh-resources' `route` module). Filters are kept as
//! written, as ztmesh-resources keeps them.

use super::crd::{Crd, GATEWAY_GROUP, Version, use_instead};
use crate::install::schema::{Schema, array, obj, obj_req};

fn parent_ref() -> Schema {
    obj_req(
        vec![
            ("group", Schema::Str),
            ("kind", Schema::Str),
            ("namespace", Schema::Str),
            ("name", Schema::Str),
            ("sectionName", Schema::Str),
            ("port", Schema::Int),
        ],
        &["name"],
    )
}

fn backend_ref() -> Schema {
    obj_req(
        vec![
            ("group", Schema::Str),
            ("kind", Schema::Str),
            ("name", Schema::Str),
            ("namespace", Schema::Str),
            ("port", Schema::Int),
            ("weight", Schema::Int),
            ("filters", array(Schema::AnyObj)),
        ],
        &["name"],
    )
}

fn value_match() -> Schema {
    obj_req(
        vec![
            ("type", Schema::Enum(&["Exact", "RegularExpression"])),
            ("name", Schema::Str),
            ("value", Schema::Str),
        ],
        &["name", "value"],
    )
}

fn http_route() -> Schema {
    let path = obj(vec![
        (
            "type",
            Schema::Enum(&["Exact", "PathPrefix", "RegularExpression"]),
        ),
        ("value", Schema::Str),
    ]);
    let matches = array(obj(vec![
        ("path", path),
        ("headers", array(value_match())),
        ("queryParams", array(value_match())),
        ("method", Schema::Str),
    ]));
    let rules = array(obj(vec![
        ("matches", matches),
        ("filters", array(Schema::AnyObj)),
        ("backendRefs", array(backend_ref())),
        (
            "timeouts",
            obj(vec![
                ("request", Schema::Str),
                ("backendRequest", Schema::Str),
            ]),
        ),
    ]));
    obj(vec![
        ("parentRefs", array(parent_ref())),
        ("hostnames", array(Schema::Str)),
        ("rules", rules),
    ])
}

fn grpc_route() -> Schema {
    let method = obj(vec![
        ("type", Schema::Enum(&["Exact", "RegularExpression"])),
        ("service", Schema::Str),
        ("method", Schema::Str),
    ]);
    let rules = array(obj(vec![
        (
            "matches",
            array(obj(vec![
                ("method", method),
                ("headers", array(value_match())),
            ])),
        ),
        ("filters", array(Schema::AnyObj)),
        ("backendRefs", array(backend_ref())),
    ]));
    obj(vec![
        ("parentRefs", array(parent_ref())),
        ("hostnames", array(Schema::Str)),
        ("rules", rules),
    ])
}

pub(super) fn crds() -> Vec<Crd> {
    let route = |name| Version::new(name, http_route()).with_status();
    vec![
        Crd {
            group: "policy.linkerd.io",
            kind: "HTTPRoute",
            plural: "httproutes",
            short_names: &[],
            versions: vec![
                route("v1alpha1"),
                route("v1beta1"),
                route("v1beta2"),
                route("v1beta3").storage(),
            ],
        },
        Crd {
            group: GATEWAY_GROUP,
            kind: "HTTPRoute",
            plural: "httproutes",
            short_names: &[],
            versions: vec![route("v1").storage(), route("v1beta1")],
        },
        Crd {
            group: GATEWAY_GROUP,
            kind: "GRPCRoute",
            plural: "grpcroutes",
            short_names: &[],
            versions: vec![
                Version::new("v1", grpc_route()).storage().with_status(),
                Version::new("v1alpha2", grpc_route())
                    .with_status()
                    .deprecated(use_instead(GATEWAY_GROUP, "GRPCRoute", "v1alpha2", "v1")),
            ],
        },
    ]
}
