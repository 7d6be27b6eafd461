//! Stage: the policy for each inbound port, kept current from the
//! controller (`InboundServerPolicies.WatchPort`).
//!
//! Rules (the issue's, and linkerd2-proxy's):
//! - a port is watched from the first connection to it, and from start-up
//!   for `LINKERD2_PROXY_INBOUND_PORTS`;
//! - "the default policy applies only to ports the controller has never
//!   answered for"; once a port has a policy it keeps the last one while
//!   the controller is unreachable or sends nonsense (fail closed: a dead
//!   controller never reopens what policy closed);
//! - streams that end or fail are reopened with a bounded backoff.
//!
//! Consumers hold a `watch::Receiver` and read the current policy for each
//! connection and each request, so updates apply without a restart.

use linkerd2_proxy_api::inbound::{
    PortSpec, inbound_server_policies_client::InboundServerPoliciesClient,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tonic::transport::Channel;
use ztmesh_authz::ServerPolicy;

/// How long the first connection to a new port waits for its policy
/// before the default applies to it.
pub(crate) const FIRST_ANSWER_WAIT: Duration = Duration::from_secs(1);

/// The current policy of one port, and whether the controller gave it.
#[derive(Clone, Debug)]
pub(crate) struct PortPolicy {
    pub(crate) server: Arc<ServerPolicy>,
    pub(crate) from_controller: bool,
}

/// The inbound stack's policy source: every port's policy, from the
/// controller when one is configured, else the default policy.
pub struct Policies {
    client: Option<(InboundServerPoliciesClient<Channel>, String)>,
    default: Arc<ServerPolicy>,
    ports: Mutex<HashMap<u16, watch::Receiver<PortPolicy>>>,
}

impl Policies {
    /// With a controller (client, workload) or, without one, the default
    /// policy for every port.
    pub fn new(client: Option<(Channel, String)>, default: ServerPolicy) -> Self {
        Self {
            client: client.map(|(c, w)| (InboundServerPoliciesClient::new(c), w)),
            default: Arc::new(default),
            ports: Mutex::default(),
        }
    }

    /// The port's policy receiver, watching it from now on if it is new.
    pub(crate) fn watch(&self, port: u16) -> watch::Receiver<PortPolicy> {
        let mut ports = self.ports.lock().expect("policies lock");
        if let Some(rx) = ports.get(&port) {
            return rx.clone();
        }
        let (tx, rx) = watch::channel(PortPolicy {
            server: self.default.clone(),
            from_controller: false,
        });
        if let Some((client, workload)) = &self.client {
            tokio::spawn(watch_port(client.clone(), workload.clone(), port, tx));
        }
        ports.insert(port, rx.clone());
        rx
    }

    /// The policy for a connection to `port` now: on a port seen for the
    /// first time, waits (bounded) for the controller's first answer.
    pub(crate) async fn current(&self, port: u16) -> Arc<ServerPolicy> {
        let mut rx = self.watch(port);
        if self.client.is_some() && !rx.borrow().from_controller {
            let _ =
                tokio::time::timeout(FIRST_ANSWER_WAIT, rx.wait_for(|p| p.from_controller)).await;
        }
        rx.borrow().server.clone()
    }

    /// Waits, up to `limit`, until every one of `ports` has an answer;
    /// false if some did not.
    pub(crate) async fn wait_answered(&self, ports: &[u16], limit: Duration) -> bool {
        if self.client.is_none() {
            return true;
        }
        let all = async {
            for &port in ports {
                let mut rx = self.watch(port);
                let _ = rx.wait_for(|p| p.from_controller).await;
            }
        };
        tokio::time::timeout(limit, all).await.is_ok()
    }
}

async fn watch_port(
    mut client: InboundServerPoliciesClient<Channel>,
    workload: String,
    port: u16,
    tx: watch::Sender<PortPolicy>,
) {
    let mut backoff = crate::backoff::Backoff::control_plane();
    loop {
        let spec = PortSpec {
            workload: workload.clone(),
            port: port.into(),
        };
        match client.watch_port(spec).await {
            Ok(stream) => {
                let mut stream = stream.into_inner();
                loop {
                    match stream.message().await {
                        Ok(Some(server)) => match ztmesh_proxy_api::authz::server_policy(&server) {
                            Ok(policy) => {
                                backoff.reset();
                                tracing::info!(port, server = %policy.label(), authorizations = policy.authorizations.list().len(), "inbound policy updated");
                                tx.send_replace(PortPolicy {
                                    server: Arc::new(policy),
                                    from_controller: true,
                                });
                            }
                            Err(error) => tracing::warn!(
                                port, %error,
                                "the controller sent an invalid inbound policy; keeping the last one"
                            ),
                        },
                        Ok(None) => {
                            tracing::info!(port, "the inbound policy stream ended; reopening");
                            break;
                        }
                        Err(status) => {
                            tracing::warn!(port, code = ?status.code(), message = status.message(), "the inbound policy stream failed; keeping the last policy and retrying");
                            break;
                        }
                    }
                }
            }
            Err(status) => {
                tracing::warn!(port, code = ?status.code(), message = status.message(), "cannot watch the inbound policy; keeping the last policy and retrying");
            }
        }
        if tx.is_closed() {
            return;
        }
        backoff.wait().await;
    }
}
