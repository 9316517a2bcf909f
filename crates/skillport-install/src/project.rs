// The verbs over one project (or the user's scope): install/update, verify, outdated, uninstall.
//
// Install runs in three steps, so that a refusal changes nothing:
// 1. plan: the manifest (with what the command adds) against the lock — which skills need a
//    new revision, which folders are written, and whether each of those folders may be: it is
//    absent, or the lock says this skill put it there and it still holds what the lock says;
// 2. fetch: tags and git refs resolved, images pulled into the store (in parallel), local
//    folders built into it;
// 3. write: each skill unpacked next to each target folder, checked, hashed, swapped in; the
//    lock and manifest written last (temporary file and rename).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::{StreamExt as _, TryStreamExt as _, stream};
use skillport_oci::tree_hash::{TreeEntry, tree_hash_with_entries};
use skillport_oci::{Reference, Store};
use skillport_registry::{Client, Progress, Unpacking};

use crate::manifest::{
    self, FileError, Kind, LOCK_FILE, Lock, Locked, MANIFEST_FILE, Manifest, Source, Wanted,
};
use crate::targets::{DEFAULT_TARGET, Target, on_disk};

/// Where the manifest and lock are, and what their folders are relative to.
#[derive(Debug, Clone)]
pub struct Project {
    /// Relative target folders are under it.
    pub root: PathBuf,
    /// `~/…` target folders are under it.
    pub home: PathBuf,
    /// The folder holding `skillport.json` and `skillport.lock.json`.
    pub config: PathBuf,
    /// User scope (`--global`): agents' folders under the home folder.
    pub global: bool,
}

impl Project {
    /// The project in `root`: its manifest and lock are there.
    pub fn local(root: &Path, home: &Path) -> Project {
        Project {
            root: root.to_owned(),
            home: home.to_owned(),
            config: root.to_owned(),
            global: false,
        }
    }

    /// The user's scope: the manifest and lock in `config` (`~/.config/skillport`).
    pub fn global(home: &Path, config: &Path) -> Project {
        Project {
            root: home.to_owned(),
            home: home.to_owned(),
            config: config.to_owned(),
            global: true,
        }
    }

    pub fn manifest_path(&self) -> PathBuf {
        self.config.join(MANIFEST_FILE)
    }

    pub fn lock_path(&self) -> PathBuf {
        self.config.join(LOCK_FILE)
    }

    /// The manifest (empty when there is none), checked.
    pub fn manifest(&self) -> Result<Manifest, InstallError> {
        let path = self.manifest_path();
        let manifest: Manifest = manifest::read(&path)?.unwrap_or_default();
        manifest.check(&path)?;
        Ok(manifest)
    }

    /// The lock (empty when there is none), checked.
    pub fn lock(&self) -> Result<Lock, InstallError> {
        let path = self.lock_path();
        let lock: Lock = manifest::read(&path)?.unwrap_or_default();
        lock.check(&path)?;
        Ok(lock)
    }

    fn on_disk(&self, recorded: &str) -> PathBuf {
        on_disk(recorded, &self.root, &self.home)
    }

    /// The folders `wanted` goes to, as recorded (`.claude/skills/NAME`, `~/…`), sorted.
    fn folders(&self, name: &str, wanted: &Wanted) -> Result<Vec<String>, InstallError> {
        let targets: Vec<&str> = if wanted.targets.is_empty() {
            vec![DEFAULT_TARGET]
        } else {
            wanted.targets.iter().map(String::as_str).collect()
        };
        let mut folders = BTreeSet::new();
        for target in targets {
            let target = Target::parse(target).map_err(|reason| InstallError::Manifest {
                path: self.manifest_path(),
                reason: format!("skill {name:?}: {reason}"),
            })?;
            folders.insert(format!("{}/{name}", target.folder(self.global)));
        }
        Ok(folders.into_iter().collect())
    }
}

/// What `install` is asked to do.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// Skills to add to the manifest (or change): the source and, optionally, the name.
    pub add: Vec<(Source, Option<String>)>,
    /// Targets for the skills added (`--target`). [default: agents]
    pub targets: Vec<String>,
    /// Fail when the manifest and lock disagree, instead of resolving anew (CI).
    pub frozen: bool,
    /// `update`: resolve these skills' tags and refs again (empty: all of them).
    pub update: Option<Vec<String>>,
    /// Take over existing folders skillport did not write.
    pub adopt: bool,
    /// Replace folders changed since skillport wrote them.
    pub force: bool,
}

/// A skill after `install`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    pub name: String,
    pub source: String,
    /// `sha256:…` or a commit.
    pub revision: String,
    pub change: Change,
    pub folders: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Written where it was not.
    Installed,
    /// A new revision, or new folders.
    Updated,
    /// Already there, as the lock says.
    UpToDate,
    /// No longer in the manifest: its folders removed.
    Removed,
}

