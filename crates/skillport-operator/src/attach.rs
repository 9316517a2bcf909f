//! Attaching a SkillSet to a workload with server-side apply, as plain data: pure, no I/O.
//!
//! The operator owns a SkillSet's fields of a Deployment or StatefulSet through that SkillSet's
//! field manager ([`field_manager`]): it applies only what [`translate`](crate::translate) adds, so a GitOps tool
//! applying the user's own manifest (another field manager) neither conflicts with nor removes
//! the skills, and releasing is an apply of nothing, which the API server turns into removing
//! exactly the fields only we own.
//!
//! Translate refuses a template that already has our names, so it must see the workload as the
//! user wrote it: [`Owned::from_managed_fields`] reads what the SkillSet's manager
//! ([`field_manager`], `skillport/<name>`) owns from the object's `managedFields`, and [`Owned::strip`] takes those items out of the live template.
//! [`is_current`] tells whether an apply would change anything, so a no-op resync writes nothing.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};

use crate::api::WorkloadKind;
use crate::translate::SkillResources;

/// The field manager of what the operator writes for itself (SkillSet status, plan
/// ConfigMaps), and, before each SkillSet had its own ([`field_manager`]), of workloads too: what
/// it still owns on a workload is taken over by the SkillSet attached there.
pub const FIELD_MANAGER: &str = "skillport";

/// The prefix of the field managers of SkillSets: [`field_manager`].
const SKILL_SET_MANAGER_PREFIX: &str = "skillport/";

/// The field manager SkillSet `name` attaches to its workload with: one per SkillSet, so that
/// what one applies is never taken for another's (with one manager for all, each apply of one
/// removed the other's fields, and each release too). At most 128 characters, as the API server
/// wants: a long name is cut and given a hash of the whole.
pub fn field_manager(name: &str) -> String {
    const MAX: usize = 128;
    let whole = format!("{SKILL_SET_MANAGER_PREFIX}{name}");
    if whole.len() <= MAX {
        return whole;
    }
    let hash = hex::encode(&Sha256::digest(name.as_bytes())[..4]);
    format!("{}-{hash}", &whole[..MAX - 9])
}

/// Whether field manager `manager` is the operator's or a SkillSet's.
pub fn is_ours(manager: &str) -> bool {
    manager == FIELD_MANAGER || manager.starts_with(SKILL_SET_MANAGER_PREFIX)
}

/// The SkillSets other than the one with field manager `manager` that have applied fields to the
/// object with `entries` (their names, from their field managers; cut ones as they are).
pub fn other_skill_sets(entries: &[ManagedFieldsEntry], manager: &str) -> Vec<String> {
    entries
        .iter()
        .filter(|entry| entry.operation.as_deref() == Some("Apply"))
        .filter_map(|entry| entry.manager.as_deref())
        .filter(|other| *other != manager)
        .filter_map(|other| other.strip_prefix(SKILL_SET_MANAGER_PREFIX))
        .map(str::to_owned)
        .collect()
}

/// One item of a workload a field manager can own, named the way `managedFields` keys it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Item {
    /// `metadata.annotations[key]` of the workload itself.
    WorkloadAnnotation(String),
    /// `spec.template.metadata.annotations[key]`.
    Annotation(String),
    Volume(String),
    InitContainer(String),
    PullSecret(String),
    Env {
        container: String,
        name: String,
    },
    Mount {
        container: String,
        path: String,
    },
}

/// The items of a workload that the `skillport` field manager owns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Owned {
    pub items: BTreeSet<Item>,
}

impl WorkloadKind {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::StatefulSet => "StatefulSet",
        }
    }
}

impl Owned {
    /// What field manager `manager` owns by apply, read from an object's `managedFields`.
    pub fn from_managed_fields(entries: &[ManagedFieldsEntry], manager: &str) -> Owned {
        let mut owned = Owned::default();
        let ours = entries.iter().filter(|entry| {
            entry.manager.as_deref() == Some(manager)
                && entry.operation.as_deref() == Some("Apply")
                && entry.subresource.as_deref().unwrap_or_default().is_empty()
        });
        for entry in ours {
            if let Some(fields) = entry.fields_v1.as_ref() {
                owned.read(&fields.0);
            }
        }
        owned
    }

