// One image skill: up to date by digest (and tree hash), else resolved, downloaded into a
// staging folder within the download and unpack limits, and handed to `publish`.

use std::sync::Arc;

use skillport_oci::spec::{Annotations, Descriptor};
use skillport_oci::{Compression, Digest, LayerFormat, Reference, UnpackLimits};
use skillport_registry::{NoProgress, RegistryError, SkillLayer};

use super::publish::{Revision, publish_staged};
use super::retry::{Tries, with_retries};
use super::{Context, Done, in_place, staging, up_to_date};
use crate::error::SkillError;
use crate::index::IndexEntry;
use crate::plan::PlannedSkill;

pub(super) async fn fetch_image(
    context: &Arc<Context>,
    skill: &PlannedSkill,
    text: &str,
    previous: Option<&IndexEntry>,
    tries: &mut Tries,
) -> Result<Done, SkillError> {
    let reference: Reference = text.parse().expect("a validated plan has valid references");
    let recorded = |digest: &Digest| {
        previous.filter(|old| old.digest.as_deref() == Some(digest.to_string().as_str()))
    };
    if let Some(pinned) = reference.digest()
        && let Some(old) = recorded(pinned)
        && in_place(context, old).await
    {
        return Ok(up_to_date(old));
    }
    let policy = context.retry_policy();
    let digest = match reference.digest() {
        Some(digest) => digest.clone(),
        None => {
            with_retries(policy, &skill.name, tries, || async {
                context
                    .client
                    .resolve(&reference)
                    .await
                    .map_err(|error| registry_error(context, text, error))
            })
            .await?
            .digest
        }
    };
    if reference.digest().is_none()
        && let Some(old) = recorded(&digest)
        && in_place(context, old).await
    {
        return Ok(up_to_date(old));
    }
    // Fetch exactly what was resolved, even if the tag moves meanwhile.
    let exact = pinned(&reference, &digest);
    let exact_text = exact.to_string();
    let staging = staging(context, text)?;
    // Staged under the skill's name, not its target: the rule that a skill's name equals its
    // folder's is about the skill as published, and a target that renames the folder in
    // `--into` must not warn on every run. The rename into `--into` gives the target.
    let staged = staging.path().join(&skill.name);
    let limits = UnpackLimits {
        max_bytes: context.options.max_skill_bytes,
        max_entries: context.options.max_skill_entries,
    };
    // The layer the plan names (the operator read it from the manifests of this very digest)
    // is downloaded alone. Should the registry not serve it so, the manifests are read after
    // all, and any error is theirs.
    let named = planned_layer(skill, &digest);
    let exported = with_retries(policy, &skill.name, tries, || async {
        let client = &context.client;
        let max = context.options.max_download_bytes;
        let whole =
            || client.export_with_limits(&exact, &staged, limits, max, Arc::new(NoProgress));
        let exported = match &named {
            Some(layer) => {
                let alone = client
                    .export_layer(&exact, layer, &staged, limits, max, Arc::new(NoProgress))
                    .await;
                match alone {
                    Err(RegistryError::NotFound { .. }) => whole().await,
                    alone => alone,
                }
            }
            None => whole().await,
        };
        exported.map_err(|error| registry_error(context, &exact_text, error))
    })
    .await?;
    publish_staged(
        context,
        skill,
        staging,
        staged,
        Revision::Digest(digest.to_string()),
        Some(exported.unpacked),
        Vec::new(),
    )
    .await
}

/// The layer the plan names for the image pinned to `digest`, if it names one.
fn planned_layer(skill: &PlannedSkill, digest: &Digest) -> Option<SkillLayer> {
    let layer = skill.layer.as_ref()?;
    Some(SkillLayer {
        digest: digest.clone(),
        layer: Descriptor {
            media_type: layer.media_type.clone(),
            digest: layer
                .digest
                .parse()
                .expect("a validated plan has valid digests"),
            size: layer.size,
            data: None,
            platform: None,
            artifact_type: None,
            annotations: Annotations::new(),
        },
        format: LayerFormat {
            compression: Compression::from_media_type(&layer.media_type)
                .expect("a validated plan has tar layers"),
            in_folder: layer.in_folder,
        },
    })
}

/// `reference` pinned to `digest`, its tag kept for messages.
fn pinned(reference: &Reference, digest: &Digest) -> Reference {
    let tag = reference
        .tag()
        .map(|tag| format!(":{tag}"))
        .unwrap_or_default();
    format!("{}{tag}@{digest}", reference.name())
        .parse()
        .expect("a valid reference with a valid digest is valid")
}

/// A registry error, with the pull secrets named when none had an entry for the registry.
fn registry_error(context: &Context, reference: &str, mut error: RegistryError) -> SkillError {
    // The client says whether any credential was found: no second lookup here (a credential
    // helper could run, and this is an async task).
    if let RegistryError::Unauthorized {
        detail,
        had_credentials: false,
        ..
    } = &mut error
    {
        let secrets = match context.secret_names.as_slice() {
            [] => "the plan has no pull secrets".to_owned(),
            [only] => format!("pull secret {only:?} has no entry for this host"),
            names => format!(
                "none of the pull secrets {} has an entry for this host",
                names
                    .iter()
                    .map(|name| format!("{name:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        tracing::debug!("registry said: {detail}; pull secrets: {secrets}");
        *detail = secrets;
    }
    SkillError::Registry {
        reference: reference.to_owned(),
        error: Box::new(error),
    }
}