/// Why an install (or another verb) stopped. Nothing was written unless the variant says so.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error("{}: {reason}", path.display())]
    Manifest { path: PathBuf, reason: String },
    #[error(
        "{} exists and skillport did not install it (it is not in {})",
        folder.display(), lock.display()
    )]
    NotOurs { folder: PathBuf, lock: PathBuf },
    #[error("{} changed since skillport installed it: {summary}", folder.display())]
    Changed {
        folder: PathBuf,
        summary: String,
        /// What `--force` would do to it.
        force: &'static str,
    },
    #[error("the manifest and the lock disagree (--frozen): {}", differences.join("; "))]
    Frozen { differences: Vec<String> },
    #[error("skill {name:?} ({source_text}): {reason}")]
    Skill {
        name: String,
        source_text: String,
        reason: String,
    },
    #[error(
        "skill {name:?} from {source_text} holds other files than the lock records (tree hash \
         {found}, the lock has {locked}); nothing of it was replaced"
    )]
    NotReproduced {
        name: String,
        source_text: String,
        found: String,
        locked: String,
    },
    #[error("no skill {name:?} in {}", manifest.display())]
    Unknown { name: String, manifest: PathBuf },
    #[error("nothing to install: {} lists no skills", manifest.display())]
    Nothing { manifest: PathBuf },
}

impl InstallError {
    /// What to do about it.
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            InstallError::NotOurs { folder, .. } => format!(
                "move {} away (or delete it), or pass --adopt to let skillport replace it",
                folder.display()
            ),
            InstallError::Changed { force, .. } => {
                format!("see what changed with `skillport verify`; --force {force}")
            }
            InstallError::Frozen { .. } => {
                "run `skillport install` without --frozen and commit the lock it writes".to_owned()
            }
            InstallError::NotReproduced { .. } => "the image or commit the lock pins was \
                 changed in place or the lock was edited; `skillport update NAME` records what \
                 is there now"
                .to_owned(),
            InstallError::Unknown { .. } => {
                "`skillport list` shows the installed skills".to_owned()
            }
            InstallError::Nothing { .. } => "`skillport install SOURCE` adds a skill: an image \
                 reference, ./FOLDER or a git URL"
                .to_owned(),
            _ => return None,
        })
    }
}

fn skill_error(name: &str, source: &Source, reason: impl std::fmt::Display) -> InstallError {
    InstallError::Skill {
        name: name.to_owned(),
        source_text: source.to_string(),
        reason: reason.to_string(),
    }
}

/// How a skill's content is obtained once its revision is known.
#[derive(Debug, Clone)]
enum Content {
    /// An image in the store, by reference with digest.
    Image(Reference),
    /// A git commit.
    Git {
        url: String,
        commit: String,
        path: Option<String>,
    },
}

impl Content {
    /// The digest or the commit, as a lock records them.
    fn revision(&self) -> (Option<String>, Option<String>) {
        match self {
            Content::Image(reference) => (reference.digest().map(ToString::to_string), None),
            Content::Git { commit, .. } => (None, Some(commit.clone())),
        }
    }
}

/// One skill's plan.
#[derive(Debug)]
struct Step {
    name: String,
    wanted: Wanted,
    folders: Vec<String>,
    locked: Option<Locked>,
    /// The lock's revision still stands (no new resolution asked or needed).
    keep_revision: bool,
    /// `update` asked for it: resolved again, and what is there now recorded.
    updating: bool,
    /// Its folders that held what the lock says when planned (hashed once, there).
    intact: BTreeSet<String>,
}

impl Step {
    /// Whether the lock records `content`'s revision for this skill.
    fn holds(&self, content: &Content) -> bool {
        let (digest, commit) = content.revision();
        self.locked
            .as_ref()
            .is_some_and(|locked| locked.digest == digest && locked.commit == commit)
    }

    /// Whether `folder` is written: unless it held this revision, as locked, when planned (or
    /// `--force`).
    fn writes(&self, folder: &str, same_revision: bool, force: bool) -> bool {
        force || !(same_revision && self.intact.contains(folder))
    }
}

