//! One leader among the controller's replicas, chosen with a
//! `coordination.k8s.io/v1` Lease (GA since Kubernetes 1.14; the fields
//! used here are 1.28's). Every replica serves reads; only the leader
//! writes (HTTPRoute status, [`crate::status`]).
//!
//! Each replica tries every [`LeaseConfig::renew_every`], and one waiting
//! again as soon as the holder's Lease expires: it takes the
//! Lease when it is free, expired (not renewed within its duration) or
//! already its own, and renews it then; writes go through the Lease's
//! resourceVersion, so of two replicas racing for it one wins. A leader
//! that cannot renew steps down at once; one that is killed is replaced
//! once its Lease expires. [`decide`] is the rule, without I/O.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::chrono::{DateTime, Utc};
use kube::api::{Api, PostParams};
use std::time::Duration;
use tokio::sync::watch;

/// The Lease and who this replica is.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    /// This replica (the pod's name).
    pub identity: String,
    /// How long a Lease not renewed stays its holder's.
    pub duration: Duration,
    pub renew_every: Duration,
}

impl LeaseConfig {
    /// Linkerd's timing (30s leases) for `identity` in `namespace`.
    pub fn new(namespace: &str, identity: &str) -> Self {
        Self {
            namespace: namespace.into(),
            name: "ztmesh-controller-write".into(),
            identity: identity.into(),
            duration: Duration::from_secs(30),
            renew_every: Duration::from_secs(2),
        }
    }
}

/// What to do with the Lease as it is now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Ours: renew it.
    Renew,
    /// Free or expired: take it (a new holder, one more transition).
    Take,
    /// Another replica's, valid until `expires`.
    Wait {
        holder: String,
        expires: DateTime<Utc>,
    },
}

/// The rule: `spec` is the Lease as read at `now`.
pub fn decide(spec: Option<&LeaseSpec>, me: &str, now: DateTime<Utc>) -> Decision {
    let Some(spec) = spec else {
        return Decision::Take;
    };
    match spec.holder_identity.as_deref() {
        Some(holder) if holder == me => Decision::Renew,
        None | Some("") => Decision::Take,
        Some(holder) => {
            let renewed = spec
                .renew_time
                .as_ref()
                .or(spec.acquire_time.as_ref())
                .map(|t| t.0);
            let duration = chrono_secs(spec.lease_duration_seconds.unwrap_or(0));
            match renewed {
                Some(t) if t + duration > now => Decision::Wait {
                    holder: holder.into(),
                    expires: t + duration,
                },
                _ => Decision::Take,
            }
        }
    }
}

fn chrono_secs(s: i32) -> k8s_openapi::chrono::TimeDelta {
    k8s_openapi::chrono::TimeDelta::seconds(i64::from(s))
}

/// Runs the election until the returned task is aborted; the receiver
/// says whether this replica leads now.
pub fn elect(
    client: kube::Client,
    config: LeaseConfig,
) -> (watch::Receiver<bool>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = watch::channel(false);
    let api: Api<Lease> = Api::namespaced(client, &config.namespace);
    let task = tokio::spawn(async move {
        let mut next = tokio::time::Instant::now();
        loop {
            tokio::time::sleep_until(next).await;
            next = tokio::time::Instant::now() + config.renew_every;
            let leading = match round(&api, &config).await {
                Ok(Round::Leading) => true,
                // Try again as soon as the holder's Lease expires (so a
                // dead leader is replaced within its Lease's duration).
                Ok(Round::Waiting { expires }) => {
                    let left = (expires - Utc::now())
                        .to_std()
                        .unwrap_or_default()
                        .max(Duration::from_millis(50));
                    next = next.min(tokio::time::Instant::now() + left);
                    false
                }
                Ok(Round::Lost) => false,
                Err(error) => {
                    tracing::warn!(%error, lease = %config.name, "the Lease could not be read or written; not leading");
                    false
                }
            };
            let was = tx.send_replace(leading);
            if was != leading {
                tracing::info!(
                    lease = %config.name,
                    identity = %config.identity,
                    "{}",
                    if leading { "leading: this replica writes status" } else { "not leading" }
                );
            }
        }
    });
    (rx, task)
}

/// The outcome of one try.
enum Round {
    /// This replica holds the Lease.
    Leading,
    /// Another holds it until `expires`.
    Waiting { expires: DateTime<Utc> },
    /// Another replica wrote it first.
    Lost,
}

/// One try at holding the Lease.
async fn round(api: &Api<Lease>, config: &LeaseConfig) -> Result<Round, kube::Error> {
    let now = Utc::now();
    let current = api.get_opt(&config.name).await?;
    let spec = current.as_ref().and_then(|l| l.spec.as_ref());
    let decision = decide(spec, &config.identity, now);
    let transitions = spec.and_then(|s| s.lease_transitions).unwrap_or(0);
    let acquired = spec.and_then(|s| s.acquire_time.clone());
    let new_spec = |acquire: Option<MicroTime>, transitions: i32| LeaseSpec {
        holder_identity: Some(config.identity.clone()),
        lease_duration_seconds: Some(config.duration.as_secs() as i32),
        acquire_time: acquire.or(Some(MicroTime(now))),
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(transitions),
        ..Default::default()
    };
    let lease = match (&decision, current) {
        (Decision::Wait { expires, .. }, _) => return Ok(Round::Waiting { expires: *expires }),
        (_, None) => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(config.name.clone()),
                    namespace: Some(config.namespace.clone()),
                    ..Default::default()
                },
                spec: Some(new_spec(None, 0)),
            };
            return conflict_is_loss(api.create(&PostParams::default(), &lease).await);
        }
        (Decision::Renew, Some(current)) => Lease {
            metadata: current.metadata,
            spec: Some(new_spec(acquired, transitions)),
        },
        (Decision::Take, Some(current)) => Lease {
            metadata: current.metadata,
            spec: Some(new_spec(None, transitions + 1)),
        },
    };
    // The resourceVersion read above: a replica that wrote since wins.
    conflict_is_loss(
        api.replace(&config.name, &PostParams::default(), &lease)
            .await,
    )
}

fn conflict_is_loss(result: Result<Lease, kube::Error>) -> Result<Round, kube::Error> {
    match result {
        Ok(_) => Ok(Round::Leading),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(Round::Lost),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn who_takes_the_lease() {
        let now = Utc::now();
        let at = |secs_ago: i64| {
            Some(MicroTime(
                now - k8s_openapi::chrono::TimeDelta::seconds(secs_ago),
            ))
        };
        let spec = |holder: Option<&str>, renewed: Option<MicroTime>| LeaseSpec {
            holder_identity: holder.map(String::from),
            lease_duration_seconds: Some(30),
            renew_time: renewed,
            ..Default::default()
        };
        let cases = [
            (None, Decision::Take),
            (Some(spec(None, at(1))), Decision::Take),
            (Some(spec(Some(""), at(1))), Decision::Take),
            (Some(spec(Some("me"), at(100))), Decision::Renew),
            (
                Some(spec(Some("other"), at(10))),
                Decision::Wait {
                    holder: "other".into(),
                    expires: at(10).unwrap().0 + k8s_openapi::chrono::TimeDelta::seconds(30),
                },
            ),
            (Some(spec(Some("other"), at(31))), Decision::Take),
            (Some(spec(Some("other"), None)), Decision::Take),
        ];
        for (spec, want) in cases {
            assert_eq!(decide(spec.as_ref(), "me", now), want, "{spec:?}");
        }
    }
}
