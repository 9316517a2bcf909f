//! Reading the skill policies that apply to a SkillSet, with their key material: every
//! `ClusterSkillPolicy` (material from the operator's own namespace, read as the operator) and
//! the `SkillPolicy`s of the SkillSet's namespace (material read there as the namespace's
//! account, like its pull secrets). Material that cannot be read breaks only its policy, which
//! then refuses what it covers (fail closed) or, in `Audit` mode, reports it.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt as _};
use sha2::{Digest as _, Sha256};
use skillport_sign::{Matcher, PublicKey, Requirement, TrustedRoot};

use crate::policy::{
    Authority, ClusterSkillPolicy, ClusterSkillPolicySpec, LoadedPolicy, Policies, SkillPolicy,
    Source,
};

/// Why the policies could not be read at all: fail closed, nothing is resolved.
pub struct Unreadable(pub String);

/// Every policy that applies to SkillSets of `namespace`, sorted by kind and name.
/// `operator` reads the cluster's policies and the operator namespace's material; `tenant`
/// reads the namespace's material.
pub async fn policies(
    operator: &Client,
    operator_namespace: &str,
    tenant: &Client,
    namespace: &str,
) -> Result<Policies, Unreadable> {
    let listed = |err: kube::Error, what: &str| match err {
        // The policy CRDs are not installed: no policy exists.
        kube::Error::Api(status) if status.code == 404 => None,
        err => Some(Unreadable(format!(
            "listing {what} failed ({err}); no skill is resolved until the operator can read \
             them (deploy/rbac.yaml grants it)"
        ))),
    };
    let cluster = match Api::<ClusterSkillPolicy>::all(operator.clone())
        .list(&ListParams::default())
        .await
    {
        Ok(list) => list.items,
        Err(err) => match listed(err, "ClusterSkillPolicies") {
            Some(unreadable) => return Err(unreadable),
            None => Vec::new(),
        },
    };
    let local = match Api::<SkillPolicy>::namespaced(operator.clone(), namespace)
        .list(&ListParams::default())
        .await
    {
        Ok(list) => list.items,
        Err(err) => match listed(err, "SkillPolicies") {
            Some(unreadable) => return Err(unreadable),
            None => Vec::new(),
        },
    };
    let mut fingerprint = Sha256::new();
    let mut list = Vec::new();
    let own = Reader {
        client: operator,
        namespace: operator_namespace,
    };
    for policy in &cluster {
        let title = format!("ClusterSkillPolicy {:?}", policy.name_any());
        list.push(load(title, &policy.spec, &own, &mut fingerprint).await);
    }
    let theirs = Reader {
        client: tenant,
        namespace,
    };
    for policy in &local {
        let title = format!("SkillPolicy \"{namespace}/{}\"", policy.name_any());
        let spec = ClusterSkillPolicySpec::from(&policy.spec);
        list.push(load(title, &spec, &theirs, &mut fingerprint).await);
    }
    Ok(Policies {
        list,
        fingerprint: hex::encode(&fingerprint.finalize()[..12]),
    })
}

/// Where a policy's material is read from, and as whom.
struct Reader<'a> {
    client: &'a Client,
    namespace: &'a str,
}

impl Reader<'_> {
    /// The bytes of `source`, or why not.
    async fn read(&self, source: &Source) -> Result<Vec<u8>, String> {
        let namespace = self.namespace;
        let (kind, name, data) = match (&source.secret, &source.config_map) {
            (Some(name), _) => {
                let secret = Api::<Secret>::namespaced(self.client.clone(), namespace)
                    .get_opt(name)
                    .await
                    .map_err(|err| format!("reading Secret \"{namespace}/{name}\": {err}"))?;
                let data = secret.map(|secret| {
                    secret
                        .data
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(key, value)| (key, value.0))
                        .collect::<BTreeMap<_, _>>()
                });
                ("Secret", name, data)
            }
            (None, Some(name)) => {
                let map = Api::<ConfigMap>::namespaced(self.client.clone(), namespace)
                    .get_opt(name)
                    .await
                    .map_err(|err| format!("reading ConfigMap \"{namespace}/{name}\": {err}"))?;
                let data = map.map(|map| {
                    map.data
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(key, value)| (key, value.into_bytes()))
                        .collect::<BTreeMap<_, _>>()
                });
                ("ConfigMap", name, data)
            }
            (None, None) => return Err("a source names neither a Secret nor a ConfigMap".into()),
        };
        let data = data.ok_or_else(|| format!("{kind} \"{namespace}/{name}\" does not exist"))?;
        data.get(&source.key)
            .cloned()
            .ok_or_else(|| format!("{kind} \"{namespace}/{name}\" has no key {:?}", source.key))
    }
}

async fn load(
    title: String,
    spec: &ClusterSkillPolicySpec,
    reader: &Reader<'_>,
    fingerprint: &mut Sha256,
) -> LoadedPolicy {
    fingerprint.update(title.as_bytes());
    fingerprint.update(serde_json::to_vec(spec).expect("a spec serialises"));
    let mut authorities = Vec::new();
    let mut broken = None;
    for authority in &spec.authorities {
        match requirement(authority, reader, fingerprint).await {
            Ok(requirement) => authorities.push((authority.name.clone(), requirement)),
            Err(reason) => {
                broken.get_or_insert(format!("authority {:?}: {reason}", authority.name));
            }
        }
    }
    if broken.is_some() {
        authorities.clear();
    }
    LoadedPolicy::new(title, spec, authorities, broken)
}

async fn requirement(
    authority: &Authority,
    reader: &Reader<'_>,
    fingerprint: &mut Sha256,
) -> Result<Requirement, String> {
    if let Some(source) = &authority.key {
        let bytes = reader.read(source).await?;
        fingerprint.update(&bytes);
        let text = String::from_utf8(bytes).map_err(|_| "the key is not PEM text".to_owned())?;
        let key = PublicKey::from_pem(&text, &format!("key {:?}", source.key))
            .map_err(|err| err.to_string())?;
        return Ok(Requirement::Key {
            key,
            name: authority.name.clone(),
        });
    }
    let Some(keyless) = &authority.keyless else {
        return Err("neither key nor keyless".into());
    };
    let bytes = reader.read(&keyless.trusted_root).await?;
    fingerprint.update(&bytes);
    // Not the parser's message: it may quote the Secret's content, and this goes into status.
    let root = TrustedRoot::from_json(&bytes, &format!("{:?}", keyless.trusted_root.key)).map_err(
        |_| {
            format!(
                "key {:?} is not a sigstore trusted root (trusted_root.json)",
                keyless.trusted_root.key
            )
        },
    )?;
    let matcher =
        |exact: &Option<String>, pattern: &Option<String>, what: &str| match (exact, pattern) {
            (Some(exact), _) => Ok(Matcher::Exact(exact.clone())),
            (None, Some(pattern)) => Matcher::regex(pattern, what).map_err(|err| err.to_string()),
            (None, None) => Err(format!("no {what}")),
        };
    Ok(Requirement::Keyless {
        subject: matcher(
            &keyless.identity,
            &keyless.identity_reg_exp,
            "identityRegExp",
        )?,
        issuer: matcher(&keyless.issuer, &keyless.issuer_reg_exp, "issuerRegExp")?,
        root: Arc::new(root),
    })
}