/// Installs what the manifest (plus `request.add`) asks for; see the module comment.
pub async fn install(
    project: &Project,
    request: &Request,
    store: &Store,
    client: &Client,
    progress: Arc<dyn Progress>,
) -> Result<Vec<Installed>, InstallError> {
    let mut manifest = project.manifest()?;
    let before = manifest.clone();
    let mut lock = project.lock()?;
    add_requested(project, request, &mut manifest)?;
    if manifest.skills.is_empty() && lock.skills.is_empty() {
        return Err(InstallError::Nothing {
            manifest: project.manifest_path(),
        });
    }
    if request.frozen {
        frozen_check(project, &manifest, &lock)?;
    }
    let steps = plan(project, request, &manifest, &lock)?;
    // `update NAME` touches NAME alone; the other verbs also take away what the manifest no
    // longer asks for.
    let removals = match &request.update {
        Some(names) if !names.is_empty() => Vec::new(),
        _ => removals(project, request, &manifest, &lock)?,
    };

    // Revisions: the lock's, or resolved now; then the images the store lacks. Nothing on disk
    // has changed yet.
    // Tags and git refs are resolved together (each is a round trip to its server).
    let resolved: Vec<Content> = stream::iter(&steps)
        .map(|step| revision(project, step, request, store, client))
        .buffered(RESOLVING)
        .try_collect()
        .await?;
    let contents: BTreeMap<String, Content> = steps
        .iter()
        .map(|step| step.name.clone())
        .zip(resolved)
        .collect();
    let prestaged =
        pull_missing(project, request, &steps, &contents, store, client, progress).await?;

    // From here the lock follows the disk step by step: folders removed leave it as they go,
    // and each skill written enters it; a failure stops with the lock saying what is there.
    let mut done = Vec::new();
    for (name, folders) in &removals {
        for folder in folders {
            if let Err(err) = remove_folder(&project.on_disk(folder)) {
                manifest::write(&project.lock_path(), &lock)?;
                return Err(err);
            }
            if let Some(locked) = lock.skills.get_mut(name) {
                locked.installed.retain(|kept| kept != folder);
            }
        }
        if !manifest.skills.contains_key(name) {
            let locked = lock.skills.remove(name);
            done.push(Installed {
                name: name.clone(),
                source: locked.map(|l| l.source.to_string()).unwrap_or_default(),
                revision: String::new(),
                change: Change::Removed,
                folders: folders.clone(),
            });
        }
    }
    manifest::write(&project.lock_path(), &lock)?;

    // A skill that fails keeps its previous lock entry and manifest entry (a skill this
    // command added is left out): each skill's folders all change or none do.
    let mut failed = None;
    for (step, result) in steps.iter().zip(write_all(
        project, &steps, &contents, &prestaged, store, request, &lock,
    )) {
        match result {
            Ok((locked, installed)) => {
                lock.skills.insert(step.name.clone(), locked);
                done.push(installed);
            }
            Err(err) => {
                match before.skills.get(&step.name) {
                    Some(wanted) => manifest.skills.insert(step.name.clone(), wanted.clone()),
                    None => manifest.skills.remove(&step.name),
                };
                failed.get_or_insert(err);
            }
        }
    }
    manifest::write(&project.manifest_path(), &manifest)?;
    manifest::write(&project.lock_path(), &lock)?;
    match failed {
        Some(err) => Err(err),
        None => Ok(done),
    }
}

/// Adds (or replaces) the requested skills in the manifest.
fn add_requested(
    project: &Project,
    request: &Request,
    manifest: &mut Manifest,
) -> Result<(), InstallError> {
    let mut targets: Vec<String> = request.targets.clone();
    targets.sort();
    targets.dedup();
    for target in &targets {
        Target::parse(target).map_err(|reason| InstallError::Manifest {
            path: project.manifest_path(),
            reason,
        })?;
    }
    for (source, name) in &request.add {
        source.kind().map_err(|reason| InstallError::Manifest {
            path: project.manifest_path(),
            reason,
        })?;
        let name = match name {
            Some(name) => name.clone(),
            None => default_name(project, source)?,
        };
        if !skillport_skill::is_valid_name(&name) {
            return Err(skill_error(
                &name,
                source,
                "not a skill name (lowercase a-z, 0-9 and -); pass --name",
            ));
        }
        let targets = if targets.is_empty() {
            manifest
                .skills
                .get(&name)
                .map(|wanted| wanted.targets.clone())
                .unwrap_or_default()
        } else {
            targets.clone()
        };
        manifest.skills.insert(
            name,
            Wanted {
                source: source.clone(),
                targets,
            },
        );
    }
    Ok(())
}

/// The folder name a source installs as: an image's repository's last part, a git path's last
/// part (else the repository's), a local folder's skill name (else the folder's).
fn default_name(project: &Project, source: &Source) -> Result<String, InstallError> {
    let last = |text: &str| {
        text.trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .trim_end_matches(".git")
            .to_owned()
    };
    Ok(match source.kind().expect("checked") {
        Kind::Image(text) => {
            let reference: Reference = text.parse().map_err(|err| skill_error("?", source, err))?;
            last(reference.repository())
        }
        Kind::Git { url, path, .. } => path.map_or_else(|| last(url), last),
        Kind::Folder(folder) => {
            let dir = project.root.join(folder);
            skillport_skill::load(&dir, skillport_skill::Mode::Lenient)
                .map(|skill| skill.frontmatter.name)
                .ok()
                .filter(|name| skillport_skill::is_valid_name(name))
                .unwrap_or_else(|| last(folder))
        }
    })
}

/// `--frozen`: every manifest skill is locked with the same source and folders, and the lock
/// has nothing else.
fn frozen_check(project: &Project, manifest: &Manifest, lock: &Lock) -> Result<(), InstallError> {
    let mut differences = Vec::new();
    for (name, wanted) in &manifest.skills {
        match lock.skills.get(name) {
            None => differences.push(format!("{name} is not locked")),
            Some(locked) if locked.source != wanted.source => differences.push(format!(
                "{name} is {} in the manifest, {} in the lock",
                wanted.source, locked.source
            )),
            Some(locked) if locked.installed != project.folders(name, wanted)? => {
                differences.push(format!("{name} has other targets in the manifest"));
            }
            Some(_) => {}
        }
    }
    for name in lock.skills.keys() {
        if !manifest.skills.contains_key(name) {
            differences.push(format!("{name} is locked but not in the manifest"));
        }
    }
    if differences.is_empty() {
        Ok(())
    } else {
        Err(InstallError::Frozen { differences })
    }
}

