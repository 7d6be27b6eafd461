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
//! once its Lease expires. One stopped gracefully ([`Election::step_down`],
//! on SIGTERM) releases the Lease ([`released`]: no holder), so another
//! takes it at its next try, not after the Lease's duration. [`decide`]
//! and [`released`] are the rules, without I/O.

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

/// The Lease as this replica leaves it when it stops gracefully, if it
/// holds it now: no holder (any replica takes it at once), renewed now for
/// 1s, as client-go's `ReleaseOnCancel` leaves it. `None`: not ours, left alone.
pub fn released(spec: Option<&LeaseSpec>, me: &str, now: DateTime<Utc>) -> Option<LeaseSpec> {
    let spec = spec?;
    (spec.holder_identity.as_deref() == Some(me)).then(|| LeaseSpec {
        holder_identity: None,
        lease_duration_seconds: Some(1),
        renew_time: Some(MicroTime(now)),
        ..spec.clone()
    })
}

/// This replica's part in the election ([`elect`]). Dropping it (or
/// [`Election::abort`]) stops it as a killed replica stops: the Lease is
/// left to expire. [`Election::step_down`] releases it.
pub struct Election {
    leading: watch::Receiver<bool>,
    task: tokio::task::JoinHandle<()>,
    api: Api<Lease>,
    config: LeaseConfig,
}

impl Election {
    /// Whether this replica leads now (and its changes).
    pub fn leading(&self) -> watch::Receiver<bool> {
        self.leading.clone()
    }

    /// Stops trying, leaving the Lease as it is (as `kill -9` would).
    pub fn abort(&self) {
        self.task.abort();
    }

    /// Stops trying and, if this replica holds the Lease, releases it so
    /// that another replica takes over at its next try. True if it was
    /// released.
    pub async fn step_down(mut self) -> Result<bool, kube::Error> {
        self.task.abort();
        // Wait for the task to be gone: no round of ours runs after this.
        let _ = (&mut self.task).await;
        let config = self.config.clone();
        // A write of the last round may land after the read: then the
        // replace conflicts, and the Lease is read again.
        for _ in 0..3 {
            let Some(current) = self.api.get_opt(&config.name).await? else {
                return Ok(false);
            };
            let Some(spec) = released(current.spec.as_ref(), &config.identity, Utc::now()) else {
                return Ok(false);
            };
            let lease = Lease {
                metadata: current.metadata,
                spec: Some(spec),
            };
            match self
                .api
                .replace(&config.name, &PostParams::default(), &lease)
                .await
            {
                Ok(_) => {
                    tracing::info!(lease = %config.name, identity = %config.identity, "Lease released: another replica may lead now");
                    return Ok(true);
                }
                Err(kube::Error::Api(e)) if e.code == 409 => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(false)
    }
}

impl Drop for Election {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Runs the election until the returned [`Election`] is dropped, aborted
/// or stepped down; [`Election::leading`] says whether this replica leads now.
pub fn elect(client: kube::Client, config: LeaseConfig) -> Election {
    let (tx, rx) = watch::channel(false);
    let api: Api<Lease> = Api::namespaced(client, &config.namespace);
    let election_api = api.clone();
    let election_config = config.clone();
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
    Election {
        leading: rx,
        task,
        api: election_api,
        config: election_config,
    }
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

    #[test]
    fn a_released_lease_is_anyones_at_once() {
        let now = Utc::now();
        let held = |holder: &str| LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(30),
            acquire_time: Some(MicroTime(now)),
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(3),
            ..Default::default()
        };
        let cases = [
            // Ours: released, and the next replica takes it at once.
            (Some(held("me")), true),
            // Another's, or none: left alone.
            (Some(held("other")), false),
            (None, false),
        ];
        for (spec, releases) in cases {
            let got = released(spec.as_ref(), "me", now);
            assert_eq!(got.is_some(), releases, "{spec:?}");
            if let Some(got) = got {
                assert_eq!(got.holder_identity, None);
                assert_eq!(got.lease_transitions, Some(3), "transitions kept");
                assert_eq!(decide(Some(&got), "other", now), Decision::Take);
            }
        }
    }
}
