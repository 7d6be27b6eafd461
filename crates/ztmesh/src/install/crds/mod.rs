//! `ztmesh install --crds`: the CustomResourceDefinitions the controller
//! reads, one [`Crd`] per kind with every version ztmesh-resources loads.
//!
//! [`crd`] holds the CRD and version types and writes them out;
//! [`policy`] holds policy.linkerd.io's authorization kinds, [`routes`]
//! the HTTPRoutes (Linkerd's and the Gateway API's) and GRPCRoute,
//! [`workloads`] ServiceProfile and ExternalWorkload. Each version's
//! schema is written in [`super::schema`]'s structural language, so it
//! covers exactly the fields ztmesh reads; `tests` ties them to what
//! ztmesh-resources accepts. Versions Linkerd deprecated stay served, with
//! its deprecation warning; so does ServerAuthorization v1beta2, which the
//! seeds write though Linkerd never served it (ztmesh loads it as v1beta1).

mod crd;
mod policy;
mod routes;
#[cfg(test)]
mod tests;
mod workloads;

pub(crate) use crd::{Crd, GATEWAY_GROUP};
use serde_json::Value;

/// Every CRD, the Gateway API's unless `skip_gateway_api`.
pub(crate) fn all(skip_gateway_api: bool) -> Vec<Crd> {
    let mut crds = policy::crds();
    crds.extend(
        routes::crds()
            .into_iter()
            .filter(|c| !(skip_gateway_api && c.group == GATEWAY_GROUP)),
    );
    crds.extend(workloads::crds());
    crds
}

/// The CRDs as objects to print.
pub(crate) fn objects(skip_gateway_api: bool) -> Vec<Value> {
    all(skip_gateway_api).iter().map(Crd::to_json).collect()
}
