//! Endpoints from EndpointSlices (discovery.k8s.io/v1), as on Kubernetes.
//!
//! The manifests directory has no slices: there, a Service's endpoints
//! are its selector over the Pods (the parent module). A store that
//! watches EndpointSlices (the Kubernetes store) turns this mode on with
//! `Index::use_endpoint_slices` (in the parent module, which also
//! turns the endpoints found here into the model's); from
//! then on a Service port's endpoints are the ready endpoints of the
//! slices labelled `kubernetes.io/service-name=<service>`, on the slice
//! port named as the Service port (the API server's controller resolves
//! named target ports per pod). An endpoint whose `targetRef` is a known
//! Pod or ExternalWorkload carries that workload's identity, protocol hint
//! and metric labels; one that refers to nothing known is served
//! unmeshed (plain TCP), as Linkerd's destination does.
//!
//! ExternalWorkloads still join by the Service's selector: on Linkerd,
//! its external-workload controller writes their slices, and ztmesh has
//! no such writer, so the index does its part (an address in both counts
//! once).

pub use k8s_openapi::api::discovery::v1::EndpointSlice;
use std::collections::BTreeMap;
use std::net::IpAddr;
use ztmesh_resources::Service;

/// The label naming a slice's Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// One slice, as the index needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct SliceInfo {
    service: String,
    /// port name ("" when unnamed) -> port number.
    ports: BTreeMap<String, u16>,
    /// The ready endpoints: addresses and target (kind, name).
    endpoints: Vec<(Vec<IpAddr>, Option<(String, String)>)>,
}

/// The slices of every namespace, and the Services' port names.
#[derive(Debug, Default)]
pub(super) struct Slices {
    /// Off until a store says its endpoints come from slices.
    pub(super) enabled: bool,
    slices: BTreeMap<(String, String), SliceInfo>,
    /// (namespace, service) -> service port -> its name ("" if unnamed).
    port_names: BTreeMap<(String, String), BTreeMap<u16, String>>,
}

impl Slices {
    pub(super) fn apply(&mut self, slice: &EndpointSlice) -> Option<String> {
        let meta = &slice.metadata;
        let ns = meta.namespace.clone().unwrap_or_default();
        let name = meta.name.clone().unwrap_or_default();
        let service = meta
            .labels
            .as_ref()
            .and_then(|l| l.get(SERVICE_NAME_LABEL))
            .cloned()
            .unwrap_or_default();
        let ports = slice
            .ports
            .iter()
            .flatten()
            .filter_map(|p| {
                let port = u16::try_from(p.port?).ok()?;
                Some((p.name.clone().unwrap_or_default(), port))
            })
            .collect();
        let endpoints = slice
            .endpoints
            .iter()
            // Ready unless said otherwise (the API's reading of an absent condition).
            .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) != Some(false))
            .map(|e| {
                let ips = e.addresses.iter().filter_map(|a| a.parse().ok()).collect();
                let target = e
                    .target_ref
                    .as_ref()
                    .and_then(|r| Some((r.kind.clone()?, r.name.clone()?)));
                (ips, target)
            })
            .collect();
        let info = SliceInfo {
            service,
            ports,
            endpoints,
        };
        self.slices.insert((ns.clone(), name), info);
        Some(ns)
    }

    /// Forgets a slice; whether it was known.
    pub(super) fn delete(&mut self, ns: &str, name: &str) -> bool {
        self.slices
            .remove(&(ns.to_string(), name.to_string()))
            .is_some()
    }

    pub(super) fn service_applied(&mut self, ns: &str, name: &str, svc: &Service) {
        let names = svc
            .spec
            .as_ref()
            .and_then(|s| s.ports.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|p| {
                Some((
                    u16::try_from(p.port).ok()?,
                    p.name.clone().unwrap_or_default(),
                ))
            })
            .collect();
        self.port_names
            .insert((ns.to_string(), name.to_string()), names);
    }

    pub(super) fn service_deleted(&mut self, ns: &str, name: &str) {
        self.port_names.remove(&(ns.to_string(), name.to_string()));
    }

    /// The endpoints of `ns/service:port`: (address, its workload if
    /// `workload` knows the endpoint's target (kind, name)).
    pub(super) fn endpoints<'a, W>(
        &self,
        ns: &str,
        service: &str,
        port: u16,
        workload: impl Fn(&str, &str) -> Option<&'a W>,
    ) -> Vec<(std::net::SocketAddr, Option<&'a W>)> {
        let Some(port_name) = self
            .port_names
            .get(&(ns.to_string(), service.to_string()))
            .and_then(|p| p.get(&port))
        else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for ((slice_ns, _), slice) in &self.slices {
            if slice_ns != ns || slice.service != service {
                continue;
            }
            let Some(target_port) = slice.ports.get(port_name) else {
                continue;
            };
            for (ips, target) in &slice.endpoints {
                let wl = target
                    .as_ref()
                    .and_then(|(kind, name)| workload(kind, name));
                for ip in ips {
                    out.push((std::net::SocketAddr::new(*ip, *target_port), wl));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
