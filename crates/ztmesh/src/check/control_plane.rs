//! The control-plane group: each controller API answers a real call.
//! Identity: Certify with an empty request (a working service refuses it
//! with a gRPC status; a dead one does not answer). Destination: Get for
//! the first Service in the manifests. Policy: GetPort for the first
//! workload's first port. Viz: `GET /status`. The calls are here (also
//! the default policy per workload, used by the hardening checklist);
//! [`checks`] judges their answers.

use super::result::{CheckResult, Group};
use super::workloads::Workload;
use crate::viz::client::GetError;
use linkerd2_proxy_api::destination::destination_client::DestinationClient;
use linkerd2_proxy_api::identity::identity_client::IdentityClient;
use linkerd2_proxy_api::inbound::inbound_server_policies_client::InboundServerPoliciesClient;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio_rustls::rustls::RootCertStore;
use ztmesh_resources::Resource;

/// Why an API did not answer as it should.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    #[error(
        "its address is unknown (the context file records it; --controller alone gives only the viz API)"
    )]
    Unknown,
    #[error("no workload known to ask about (no manifests read)")]
    NoWorkload,
    #[error(transparent)]
    Http(#[from] GetError),
    #[error("{0}")]
    Grpc(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// One controller API's answer: where, and what it said.
#[derive(Debug)]
pub(crate) struct ApiProbe {
    pub(crate) addr: Option<String>,
    pub(crate) answer: Result<String, ApiError>,
}

/// The four controller APIs.
#[derive(Debug)]
pub(crate) struct Apis {
    pub(crate) identity: ApiProbe,
    pub(crate) destination: ApiProbe,
    pub(crate) policy: ApiProbe,
    pub(crate) viz: ApiProbe,
}

const IDENTITY_NAME: &str =
    "linkerd-identity.linkerd.serviceaccount.identity.linkerd.cluster.local";
/// How long Destination's first update is awaited once its stream is open.
const FIRST_UPDATE: Duration = Duration::from_secs(1);
const DESTINATION_NAME: &str =
    "linkerd-destination.linkerd.serviceaccount.identity.linkerd.cluster.local";

fn channel(
    addr: SocketAddr,
    name: &str,
    roots: Option<Arc<RootCertStore>>,
) -> Result<tonic::transport::Channel, ApiError> {
    ztmesh_grpc::client::channel(ztmesh_grpc::client::ControlPlaneTarget {
        addr: addr.to_string(),
        server_name: name.into(),
        roots,
    })
    .map_err(|e| ApiError::Grpc(e.to_string()))
}

async fn bounded<T>(
    timeout: Duration,
    call: impl std::future::Future<Output = Result<T, ApiError>>,
) -> Result<T, ApiError> {
    tokio::time::timeout(timeout, call)
        .await
        .map_err(|_| ApiError::Timeout(timeout))?
}

/// A status only a serving gRPC server sends (not a transport failure).
fn answered(s: &tonic::Status) -> bool {
    !matches!(
        s.code(),
        tonic::Code::Unavailable | tonic::Code::Unimplemented | tonic::Code::Unknown
    )
}

fn grpc_error(s: tonic::Status) -> ApiError {
    ApiError::Grpc(format!("{}: {}", s.code(), s.message()))
}

pub(crate) async fn identity(
    addr: Option<SocketAddr>,
    roots: Option<Arc<RootCertStore>>,
    timeout: Duration,
) -> ApiProbe {
    let Some(addr) = addr else {
        return unknown();
    };
    let answer = bounded(timeout, async {
        let mut client = IdentityClient::new(channel(addr, IDENTITY_NAME, roots)?);
        match client
            .certify(linkerd2_proxy_api::identity::CertifyRequest::default())
            .await
        {
            Ok(_) => Ok("Certify answered an empty request".into()),
            Err(s) if answered(&s) => Ok(format!(
                "Certify refused an empty request, as it should ({})",
                s.code()
            )),
            Err(s) => Err(grpc_error(s)),
        }
    })
    .await;
    ApiProbe {
        addr: Some(addr.to_string()),
        answer,
    }
}

pub(crate) async fn destination(
    addr: Option<SocketAddr>,
    roots: Option<Arc<RootCertStore>>,
    resources: &[Resource],
    timeout: Duration,
) -> ApiProbe {
    let Some(addr) = addr else {
        return unknown();
    };
    let path = resources
        .iter()
        .find_map(|r| match r {
            Resource::Service(s) => {
                let port = s.spec.as_ref()?.ports.as_ref()?.first()?.port;
                Some(format!(
                    "{}.{}.svc.cluster.local:{port}",
                    s.metadata.name.as_deref()?,
                    s.metadata.namespace.as_deref()?
                ))
            }
            _ => None,
        })
        .unwrap_or_else(|| "check.ztmesh.svc.cluster.local:80".into());
    let answer = bounded(timeout, async {
        let mut client = DestinationClient::new(channel(addr, DESTINATION_NAME, roots)?);
        let req = linkerd2_proxy_api::destination::GetDestination {
            scheme: "k8s".into(),
            path: path.clone(),
            ..Default::default()
        };
        let mut stream = match client.get(req).await {
            Ok(rsp) => rsp.into_inner(),
            Err(s) if answered(&s) => return Ok(format!("Get({path}) answered {:?}", s.code())),
            Err(s) => return Err(grpc_error(s)),
        };
        // The stream is open: the service serves. Its first update, if
        // it comes soon, says more.
        match tokio::time::timeout(FIRST_UPDATE, stream.message()).await {
            Ok(Ok(Some(_))) => Ok(format!("Get({path}) answered")),
            Ok(Ok(None)) => Ok(format!("Get({path}) ended without an update")),
            Ok(Err(s)) if answered(&s) => Ok(format!("Get({path}) answered {:?}", s.code())),
            Ok(Err(s)) => Err(grpc_error(s)),
            Err(_) => Ok(format!("Get({path}) stream open, no update yet")),
        }
    })
    .await;
    ApiProbe {
        addr: Some(addr.to_string()),
        answer,
    }
}

fn workload_json(w: &Workload) -> String {
    crate::diagnose_policy::workload_json(&w.namespace, &w.workload)
}

async fn get_port(
    addr: SocketAddr,
    roots: Option<Arc<RootCertStore>>,
    w: &Workload,
    port: u16,
) -> Result<linkerd2_proxy_api::inbound::Server, ApiError> {
    let mut client = InboundServerPoliciesClient::new(channel(addr, DESTINATION_NAME, roots)?);
    let spec = linkerd2_proxy_api::inbound::PortSpec {
        workload: workload_json(w),
        port: port.into(),
    };
    Ok(client
        .get_port(spec)
        .await
        .map_err(grpc_error)?
        .into_inner())
}

pub(crate) async fn policy(
    addr: Option<SocketAddr>,
    roots: Option<Arc<RootCertStore>>,
    first: Option<&Workload>,
    timeout: Duration,
) -> ApiProbe {
    let Some(addr) = addr else {
        return unknown();
    };
    let answer = match first {
        None => Err(ApiError::NoWorkload),
        Some(w) => {
            let port = w.ports.first().copied().unwrap_or(80);
            bounded(timeout, async {
                let server = get_port(addr, roots, w, port).await?;
                let name = server.labels.get("name").cloned().unwrap_or_default();
                Ok(format!(
                    "GetPort({}:{port}) answered server {name:?}",
                    w.display()
                ))
            })
            .await
        }
    };
    ApiProbe {
        addr: Some(addr.to_string()),
        answer,
    }
}

/// The default policy the controller serves `w` on a port no Server
/// selects (`all-unauthenticated`, `deny`, ...), None if it did not say.
pub(crate) async fn default_policy(
    addr: SocketAddr,
    roots: Option<Arc<RootCertStore>>,
    w: &Workload,
    timeout: Duration,
) -> Option<String> {
    let port = (1..=u16::MAX).rev().find(|p| !w.ports.contains(p))?;
    let server = bounded(timeout, get_port(addr, roots, w, port))
        .await
        .ok()?;
    let label = |k: &str| server.labels.get(k).cloned().unwrap_or_default();
    match label("kind").as_str() {
        "default" => Some(label("name")),
        kind => Some(format!("{kind}/{}", label("name"))),
    }
}

/// `GET /status` on the viz API, and the files it lists as refused.
pub(crate) async fn viz(addr: &str, timeout: Duration) -> (ApiProbe, Vec<(String, Vec<String>)>) {
    let got = crate::viz::client::get_text(addr, "/status", timeout).await;
    let (answer, refused) = match got {
        Err(e) => (Err(ApiError::Http(e)), Vec::new()),
        Ok(text) => match serde_json::from_str::<serde_json::Value>(&text) {
            Err(e) => (
                Err(ApiError::Grpc(format!("/status is not JSON: {e}"))),
                Vec::new(),
            ),
            Ok(v) => {
                let refused: Vec<(String, Vec<String>)> = v["refused"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|r| {
                        let reasons = r["reasons"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|x| x.as_str().map(String::from))
                            .collect();
                        (r["file"].as_str().unwrap_or("?").to_string(), reasons)
                    })
                    .collect();
                (
                    Ok(format!(
                        "/status answered: manifests ready {}",
                        v["ready"].as_bool().unwrap_or(false)
                    )),
                    refused,
                )
            }
        },
    };
    (
        ApiProbe {
            addr: Some(addr.to_string()),
            answer,
        },
        refused,
    )
}

fn unknown() -> ApiProbe {
    ApiProbe {
        addr: None,
        answer: Err(ApiError::Unknown),
    }
}

/// One check per API.
pub(crate) fn checks(apis: &Apis) -> Vec<CheckResult> {
    [
        ("identity-api", "identity API answers", &apis.identity),
        (
            "destination-api",
            "destination API answers",
            &apis.destination,
        ),
        ("policy-api", "policy API answers", &apis.policy),
        ("viz-api", "viz API answers", &apis.viz),
    ]
    .into_iter()
    .map(|(id, title, probe)| {
        let at = probe.addr.as_deref().unwrap_or("?");
        match &probe.answer {
            Ok(what) => CheckResult::pass(Group::ControlPlane, id, title, format!("{at}: {what}"))
                .evidence([at.to_string()]),
            Err(ApiError::Unknown) => CheckResult::warn(
                Group::ControlPlane,
                id,
                title,
                format!("not checked: {}", ApiError::Unknown),
                "run check without --controller, so the context file the controller wrote is read",
            ),
            Err(ApiError::NoWorkload) => CheckResult::warn(
                Group::ControlPlane,
                id,
                title,
                format!("{at}: not checked: {}", ApiError::NoWorkload),
                "pass --manifests DIR (the workloads' manifests)",
            ),
            Err(e) => CheckResult::fail(
                Group::ControlPlane,
                id,
                title,
                format!("{at}: {e}"),
                "start the controller (`ztmesh controller --identity-dir D --manifests M`) and check its log",
            )
            .offenders([at.to_string()]),
        }
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Status;

    fn probe(addr: Option<&str>, answer: Result<&str, ApiError>) -> ApiProbe {
        ApiProbe {
            addr: addr.map(String::from),
            answer: answer.map(String::from),
        }
    }

    #[test]
    fn each_api_passes_warns_when_unknown_fails_when_silent() {
        let apis = Apis {
            identity: probe(Some("127.0.0.1:1"), Ok("Certify refused")),
            destination: probe(None, Err(ApiError::Unknown)),
            policy: probe(
                Some("127.0.0.1:2"),
                Err(ApiError::Timeout(Duration::from_secs(5))),
            ),
            viz: probe(
                Some("127.0.0.1:3"),
                Err(ApiError::Grpc("Unavailable".into())),
            ),
        };
        let got: Vec<(String, Status, bool)> = checks(&apis)
            .into_iter()
            .map(|c| (c.id, c.status, c.fix.is_some()))
            .collect();
        assert_eq!(
            got,
            [
                ("identity-api".to_string(), Status::Pass, false),
                ("destination-api".to_string(), Status::Warn, true),
                ("policy-api".to_string(), Status::Fail, true),
                ("viz-api".to_string(), Status::Fail, true),
            ]
        );
    }

    /// No workload to ask the policy API about is not a dead controller.
    #[tokio::test]
    async fn no_workload_to_ask_is_a_warning_naming_manifests() {
        let addr = "127.0.0.1:9".parse().unwrap();
        let apis = Apis {
            identity: probe(Some("127.0.0.1:1"), Ok("Certify refused")),
            destination: probe(Some("127.0.0.1:1"), Ok("answered")),
            policy: policy(Some(addr), None, None, Duration::from_secs(1)).await,
            viz: probe(Some("127.0.0.1:3"), Ok("answered")),
        };
        let got = &checks(&apis)[2];
        assert_eq!(got.status, Status::Warn, "{got:?}");
        assert_eq!(
            got.fix.as_deref(),
            Some("pass --manifests DIR (the workloads' manifests)")
        );
    }

    #[test]
    fn only_transport_failures_count_as_no_answer() {
        for (code, want) in [
            (tonic::Code::InvalidArgument, true),
            (tonic::Code::Unauthenticated, true),
            (tonic::Code::NotFound, true),
            (tonic::Code::Unavailable, false),
            (tonic::Code::Unimplemented, false),
        ] {
            assert_eq!(answered(&tonic::Status::new(code, "")), want, "{code:?}");
        }
    }
}