/// Each manifest skill's step; refuses folders it may not write.
fn plan(
    project: &Project,
    request: &Request,
    manifest: &Manifest,
    lock: &Lock,
) -> Result<Vec<Step>, InstallError> {
    if let Some(names) = &request.update {
        for name in names {
            if !manifest.skills.contains_key(name) {
                return Err(InstallError::Unknown {
                    name: name.clone(),
                    manifest: project.manifest_path(),
                });
            }
        }
    }
    let mut steps = Vec::new();
    for (name, wanted) in &manifest.skills {
        // `update NAME` touches NAME alone.
        if let Some(names) = request.update.as_ref().filter(|names| !names.is_empty())
            && !names.contains(name)
        {
            continue;
        }
        let folders = project.folders(name, wanted)?;
        let locked = lock
            .skills
            .get(name)
            .filter(|locked| locked.source == wanted.source)
            .cloned();
        let updating = request
            .update
            .as_ref()
            .is_some_and(|names| names.is_empty() || names.contains(name));
        let mut intact = BTreeSet::new();
        for folder in &folders {
            if check_writable(project, request, lock, name, folder)? {
                intact.insert(folder.clone());
            }
        }
        steps.push(Step {
            name: name.clone(),
            wanted: wanted.clone(),
            folders,
            keep_revision: locked.is_some() && !updating,
            updating,
            intact,
            locked,
        });
    }
    Ok(steps)
}

/// A folder may be written when it is absent, or the lock says this skill put it there and it
/// still holds what the lock says (else `--force`), or with `--adopt`. `Ok(true)`: it holds
/// exactly what the lock says.
fn check_writable(
    project: &Project,
    request: &Request,
    lock: &Lock,
    name: &str,
    folder: &str,
) -> Result<bool, InstallError> {
    let path = project.on_disk(folder);
    if std::fs::symlink_metadata(&path).is_err() {
        return Ok(false);
    }
    let ours = lock
        .skills
        .get(name)
        .filter(|locked| locked.installed.iter().any(|f| f == folder));
    match ours {
        None if request.adopt => Ok(false),
        None => Err(InstallError::NotOurs {
            folder: path,
            lock: project.lock_path(),
        }),
        Some(locked) => match folder_state(&path, locked) {
            FolderState::Intact => Ok(true),
            _ if request.force => Ok(false),
            FolderState::Missing => Ok(false),
            FolderState::Changed(changes) => Err(InstallError::Changed {
                folder: path,
                summary: summary(&changes),
                force: REPLACE,
            }),
            FolderState::Unreadable(reason) => Err(InstallError::Changed {
                folder: path,
                summary: reason,
                force: REPLACE,
            }),
        },
    }
}

/// What `--force` does to a changed folder that would be written, and to one that would be
/// removed.
const REPLACE: &str = "replaces it with the locked content";
const DELETE: &str = "deletes it, with those changes";

/// A folder about to be removed must hold what the lock says (or be gone already).
fn refuse_changed(path: &Path, locked: &Locked) -> Result<(), InstallError> {
    let summary = match folder_state(path, locked) {
        FolderState::Intact | FolderState::Missing => return Ok(()),
        FolderState::Changed(changes) => summary(&changes),
        FolderState::Unreadable(reason) => reason,
    };
    Err(InstallError::Changed {
        folder: path.to_owned(),
        summary,
        force: DELETE,
    })
}

/// Locked folders to remove: skills no longer in the manifest, and folders a skill no longer
/// targets. Each must still hold what the lock says (else `--force`).
fn removals(
    project: &Project,
    request: &Request,
    manifest: &Manifest,
    lock: &Lock,
) -> Result<Vec<(String, Vec<String>)>, InstallError> {
    let mut out = Vec::new();
    for (name, locked) in &lock.skills {
        let kept = match manifest.skills.get(name) {
            Some(wanted) => project.folders(name, wanted)?,
            None => Vec::new(),
        };
        let gone: Vec<String> = locked
            .installed
            .iter()
            .filter(|folder| !kept.contains(folder))
            .cloned()
            .collect();
        for folder in &gone {
            if !request.force {
                refuse_changed(&project.on_disk(folder), locked)?;
            }
        }
        if !gone.is_empty() || !manifest.skills.contains_key(name) {
            out.push((name.clone(), gone));
        }
    }
    Ok(out)
}