    fn read(&mut self, fields: &Value) {
        let at = |value: &Value, path: &[&str]| -> Option<Map<String, Value>> {
            path.iter()
                .try_fold(value, |value, key| value.get(*key))
                .and_then(Value::as_object)
                .cloned()
        };
        let items = &mut self.items;
        for key in field_names(at(fields, &["f:metadata", "f:annotations"])) {
            items.insert(Item::WorkloadAnnotation(key));
        }
        let Some(template) = at(fields, &["f:spec", "f:template"]) else {
            return;
        };
        let template = Value::Object(template);
        for key in field_names(at(&template, &["f:metadata", "f:annotations"])) {
            items.insert(Item::Annotation(key));
        }
        let pod = Value::Object(at(&template, &["f:spec"]).unwrap_or_default());
        for name in list_keys(at(&pod, &["f:volumes"]), "name") {
            items.insert(Item::Volume(name));
        }
        for name in list_keys(at(&pod, &["f:initContainers"]), "name") {
            items.insert(Item::InitContainer(name));
        }
        for name in list_keys(at(&pod, &["f:imagePullSecrets"]), "name") {
            items.insert(Item::PullSecret(name));
        }
        for (key, container) in at(&pod, &["f:containers"]).unwrap_or_default() {
            let Some(name) = list_key(&key, "name") else {
                continue;
            };
            for env in list_keys(at(&container, &["f:env"]), "name") {
                items.insert(Item::Env {
                    container: name.clone(),
                    name: env,
                });
            }
            for path in list_keys(at(&container, &["f:volumeMounts"]), "mountPath") {
                items.insert(Item::Mount {
                    container: name.clone(),
                    path,
                });
            }
        }
    }

    /// Both: what `self` or `other` owns.
    #[must_use]
    pub fn union(mut self, other: Owned) -> Owned {
        self.items.extend(other.items);
        self
    }

    /// The containers it holds environment variables or mounts of.
    pub fn containers(&self) -> impl Iterator<Item = &str> {
        self.items.iter().filter_map(|item| match item {
            Item::Env { container, .. } | Item::Mount { container, .. } => Some(container.as_str()),
            _ => None,
        })
    }

    /// The items an apply of `resources` owns.
    pub fn of(resources: &SkillResources) -> Owned {
        let mut items = BTreeSet::new();
        let skills = resources.names.skills_annotation();
        if resources.annotations.contains_key(&skills) {
            items.insert(Item::WorkloadAnnotation(skills));
        }
        items.extend(resources.annotations.keys().cloned().map(Item::Annotation));
        items.extend(
            resources
                .volumes
                .iter()
                .map(|v| Item::Volume(v.name.clone())),
        );
        items.extend(
            resources
                .init_containers
                .iter()
                .map(|c| Item::InitContainer(c.name.clone())),
        );
        items.extend(
            resources
                .image_pull_secrets
                .iter()
                .map(|s| Item::PullSecret(s.name.clone())),
        );
        items.extend(resources.env.iter().map(|e| Item::Env {
            container: resources.container.clone(),
            name: e.name.clone(),
        }));
        items.extend(resources.volume_mounts.iter().map(|m| Item::Mount {
            container: resources.container.clone(),
            path: m.mount_path.clone(),
        }));
        Owned { items }
    }

    /// `template` without the items owned here: the template as its other managers wrote it.
    pub fn strip(&self, template: &PodTemplateSpec) -> PodTemplateSpec {
        let mut template = template.clone();
        let has = |item: Item| self.items.contains(&item);
        if let Some(metadata) = template.metadata.as_mut()
            && let Some(annotations) = metadata.annotations.as_mut()
        {
            annotations.retain(|key, _| !has(Item::Annotation(key.clone())));
            if annotations.is_empty() {
                metadata.annotations = None;
            }
        }
        let Some(pod) = template.spec.as_mut() else {
            return template;
        };
        retain(&mut pod.volumes, |v| !has(Item::Volume(v.name.clone())));
        retain(&mut pod.init_containers, |c| {
            !has(Item::InitContainer(c.name.clone()))
        });
        retain(&mut pod.image_pull_secrets, |s| {
            !has(Item::PullSecret(s.name.clone()))
        });
        for container in &mut pod.containers {
            let name = container.name.clone();
            retain(&mut container.env, |e| {
                !has(Item::Env {
                    container: name.clone(),
                    name: e.name.clone(),
                })
            });
            retain(&mut container.volume_mounts, |m| {
                !has(Item::Mount {
                    container: name.clone(),
                    path: m.mount_path.clone(),
                })
            });
        }
        template
    }
}

/// The `f:<name>` keys of a managedFields map, without the prefix.
fn field_names(map: Option<Map<String, Value>>) -> impl Iterator<Item = String> {
    map.unwrap_or_default()
        .into_iter()
        .filter_map(|(key, _)| key.strip_prefix("f:").map(str::to_owned))
}

