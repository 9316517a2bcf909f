//! Leader election with a `coordination.k8s.io` Lease, so that two operator replicas (a rolling
//! update, or more for availability) never reconcile at once.
//!
//! Written here rather than taken from a crate: the Lease crates on crates.io track older kube
//! releases than the one this workspace uses, and the protocol is small. It follows client-go's:
//! a holder renews the Lease every `renew_every`; another candidate takes it over only when it
//! has seen the same holder and renew time, unchanged, for a whole `lease_duration` by its own
//! clock (so clocks need not agree); every write is a compare-and-swap on the resourceVersion.
//! A leader that cannot renew within `renew_deadline` stops leading (the process exits, and the
//! Pod is restarted); one that shuts down releases the Lease, so the next takes over at once.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::PostParams;
use tokio::sync::Mutex;

/// Timings, as client-go's defaults.
#[derive(Debug, Clone, Copy)]
pub struct Timings {
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

impl Default for Timings {
    fn default() -> Self {
        Timings {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

pub struct LeaderElection {
    leases: Api<Lease>,
    name: String,
    identity: String,
    timings: Timings,
    /// The holder and renew time last seen, and when (by our clock) they last changed.
    observed: Mutex<Option<(String, Instant)>>,
}

impl LeaderElection {
    pub fn new(leases: Api<Lease>, name: &str, identity: String, timings: Timings) -> Self {
        LeaderElection {
            leases,
            name: name.to_owned(),
            identity,
            timings,
            observed: Mutex::new(None),
        }
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Returns once this process holds the Lease.
    pub async fn acquire(&self) {
        let mut logged = false;
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => {
                    tracing::info!(identity = %self.identity, lease = %self.name, "leading");
                    return;
                }
                Ok(false) => {
                    if !logged {
                        tracing::info!(lease = %self.name, "another replica leads; standing by");
                        logged = true;
                    }
                }
                Err(err) => tracing::warn!(error = %err, lease = %self.name, "leader election"),
            }
            tokio::time::sleep(self.timings.retry_period).await;
        }
    }

    /// Renews the Lease until a renewal has not succeeded for `renew_deadline`; then returns.
    pub async fn hold(&self) {
        let mut last_renewed = Instant::now();
        loop {
            tokio::time::sleep(self.timings.retry_period).await;
            let attempt =
                tokio::time::timeout(self.timings.retry_period, self.try_acquire_or_renew()).await;
            match attempt {
                Ok(Ok(true)) => last_renewed = Instant::now(),
                Ok(Ok(false)) => {
                    tracing::error!(lease = %self.name, "another replica took the Lease");
                    return;
                }
                Ok(Err(err)) => tracing::warn!(error = %err, "renewing the Lease"),
                Err(_) => tracing::warn!("renewing the Lease timed out"),
            }
            if last_renewed.elapsed() > self.timings.renew_deadline {
                tracing::error!(lease = %self.name, "could not renew the Lease in time");
                return;
            }
        }
    }

    /// Gives the Lease up (on shutdown), so that a standby replica takes over at once.
    pub async fn release(&self) {
        let Ok(Some(mut lease)) = self.leases.get_opt(&self.name).await else {
            return;
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(&self.identity) {
            return;
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(now());
        match self
            .leases
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => tracing::info!(lease = %self.name, "released the Lease"),
            Err(err) => tracing::warn!(error = %err, "releasing the Lease"),
        }
    }

    /// One round: create the Lease, renew ours, or take over an expired one. `Ok(false)` when
    /// someone else holds it (or won a race for it).
    async fn try_acquire_or_renew(&self) -> Result<bool, kube::Error> {
        let seconds = i32::try_from(self.timings.lease_duration.as_secs()).unwrap_or(15);
        let Some(mut lease) = self.leases.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(seconds),
                    acquire_time: Some(now()),
                    renew_time: Some(now()),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return conflict_is_false(self.leases.create(&PostParams::default(), &lease).await);
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        let holder = spec.holder_identity.clone().unwrap_or_default();
        if holder != self.identity {
            let record = format!("{holder}@{:?}", spec.renew_time.as_ref().map(|t| t.0));
            let duration = spec
                .lease_duration_seconds
                .and_then(|s| u64::try_from(s).ok())
                .map_or(self.timings.lease_duration, Duration::from_secs);
            let mut observed = self.observed.lock().await;
            let unchanged_since = match &*observed {
                Some((seen, since)) if *seen == record => *since,
                _ => {
                    *observed = Some((record, Instant::now()));
                    Instant::now()
                }
            };
            let free = holder.is_empty() || unchanged_since.elapsed() >= duration;
            if !free {
                return Ok(false);
            }
            spec.acquire_time = Some(now());
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            spec.holder_identity = Some(self.identity.clone());
        }
        spec.lease_duration_seconds = Some(seconds);
        spec.renew_time = Some(now());
        // `lease` carries the resourceVersion read above: a compare-and-swap.
        conflict_is_false(
            self.leases
                .replace(&self.name, &PostParams::default(), &lease)
                .await,
        )
    }
}

fn now() -> MicroTime {
    MicroTime(Timestamp::now())
}

fn conflict_is_false(result: Result<Lease, kube::Error>) -> Result<bool, kube::Error> {
    match result {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
        Err(err) => Err(err),
    }
}