/// The content of a step: the lock's revision, or one resolved (and, for a local folder,
/// built) now.
async fn revision(
    project: &Project,
    step: &Step,
    request: &Request,
    store: &Store,
    client: &Client,
) -> Result<Content, InstallError> {
    let source = &step.wanted.source;
    let fail = |reason: String| skill_error(&step.name, source, reason);
    let locked = step.locked.as_ref().filter(|_| step.keep_revision);
    match source.kind().expect("checked") {
        Kind::Image(text) => {
            let reference: Reference = text.parse().map_err(|err| fail(format!("{err}")))?;
            let digest = match (locked.and_then(|l| l.digest.clone()), reference.digest()) {
                (Some(digest), _) => digest,
                (None, Some(digest)) => digest.to_string(),
                (None, None) => resolve_image(&reference, store, client)
                    .await
                    .map_err(fail)?,
            };
            let pinned: Reference = format!("{}@{digest}", reference.name())
                .parse()
                .map_err(|err| fail(format!("{err}")))?;
            // An image of the local store (no registry in its name) is never pulled.
            if reference.registry().is_none() && store.resolve(&pinned).is_err() {
                return Err(fail(format!(
                    "{pinned} is not in the local store; build or pull it first (`skillport \
                     images` lists the store)"
                )));
            }
            Ok(Content::Image(pinned))
        }
        Kind::Git {
            url,
            reference,
            path,
        } => {
            let commit = if let Some(commit) = locked.and_then(|l| l.commit.clone()) {
                commit
            } else {
                resolve_git(url, reference, path).await.map_err(fail)?
            };
            Ok(Content::Git {
                url: url.to_owned(),
                commit,
                path: path.map(str::to_owned),
            })
        }
        Kind::Folder(folder) => {
            let reference =
                build_folder(&project.root.join(folder), &step.name, store).map_err(fail)?;
            let built = reference.digest().expect("pinned").to_string();
            if let Some(locked_digest) = locked.and_then(|l| l.digest.as_deref())
                && locked_digest != built
                && request.frozen
            {
                return Err(InstallError::Frozen {
                    differences: vec![format!(
                        "{} builds to {built}, the lock has {locked_digest}",
                        step.name
                    )],
                });
            }
            Ok(Content::Image(reference))
        }
    }
}

/// The digest a tag names now: in the local store for a name without a registry
/// (`pdf-tools:1.0.0`, as `skillport build` names images), else at its registry.
async fn resolve_image(
    reference: &Reference,
    store: &Store,
    client: &Client,
) -> Result<String, String> {
    if reference.registry().is_none() {
        return store
            .resolve(reference)
            .map(|stored| stored.descriptor.digest.to_string())
            .map_err(|err| format!("{err}; build or pull it first"));
    }
    client
        .resolve(reference)
        .await
        .map(|descriptor| descriptor.digest.to_string())
        .map_err(|err| skillport_fetch::error_chain(&err))
}

/// The commit a git ref names now (`ls-refs`, no pack downloaded).
async fn resolve_git(url: &str, reference: &str, path: Option<&str>) -> Result<String, String> {
    let git = skillport_fetch::git::GitSource {
        url: url.to_owned(),
        reference: reference.to_owned(),
        path: path.map(str::to_owned),
    };
    tokio::task::spawn_blocking(move || {
        skillport_fetch::git::resolve(&git, None, &skillport_fetch::git::GitOptions::default())
    })
    .await
    .expect("resolving does not panic")
    .map_err(|err| err.to_string())
}

/// Builds the skill folder `dir` into the store as `NAME:VERSION` (or `latest`); returns the
/// image pinned by digest.
fn build_folder(dir: &Path, name: &str, store: &Store) -> Result<Reference, String> {
    let skill = skillport_skill::load(dir, skillport_skill::Mode::Strict).map_err(|err| {
        format!(
            "{err}; check it with `skillport validate {}`",
            dir.display()
        )
    })?;
    let entries = skillport_skill::walk(dir).map_err(|err| err.to_string())?;
    let version = skill
        .frontmatter
        .metadata
        .get("version")
        .cloned()
        .unwrap_or_else(|| "latest".to_owned());
    let tag: Reference = format!("{name}:{version}")
        .parse()
        .or_else(|_| format!("{name}:latest").parse())
        .map_err(|err| format!("{err}"))?;
    let request = skillport_oci::BuildRequest {
        skill: &skill,
        entries: &entries,
        generated_card: None,
        source_date_epoch: None,
        names: std::slice::from_ref(&tag),
    };
    let built =
        skillport_oci::build(store, &request, &mut |_| {}).map_err(|err| err.to_string())?;
    format!("{}@{}", tag.name(), built.digest())
        .parse()
        .map_err(|err| format!("{err}"))
}

/// Pulls the images the store lacks, with one store commit for all of them. Each one's layer
/// is unpacked as it downloads, beside the first folder that will get it (in the nearest
/// folder that exists: nothing is created before the pull succeeds); returns those staged
/// copies by image.
async fn pull_missing(
    project: &Project,
    request: &Request,
    steps: &[Step],
    contents: &BTreeMap<String, Content>,
    store: &Store,
    client: &Client,
    progress: Arc<dyn Progress>,
) -> Result<Prestaged, InstallError> {
    let mut requests: Vec<(Reference, Option<PathBuf>)> = Vec::new();
    // Two skills may name one image.
    let mut seen = BTreeSet::new();
    for step in steps {
        let Content::Image(reference) = &contents[&step.name] else {
            continue;
        };
        if store.resolve(reference).is_ok() || !seen.insert(reference.to_string()) {
            continue;
        }
        let same_revision = step.holds(&contents[&step.name]);
        let unpack_in = step
            .folders
            .iter()
            .find(|folder| step.writes(folder, same_revision, request.force))
            .and_then(|folder| {
                project
                    .on_disk(folder)
                    .ancestors()
                    .skip(1)
                    .find(|dir| dir.is_dir())
                    .map(Path::to_path_buf)
            });
        requests.push((reference.clone(), unpack_in));
    }
    if requests.is_empty() {
        return Ok(Prestaged::default());
    }
    let (_, unpacked) = client
        .pull_all_unpacking(store, &requests, progress)
        .await
        .map_err(|err| InstallError::Skill {
            name: requests
                .iter()
                .map(|(reference, _)| reference.repository().to_owned())
                .collect::<Vec<_>>()
                .join(", "),
            source_text: "the registry".to_owned(),
            reason: skillport_fetch::error_chain(&err),
        })?;
    let staged = requests
        .into_iter()
        .zip(unpacked)
        .filter_map(|((reference, _), unpacked)| Some((reference.to_string(), unpacked?)))
        .collect();
    Ok(Prestaged(std::sync::Mutex::new(staged)))
}

