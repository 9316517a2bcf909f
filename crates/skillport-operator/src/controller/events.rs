//! Events on SkillSets: one per condition change (`events.k8s.io/v1`).
//!
//! Written here rather than with kube's `Recorder`, which keeps every Event it published for six
//! minutes to count repeats into a series, and scans that whole cache under a lock on every
//! publish: at 10,000 SkillSets that was tens of MiB held after they all turned Ready, and a
//! lock each reconcile waited on. Ours never repeat in a burst (one per condition change), so
//! each is created once and forgotten.

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event as K8sEvent;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use kube::runtime::events::{Event, EventType};

/// Publishes Events as the operator (`reportingController`), from this replica.
pub struct Events {
    client: kube::Client,
    controller: String,
    instance: String,
}

impl Events {
    pub fn new(client: kube::Client, controller: &str, instance: Option<String>) -> Events {
        Events {
            client,
            controller: controller.to_owned(),
            instance: instance.unwrap_or_else(|| controller.to_owned()),
        }
    }

    /// Creates `event` about `regarding`, in its namespace.
    pub async fn publish(
        &self,
        event: &Event,
        regarding: &ObjectReference,
    ) -> Result<(), kube::Error> {
        let namespace = regarding.namespace.clone().unwrap_or_default();
        let now = Timestamp::now();
        // `<object>.<nanoseconds, hex>`, as client-go names Events (a generateName must end in
        // an alphanumeric); the object's name cut so the whole stays an object name.
        let object = regarding.name.as_deref().unwrap_or(&self.controller);
        let object = &object[..object.len().min(253 - 1 - 32)];
        let body = K8sEvent {
            metadata: ObjectMeta {
                name: Some(format!("{object}.{:x}", now.as_nanosecond())),
                namespace: Some(namespace.clone()),
                ..ObjectMeta::default()
            },
            event_time: Some(MicroTime(now)),
            action: Some(event.action.clone()),
            reason: Some(event.reason.clone()),
            note: event.note.clone(),
            regarding: Some(regarding.clone()),
            related: event.secondary.clone(),
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            type_: Some(
                match event.type_ {
                    EventType::Normal => "Normal",
                    EventType::Warning => "Warning",
                }
                .to_owned(),
            ),
            ..K8sEvent::default()
        };
        Api::<K8sEvent>::namespaced(self.client.clone(), &namespace)
            .create(&PostParams::default(), &body)
            .await?;
        Ok(())
    }
}
