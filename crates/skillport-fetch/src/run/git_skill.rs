// One git skill: up to date only at a full commit SHA (and the same tree hash), else a shallow
// fetch on a blocking thread into a staging folder, handed to `publish`.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::publish::{Revision, publish_staged};
use super::retry::{Tries, with_retries};
use super::{Context, Done, in_place, staging, up_to_date};
use crate::error::SkillError;
use crate::git::{self, GitOptions, GitSource};
use crate::index::IndexEntry;
use crate::plan::{GitSpec, PlannedSkill};

pub(super) async fn fetch_git(
    context: &Arc<Context>,
    skill: &PlannedSkill,
    spec: &GitSpec,
    previous: Option<&IndexEntry>,
    tries: &mut Tries,
) -> Result<Done, SkillError> {
    if is_commit_sha(&spec.reference)
        && let Some(old) =
            previous.filter(|old| old.commit.as_deref() == Some(spec.reference.as_str()))
        && in_place(context, old).await
    {
        return Ok(up_to_date(old));
    }
    let origin = format!("{} {}", spec.url, spec.reference);
    let staging = staging(context, &origin)?;
    // Staged under the skill's name, not its target: the rule that a skill's name equals its
    // folder's is about the skill as published, and a target that renames the folder in
    // `--into` must not warn on every run. The rename into `--into` gives the target.
    let staged = staging.path().join(&skill.name);
    let source = GitSource {
        url: spec.url.clone(),
        reference: spec.reference.clone(),
        path: spec.path.clone(),
    };
    let fetched = with_retries(context.retry_policy(), &skill.name, tries, || {
        let source = source.clone();
        let staged = staged.clone();
        let context = context.clone();
        async move {
            let options = GitOptions {
                timeout: context
                    .deadline
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_secs(1)),
                max_bytes: context.options.max_skill_bytes,
                max_entries: context.options.max_skill_entries,
                max_download_bytes: context.options.max_download_bytes,
                ca_files: context.ca_files.clone(),
                ..GitOptions::default()
            };
            tokio::task::spawn_blocking(move || {
                // Never over plain http or git:// (git.rs refuses credentials on http).
                let credentials = context
                    .git_credentials
                    .as_ref()
                    .filter(|_| sends_credentials(&source.url));
                git::fetch(&source, credentials, &staged, &options)
            })
            .await
            .expect("git fetch does not panic")
            .map_err(|err| SkillError::Git(Box::new(err)))
        }
    })
    .await?;
    let warnings = fetched
        .submodules
        .iter()
        .map(|path| format!("{path}: submodule skipped (submodules are not fetched)"))
        .collect();
    publish_staged(
        context,
        skill,
        staging,
        staged,
        Revision::Commit(fetched.commit),
        None,
        warnings,
    )
    .await
}

/// Whether the plan's git credentials go to this URL: https only.
pub(super) fn sends_credentials(url: &str) -> bool {
    url.get(..8)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"))
}

/// A full commit SHA (SHA-1 or SHA-256), which names content that cannot change.
fn is_commit_sha(reference: &str) -> bool {
    matches!(reference.len(), 40 | 64)
        && reference
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}