/// Layers unpacked while they were pulled, by image; each is taken once, by the first folder
/// written from it.
#[derive(Default)]
struct Prestaged(std::sync::Mutex<BTreeMap<String, Unpacking>>);

impl Prestaged {
    fn take(&self, reference: &Reference) -> Option<Unpacking> {
        self.0
            .lock()
            .expect("not poisoned")
            .remove(&reference.to_string())
    }
}

/// [`write_skill`] for every step, on as many threads as there are cores (unpacking and
/// hashing are CPU and disk work); results in step order.
fn write_all(
    project: &Project,
    steps: &[Step],
    contents: &BTreeMap<String, Content>,
    prestaged: &Prestaged,
    store: &Store,
    request: &Request,
    lock: &Lock,
) -> Vec<Result<(Locked, Installed), InstallError>> {
    let workers = std::thread::available_parallelism()
        .map_or(4, std::num::NonZeroUsize::get)
        .min(steps.len())
        .max(1);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Option<_>>> =
        steps.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(step) = steps.get(index) else { break };
                    let content = &contents[&step.name];
                    let result =
                        write_skill(project, step, content, prestaged, store, request, lock);
                    *results[index].lock().expect("not poisoned") = Some(result);
                }
            });
        }
    });
    results
        .into_iter()
        .map(|slot| {
            slot.into_inner()
                .expect("not poisoned")
                .expect("every step ran")
        })
        .collect()
}

/// Writes one skill to each of its folders (skipping those already as locked); returns its
/// lock entry and what happened.
fn write_skill(
    project: &Project,
    step: &Step,
    content: &Content,
    prestaged: &Prestaged,
    store: &Store,
    request: &Request,
    lock: &Lock,
) -> Result<(Locked, Installed), InstallError> {
    let source = &step.wanted.source;
    let fail = |reason: String| skill_error(&step.name, source, reason);
    let (digest, commit) = content.revision();
    let same_revision = step.holds(content);
    // The lock's hash holds for the same revision, except when `update` asks to record what is
    // there now.
    let mut recorded: Option<(String, BTreeMap<String, String>)> = step
        .locked
        .as_ref()
        .filter(|_| same_revision && !step.updating)
        .map(|locked| (locked.tree_hash.clone(), locked.files.clone()));
    // First every folder is staged beside its destination and checked; only then are they
    // swapped in, so that a skill's folders all change or none do.
    let mut staged_folders = Vec::new();
    for folder in &step.folders {
        let dest = project.on_disk(folder);
        if !step.writes(folder, same_revision, request.force) {
            continue;
        }
        let parent = dest.parent().expect("a folder under a target").to_owned();
        std::fs::create_dir_all(&parent)
            .map_err(|err| fail(format!("creating {}: {err}", parent.display())))?;
        let staging = tempfile::Builder::new()
            .prefix(".skillport-")
            .tempdir_in(&parent)
            .map_err(|err| fail(format!("creating a folder in {}: {err}", parent.display())))?;
        let staged = staging.path().join("skill");
        let unpacked = materialize(content, prestaged, store, &staged).map_err(&fail)?;
        skillport_skill::load(&staged, skillport_skill::Mode::Lenient)
            .map_err(|err| fail(format!("not a usable skill: {err}")))?;
        let (tree_hash, entries) = match unpacked {
            Some(unpacked) => (unpacked.tree_hash(), unpacked.tree),
            None => tree_hash_with_entries(&staged).map_err(|err| fail(err.to_string()))?,
        };
        let tree_hash = tree_hash.to_string();
        match &recorded {
            Some((locked_hash, _)) if *locked_hash != tree_hash => {
                return Err(InstallError::NotReproduced {
                    name: step.name.clone(),
                    source_text: source.to_string(),
                    found: tree_hash,
                    locked: locked_hash.clone(),
                });
            }
            Some(_) => {}
            None => recorded = Some((tree_hash, files_of(&entries))),
        }
        staged_folders.push((folder, dest, staging, staged));
    }
    let wrote_any = !staged_folders.is_empty();
    swap_all(project, request, lock, step, &staged_folders)?;
    // Every folder was either written or in place, as a lock entry of this revision says.
    let recorded = recorded.or_else(|| {
        step.locked
            .as_ref()
            .filter(|_| same_revision)
            .map(|locked| (locked.tree_hash.clone(), locked.files.clone()))
    });
    let Some((tree_hash, files)) = recorded else {
        unreachable!("a skill with folders either was written or is locked")
    };
    let change = match (&step.locked, wrote_any) {
        (_, false) => Change::UpToDate,
        (None, true) => Change::Installed,
        (Some(_), true) => Change::Updated,
    };
    let revision = digest
        .clone()
        .or_else(|| commit.clone())
        .unwrap_or_default();
    let locked = Locked {
        source: source.clone(),
        digest,
        commit,
        tree_hash,
        files,
        installed: step.folders.clone(),
    };
    Ok((
        locked,
        Installed {
            name: step.name.clone(),
            source: source.to_string(),
            revision,
            change,
            folders: step.folders.clone(),
        },
    ))
}

