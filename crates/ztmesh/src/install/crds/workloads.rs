//! linkerd.io ServiceProfile and workload.linkerd.io ExternalWorkload
//! (ztmesh-resources' `profile` and `workload` modules).

use super::crd::{Crd, Version};
use crate::install::schema::{Schema, array, obj, obj_req};

/// ServiceProfile's request and response matches nest (`all`, `any`,
/// `not`); a structural schema cannot recurse, so nesting is written out
/// to this depth and kept as written below it.
const MATCH_DEPTH: usize = 3;

fn request_match(depth: usize) -> Schema {
    let mut props = vec![("pathRegex", Schema::Str), ("method", Schema::Str)];
    nest(&mut props, depth, request_match);
    obj(props)
}

fn response_match(depth: usize) -> Schema {
    let mut props = vec![(
        "status",
        obj(vec![("min", Schema::Int), ("max", Schema::Int)]),
    )];
    nest(&mut props, depth, response_match);
    obj(props)
}

fn nest(props: &mut Vec<(&'static str, Schema)>, depth: usize, inner: fn(usize) -> Schema) {
    let below = if depth == 0 {
        Schema::AnyObj
    } else {
        inner(depth - 1)
    };
    props.push(("all", array(below.clone())));
    props.push(("any", array(below.clone())));
    props.push(("not", below));
}

fn service_profile() -> Schema {
    obj(vec![
        (
            "routes",
            array(obj_req(
                vec![
                    ("name", Schema::Str),
                    ("condition", request_match(MATCH_DEPTH)),
                    (
                        "responseClasses",
                        array(obj_req(
                            vec![
                                ("condition", response_match(MATCH_DEPTH)),
                                ("isFailure", Schema::Bool),
                            ],
                            &["condition"],
                        )),
                    ),
                    ("isRetryable", Schema::Bool),
                    ("timeout", Schema::Str),
                ],
                &["name", "condition"],
            )),
        ),
        (
            "retryBudget",
            obj_req(
                vec![
                    ("retryRatio", Schema::Number),
                    ("minRetriesPerSecond", Schema::Int),
                    ("ttl", Schema::Str),
                ],
                &["retryRatio", "minRetriesPerSecond", "ttl"],
            ),
        ),
        (
            "dstOverrides",
            array(obj_req(
                vec![("authority", Schema::Str), ("weight", Schema::IntOrStr)],
                &["authority", "weight"],
            )),
        ),
        ("opaquePorts", array(Schema::Str)),
    ])
}

fn external_workload() -> Schema {
    obj_req(
        vec![
            (
                "meshTLS",
                obj_req(
                    vec![("identity", Schema::Str), ("serverName", Schema::Str)],
                    &["identity", "serverName"],
                ),
            ),
            (
                "ports",
                array(obj_req(
                    vec![
                        ("port", Schema::Int),
                        ("name", Schema::Str),
                        ("protocol", Schema::Str),
                    ],
                    &["port"],
                )),
            ),
            (
                "workloadIPs",
                array(obj_req(vec![("ip", Schema::Str)], &["ip"])),
            ),
        ],
        &["meshTLS"],
    )
}

pub(super) fn crds() -> Vec<Crd> {
    vec![
        Crd {
            group: "linkerd.io",
            kind: "ServiceProfile",
            plural: "serviceprofiles",
            short_names: &["sp"],
            versions: vec![
                Version::new("v1alpha1", service_profile()),
                Version::new("v1alpha2", service_profile()).storage(),
            ],
        },
        Crd {
            group: "workload.linkerd.io",
            kind: "ExternalWorkload",
            plural: "externalworkloads",
            short_names: &[],
            versions: vec![
                Version::new("v1alpha1", external_workload()).with_status(),
                Version::new("v1beta1", external_workload())
                    .storage()
                    .with_status(),
            ],
        },
    ]
}