/// The `k:{"<key>":"<value>"}` keys of an associative list in managedFields: the values.
fn list_keys(map: Option<Map<String, Value>>, key: &str) -> Vec<String> {
    map.unwrap_or_default()
        .keys()
        .filter_map(|entry| list_key(entry, key))
        .collect()
}

fn list_key(entry: &str, key: &str) -> Option<String> {
    let object: Map<String, Value> = serde_json::from_str(entry.strip_prefix("k:")?).ok()?;
    object.get(key)?.as_str().map(str::to_owned)
}

fn retain<T>(list: &mut Option<Vec<T>>, keep: impl FnMut(&T) -> bool) {
    if let Some(items) = list.as_mut() {
        items.retain(keep);
        if items.is_empty() {
            *list = None;
        }
    }
}

/// The server-side apply body that attaches `resources` to workload `kind`/`name`: only our
/// fields, plus the agent container's name (its list key).
pub fn apply_body(
    kind: WorkloadKind,
    namespace: &str,
    name: &str,
    resources: &SkillResources,
) -> Value {
    let mut body = release_body(kind, namespace, name);
    let key = resources.names.skills_annotation();
    if let Some(skills) = resources.annotations.get(&key) {
        body["metadata"]["annotations"] = json!({ key: skills });
    }
    let mut pod = Map::new();
    let mut put = |key: &str, value: Value| {
        if value.as_array().is_some_and(|items| !items.is_empty()) {
            pod.insert(key.to_owned(), value);
        }
    };
    put("initContainers", json!(resources.init_containers));
    put("volumes", json!(resources.volumes));
    put("imagePullSecrets", json!(resources.image_pull_secrets));
    let mut agent = Map::new();
    agent.insert("name".into(), json!(resources.container));
    if !resources.volume_mounts.is_empty() {
        agent.insert("volumeMounts".into(), json!(resources.volume_mounts));
    }
    if !resources.env.is_empty() {
        agent.insert("env".into(), json!(resources.env));
    }
    pod.insert("containers".into(), json!([agent]));
    body["spec"] = json!({
        "template": {
            "metadata": {"annotations": resources.annotations},
            "spec": pod,
        }
    });
    body
}

/// The apply body that releases a workload: nothing, so every field only we own goes.
pub fn release_body(kind: WorkloadKind, namespace: &str, name: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": kind.as_str(),
        "metadata": {"name": name, "namespace": namespace},
    })
}

/// Whether applying `body` (made from what `desired` owns) to `live` would change nothing: we
/// own exactly the items the body holds, and every value in the body is in the live object
/// (which also holds the server's defaults).
pub fn is_current(live: &Value, owned: &Owned, desired: &Owned, body: &Value) -> bool {
    owned == desired && contains(live, body)
}

