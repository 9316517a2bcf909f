//! Does this cluster serve `image` volumes? Asked honestly: a server-side dry-run of a Pod with
//! one, checking that the volume **and its mount** come back. An API server with the
//! `ImageVolume` gate off drops both and still answers 200 (seen on 1.35 with the gate off), so
//! the status code alone says nothing. The answer is cached and asked again on a timer, and a
//! flag can force it either way.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::PostParams;
use serde_json::json;
use tokio::sync::Mutex;

/// Whether image volumes are used where `delivery: Auto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageVolumes {
    /// Ask the API server (dry-run), again every probe interval.
    Detect,
    /// Use them without asking.
    Enabled,
    /// Never use them.
    Disabled,
}

pub struct Capability {
    pods: Api<Pod>,
    setting: ImageVolumes,
    interval: Duration,
    cached: Mutex<Option<(bool, Instant)>>,
}

/// The probe Pod's volume and mount names.
const PROBE: &str = "skillport-probe";

impl Capability {
    /// `pods` is where the dry-run Pod is created: the operator's own namespace.
    pub fn new(pods: Api<Pod>, setting: ImageVolumes, interval: Duration) -> Capability {
        Capability {
            pods,
            setting,
            interval,
            cached: Mutex::new(None),
        }
    }

    /// Whether the API server keeps image volumes, from the cache while it is fresh.
    pub async fn image_volumes_served(&self) -> Result<bool, kube::Error> {
        match self.setting {
            ImageVolumes::Enabled => return Ok(true),
            ImageVolumes::Disabled => return Ok(false),
            ImageVolumes::Detect => {}
        }
        let mut cached = self.cached.lock().await;
        if let Some((served, at)) = *cached
            && at.elapsed() < self.interval
        {
            return Ok(served);
        }
        let served = match self.probe().await {
            Ok(served) => served,
            // The probe Pod refused (no default ServiceAccount, a Pod-security or policy engine):
            // not an outage, an answer — no image volumes here, asked again next interval. An
            // API server that does not answer stays an error: its reconcile is retried, and no
            // SkillSet moves to the init container (a rollout) for a passing failure.
            Err(kube::Error::Api(status)) if (400..500).contains(&status.code) => {
                tracing::warn!(
                    reason = %status.message,
                    "the image-volume probe Pod was refused; Auto uses the init container"
                );
                false
            }
            Err(err) => return Err(err),
        };
        if cached.is_none_or(|(before, _)| before != served) {
            tracing::info!(served, "image volumes on the API server");
        }
        *cached = Some((served, Instant::now()));
        Ok(served)
    }

    async fn probe(&self) -> Result<bool, kube::Error> {
        let pod: Pod = serde_json::from_value(json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"generateName": "skillport-probe-"},
            "spec": {
                "containers": [{
                    "name": PROBE,
                    "image": "skillport.invalid/probe:1",
                    "volumeMounts": [{"name": PROBE, "mountPath": "/probe", "readOnly": true}],
                    "securityContext": {
                        "runAsNonRoot": true,
                        "allowPrivilegeEscalation": false,
                        "capabilities": {"drop": ["ALL"]},
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                }],
                "volumes": [{"name": PROBE, "image": {"reference": "skillport.invalid/probe:1"}}],
            },
        }))
        .expect("the probe Pod is valid");
        let params = PostParams {
            dry_run: true,
            field_manager: Some(crate::attach::FIELD_MANAGER.to_owned()),
        };
        let stored = self.pods.create(&params, &pod).await?;
        let spec = stored.spec.unwrap_or_default();
        let volume = spec
            .volumes
            .unwrap_or_default()
            .into_iter()
            .any(|v| v.name == PROBE && v.image.is_some());
        let mount = spec
            .containers
            .iter()
            .any(|c| c.volume_mounts.iter().flatten().any(|m| m.name == PROBE));
        Ok(volume && mount)
    }
}
