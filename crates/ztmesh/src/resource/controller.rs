//! Which workloads to ask a running controller about, for a name: the
//! controller's policy API knows workloads by name only (`pod`,
//! `external_workload`), so a `deploy/NAME` (`sts`, `ds`), the workloads
//! labelled `app=NAME`, is resolved through its viz API's `GET
//! /workloads`, which selects from the controller's own index. Other
//! names are asked as they are ([`WorkloadName::candidates`]).

use super::WorkloadName;
use crate::mesh_context::{ControllerArg, Env};
use std::time::Duration;
use ztmesh_policy::WorkloadRef;

/// Why a `deploy/NAME` could not be resolved through the controller.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ControllerLookupError {
    #[error(
        "{name} means the workloads labelled app={app}, which only the controller's index knows, and no controller is known ({source}): pass --controller HOST:PORT or --manifests DIR"
    )]
    NoController {
        name: String,
        app: String,
        source: crate::mesh_context::ContextError,
    },
    #[error(
        "{name} means the workloads labelled app={app}, which only the controller's index knows: its viz API at {viz} did not answer ({source}); pass --manifests DIR"
    )]
    Unanswered {
        name: String,
        app: String,
        viz: String,
        source: crate::viz::client::GetError,
    },
    #[error("the viz API at {viz} answered /workloads with something else than a list: {source}")]
    Garbled {
        viz: String,
        source: serde_json::Error,
    },
    #[error(
        "no workload {name} in namespace {ns} (none labelled app={app} in the controller's index)"
    )]
    NoneLabelled {
        name: String,
        app: String,
        ns: String,
    },
}

#[derive(serde::Deserialize)]
struct Row {
    kind: String,
    name: String,
}

/// The workloads of a `/workloads` answer, in its order.
pub(crate) fn parse_rows(text: &str) -> Result<Vec<WorkloadRef>, serde_json::Error> {
    let rows: Vec<Row> = serde_json::from_str(text)?;
    Ok(rows
        .into_iter()
        .map(|r| match r.kind.as_str() {
            "pod" => WorkloadRef::Pod(r.name),
            _ => WorkloadRef::External(r.name),
        })
        .collect())
}

/// The PortSpec workloads to ask the controller about for `name` in `ns`,
/// in order: a `deploy/NAME` resolved through the controller's index (of
/// several labelled alike, the first: a Deployment's pods share their
/// policy), any other name as given.
pub(crate) async fn candidates(
    controller: &ControllerArg,
    env: &dyn Env,
    ns: &str,
    name: &WorkloadName,
) -> Result<Vec<WorkloadRef>, ControllerLookupError> {
    let WorkloadName::App(_, app) = name else {
        return Ok(name.candidates());
    };
    let viz = controller
        .resolve(env)
        .map_err(|source| ControllerLookupError::NoController {
            name: name.to_string(),
            app: app.clone(),
            source,
        })?
        .viz;
    let path = format!("/workloads?namespace={ns}&resource={name}");
    let text = crate::viz::client::get_text(&viz, &path, Duration::from_secs(10))
        .await
        .map_err(|source| ControllerLookupError::Unanswered {
            name: name.to_string(),
            app: app.clone(),
            viz: viz.clone(),
            source,
        })?;
    let found = parse_rows(&text).map_err(|source| ControllerLookupError::Garbled {
        viz: viz.clone(),
        source,
    })?;
    match found.into_iter().next() {
        Some(first) => Ok(vec![first]),
        None => Err(ControllerLookupError::NoneLabelled {
            name: name.to_string(),
            app: app.clone(),
            ns: ns.into(),
        }),
    }
}