/// Whether `part` is in `whole`: objects key by key, associative lists (items with a `mountPath`
/// or a `name`: the API's merge keys) item by key in any order, other lists item by item. A
/// volume mount is keyed by its path, not its volume's name: two mounts of one volume (the
/// skills folder and a skill's own `subPath`) are two items.
pub fn contains(whole: &Value, part: &Value) -> bool {
    match (whole, part) {
        (Value::Object(whole), Value::Object(part)) => part.iter().all(|(key, value)| {
            whole
                .get(key)
                .is_some_and(|existing| contains(existing, value))
        }),
        (Value::Array(whole), Value::Array(part)) => {
            let key_of = |item: &Value| {
                ["mountPath", "name"]
                    .iter()
                    .find_map(|key| item.get(*key).map(|value| (*key, value.clone())))
            };
            if part.iter().all(|item| key_of(item).is_some()) {
                part.iter().all(|item| {
                    let (key, value) = key_of(item).expect("checked above");
                    whole
                        .iter()
                        .find(|candidate| candidate.get(key) == Some(&value))
                        .is_some_and(|candidate| contains(candidate, item))
                })
            } else {
                whole.len() == part.len()
                    && whole
                        .iter()
                        .zip(part)
                        .all(|(whole, part)| contains(whole, part))
            }
        }
        (whole, part) => whole == part,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::FieldsV1;

    fn entry(manager: &str, operation: &str, fields: Value) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            manager: Some(manager.into()),
            operation: Some(operation.into()),
            fields_type: Some("FieldsV1".into()),
            fields_v1: Some(FieldsV1(fields)),
            ..ManagedFieldsEntry::default()
        }
    }

    #[test]
    fn two_mounts_of_one_volume_are_two_items() {
        let mounts = json!([
            {"name": "skillport-skills", "mountPath": "/skills", "readOnly": true},
            {"name": "skillport-skills", "mountPath": "/opt/review", "subPath": "review"},
        ]);
        let reordered = json!([mounts[1].clone(), mounts[0].clone()]);
        assert!(contains(&reordered, &mounts));
        let other_sub_path = json!([
            mounts[0].clone(),
            {"name": "skillport-skills", "mountPath": "/opt/review", "subPath": "pdf"},
        ]);
        assert!(!contains(&other_sub_path, &mounts));
    }

    #[test]
    fn owned_items_are_read_from_our_apply_entry_only() {
        let ours = json!({
            "f:metadata": {"f:annotations": {"f:skillport.dev/skills": {}}},
            "f:spec": {"f:template": {
                "f:metadata": {"f:annotations": {"f:skillport.dev/skills-digest": {}}},
                "f:spec": {
                    "f:volumes": {"k:{\"name\":\"skill-pdf\"}": {".": {}, "f:name": {}}},
                    "f:initContainers": {"k:{\"name\":\"skillport-verify\"}": {".": {}}},
                    "f:imagePullSecrets": {"k:{\"name\":\"regcred.v1\"}": {".": {}}},
                    "f:containers": {"k:{\"name\":\"agent\"}": {
                        ".": {}, "f:name": {},
                        "f:env": {"k:{\"name\":\"SKILL_FOLDERS\"}": {".": {}}},
                        "f:volumeMounts": {"k:{\"mountPath\":\"/skills/pdf\"}": {".": {}}},
                    }},
                },
            }},
        });
        let theirs = json!({"f:spec": {"f:template": {"f:spec": {
            "f:volumes": {"k:{\"name\":\"data\"}": {}},
        }}}});
        let owned = Owned::from_managed_fields(
            &[
                entry("kubectl", "Apply", theirs.clone()),
                entry(FIELD_MANAGER, "Update", theirs),
                entry(FIELD_MANAGER, "Apply", ours),
            ],
            FIELD_MANAGER,
        );
        let expected: BTreeSet<Item> = [
            Item::WorkloadAnnotation("skillport.dev/skills".into()),
            Item::Annotation("skillport.dev/skills-digest".into()),
            Item::Volume("skill-pdf".into()),
            Item::InitContainer("skillport-verify".into()),
            Item::PullSecret("regcred.v1".into()),
            Item::Env {
                container: "agent".into(),
                name: "SKILL_FOLDERS".into(),
            },
            Item::Mount {
                container: "agent".into(),
                path: "/skills/pdf".into(),
            },
        ]
        .into();
        assert_eq!(owned.items, expected);
    }

    #[test]
    fn contains_matches_list_items_by_key_and_ignores_server_defaults() {
        let live = json!({"spec": {"volumes": [
            {"name": "data", "emptyDir": {}},
            {"name": "skill-a", "image": {"reference": "r/a@sha256:1", "pullPolicy": "IfNotPresent"}},
        ], "args": ["a", "b"]}});
        assert!(contains(
            &live,
            &json!({"spec": {"volumes": [{"name": "skill-a", "image": {"reference": "r/a@sha256:1"}}]}})
        ));
        assert!(!contains(
            &live,
            &json!({"spec": {"volumes": [{"name": "skill-a", "image": {"reference": "r/a@sha256:2"}}]}})
        ));
        assert!(!contains(
            &live,
            &json!({"spec": {"volumes": [{"name": "skill-b"}]}})
        ));
        assert!(contains(&live, &json!({"spec": {"args": ["a", "b"]}})));
        assert!(!contains(&live, &json!({"spec": {"args": ["a"]}})));
    }

    #[test]
    fn each_skill_set_has_its_own_field_manager_and_sees_the_others() {
        assert_eq!(field_manager("tools"), "skillport/tools");
        let long = "a".repeat(253);
        let manager = field_manager(&long);
        assert_eq!(manager.len(), 128);
        assert_ne!(manager, field_manager(&format!("{}b", "a".repeat(252))));
        let entries = [
            entry("skillport/a", "Apply", json!({})),
            entry("skillport/b", "Apply", json!({})),
            entry("skillport", "Apply", json!({})),
            entry("skillport/c", "Update", json!({})),
            entry("gitops", "Apply", json!({})),
        ];
        assert_eq!(other_skill_sets(&entries, "skillport/a"), ["b"]);
    }
}