/// A folder staged beside its destination: the recorded folder, the destination, the staging
/// folder (deleted with whatever ends up in it) and the staged skill in it.
type StagedFolder<'a> = (&'a String, PathBuf, tempfile::TempDir, PathBuf);

/// Swaps every staged folder in, each checked again just before (the download may have taken
/// minutes); on a failure the ones already swapped are put back.
fn swap_all(
    project: &Project,
    request: &Request,
    lock: &Lock,
    step: &Step,
    staged_folders: &[StagedFolder<'_>],
) -> Result<(), InstallError> {
    let fail = |reason: String| skill_error(&step.name, &step.wanted.source, reason);
    let mut swapped: Vec<(&PathBuf, &Path, bool)> = Vec::new();
    for (folder, dest, staging, staged) in staged_folders {
        let result = check_writable(project, request, lock, &step.name, folder).and_then(|_| {
            let existed = std::fs::symlink_metadata(dest).is_ok();
            skillport_fetch::swap_folder(staged, dest, &staging.path().join("old"))
                .map(|()| existed)
                .map_err(|err| fail(format!("moving it to {}: {err}", dest.display())))
        });
        match result {
            Ok(existed) => swapped.push((dest, staged, existed)),
            Err(err) => {
                for (dest, staged, existed) in swapped.into_iter().rev() {
                    let back = if existed {
                        skillport_fetch::swap_folder(staged, dest, &staged.with_extension("old"))
                    } else {
                        std::fs::rename(dest, staged)
                    };
                    if let Err(undo) = back {
                        tracing::warn!("putting back {}: {undo}", dest.display());
                    }
                }
                return Err(err);
            }
        }
    }
    Ok(())
}

/// Puts the skill's files at `dest` (new; its parent is on the target's file system): an
/// image's as unpacked while it was pulled when that copy can be moved there, else unpacked
/// from the store. An image's files come with their tree, hashed while they were unpacked.
fn materialize(
    content: &Content,
    prestaged: &Prestaged,
    store: &Store,
    dest: &Path,
) -> Result<Option<skillport_oci::Unpacked>, String> {
    match content {
        Content::Image(reference) => {
            let stored = store.resolve(reference).map_err(|err| err.to_string())?;
            let image = skillport_oci::skill_image(store, &stored.descriptor)
                .map_err(|err| err.to_string())?;
            // Another file system (EXDEV) or another layer: unpacked again from the store.
            if let Some(unpacking) = prestaged.take(reference)
                && unpacking.layer == image.layer.digest
                && let Ok(unpacked) = unpacking.staged.publish(dest)
            {
                return Ok(Some(unpacked));
            }
            let blob = store
                .open_blob(&image.layer.digest)
                .map_err(|err| err.to_string())?;
            let parent = dest.parent().expect("staging");
            let staged = skillport_oci::unpack_verified(blob, &image.layer, image.format, parent)
                .map_err(|err| err.to_string())?;
            staged
                .publish(dest)
                .map(Some)
                .map_err(|err| err.to_string())
        }
        Content::Git { url, commit, path } => {
            let source = skillport_fetch::git::GitSource {
                url: url.clone(),
                reference: commit.clone(),
                path: path.clone(),
            };
            skillport_fetch::git::fetch(
                &source,
                None,
                dest,
                &skillport_fetch::git::GitOptions::default(),
            )
            .map(|_| None)
            .map_err(|err| err.to_string())
        }
    }
}

/// The lock's `files`: each path and what it held.
fn files_of(entries: &[TreeEntry]) -> BTreeMap<String, String> {
    entries
        .iter()
        .map(|entry| {
            (
                String::from_utf8_lossy(&entry.path).into_owned(),
                entry.describe(),
            )
        })
        .collect()
}

/// Removes a folder in one step (renamed away, then deleted).
fn remove_folder(path: &Path) -> Result<(), InstallError> {
    if std::fs::symlink_metadata(path).is_err() {
        return Ok(());
    }
    let io = |err: std::io::Error| InstallError::Manifest {
        path: path.to_owned(),
        reason: format!("cannot remove it: {err}"),
    };
    let parent = path.parent().unwrap_or(Path::new("."));
    let trash = tempfile::Builder::new()
        .prefix(".skillport-")
        .tempdir_in(parent)
        .map_err(io)?;
    std::fs::rename(path, trash.path().join("removed")).map_err(io)?;
    trash.close().map_err(io)
}

/// What a folder holds compared with its lock entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FolderState {
    Intact,
    Missing,
    /// Paths edited, added and removed.
    Changed(Vec<(String, &'static str)>),
    Unreadable(String),
}

/// Compares the folder at `path` with `locked`: the tree hash, then file by file.
pub fn folder_state(path: &Path, locked: &Locked) -> FolderState {
    if std::fs::symlink_metadata(path).is_err() {
        return FolderState::Missing;
    }
    let (hash, entries) = match tree_hash_with_entries(path) {
        Ok(found) => found,
        Err(err) => return FolderState::Unreadable(err.to_string()),
    };
    if hash.to_string() == locked.tree_hash {
        return FolderState::Intact;
    }
    let found = files_of(&entries);
    let mut changes = Vec::new();
    for (file, held) in &found {
        match locked.files.get(file) {
            None => changes.push((file.clone(), "added")),
            Some(was) if was != held => changes.push((file.clone(), "edited")),
            Some(_) => {}
        }
    }
    for file in locked.files.keys() {
        if !found.contains_key(file) {
            changes.push((file.clone(), "removed"));
        }
    }
    changes.sort();
    if changes.is_empty() {
        // Same files, other hash: the lock's own fields disagree.
        changes.push(("(the lock's treeHash)".to_owned(), "edited"));
    }
    FolderState::Changed(changes)
}

fn summary(changes: &[(String, &'static str)]) -> String {
    changes
        .iter()
        .map(|(file, what)| format!("{file} {what}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One installed folder, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    pub name: String,
    pub folder: String,
    pub state: FolderState,
}

/// Checks every folder the lock lists against it. No network, nothing written.
pub fn verify(project: &Project) -> Result<Vec<Checked>, InstallError> {
    let lock = project.lock()?;
    let mut out = Vec::new();
    for (name, locked) in &lock.skills {
        for folder in &locked.installed {
            out.push(Checked {
                name: name.clone(),
                folder: folder.clone(),
                state: folder_state(&project.on_disk(folder), locked),
            });
        }
    }
    Ok(out)
}

/// A skill whose tag or branch now points elsewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outdated {
    pub name: String,
    pub source: String,
    pub locked: String,
    pub latest: String,
}

/// Resolves every locked tag and git ref again; lists those that moved. Digests, full commit
/// SHAs and local folders never move.
pub async fn outdated(
    project: &Project,
    store: &Store,
    client: &Client,
) -> Result<Vec<Outdated>, InstallError> {
    let lock = project.lock()?;
    // Every tag and ref at once (each is a round trip to its server), reported in lock order.
    let checked: Vec<Option<Outdated>> = stream::iter(&lock.skills)
        .map(|(name, locked)| outdated_one(name, locked, store, client))
        .buffered(RESOLVING)
        .try_collect()
        .await?;
    Ok(checked.into_iter().flatten().collect())
}

/// Whether the tag or ref of one locked skill names something else now.
async fn outdated_one(
    name: &str,
    locked: &Locked,
    store: &Store,
    client: &Client,
) -> Result<Option<Outdated>, InstallError> {
    let fail = |reason: String| skill_error(name, &locked.source, reason);
    let (now, was) = match locked.source.kind().map_err(fail)? {
        Kind::Image(text) => {
            let reference: Reference = text.parse().map_err(|err| fail(format!("{err}")))?;
            if reference.digest().is_some() {
                return Ok(None);
            }
            let resolved = resolve_image(&reference, store, client)
                .await
                .map_err(fail)?;
            (resolved, locked.digest.clone())
        }
        Kind::Git {
            url,
            reference,
            path,
        } => {
            let commit = resolve_git(url, reference, path).await.map_err(fail)?;
            (commit, locked.commit.clone())
        }
        Kind::Folder(_) => return Ok(None),
    };
    let was = was.unwrap_or_default();
    Ok((now != was).then(|| Outdated {
        name: name.to_owned(),
        source: locked.source.to_string(),
        locked: was,
        latest: now,
    }))
}

/// Tags and git refs resolved at once.
const RESOLVING: usize = 8;

/// Removes skills: their folders (which must still hold what the lock says, else `force`),
/// their manifest and lock entries. Returns the folders removed.
pub fn uninstall(
    project: &Project,
    names: &[String],
    force: bool,
) -> Result<Vec<String>, InstallError> {
    let mut manifest = project.manifest()?;
    let mut lock = project.lock()?;
    for name in names {
        if !manifest.skills.contains_key(name) && !lock.skills.contains_key(name) {
            return Err(InstallError::Unknown {
                name: name.clone(),
                manifest: project.manifest_path(),
            });
        }
        if let Some(locked) = lock.skills.get(name) {
            for folder in &locked.installed {
                if !force {
                    refuse_changed(&project.on_disk(folder), locked)?;
                }
            }
        }
    }
    let mut removed = Vec::new();
    for name in names {
        manifest.skills.remove(name);
        if let Some(locked) = lock.skills.remove(name) {
            for folder in locked.installed {
                remove_folder(&project.on_disk(&folder))?;
                removed.push(folder);
            }
        }
    }
    manifest::write(&project.manifest_path(), &manifest)?;
    manifest::write(&project.lock_path(), &lock)?;
    Ok(removed)
}
