// `install`, `list`, `outdated`, `update`, `uninstall` and `verify` of installed skills: flags
// to a `skillport_install::Project` and a `Request`, and the results printed.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use serde_json::json;
use skillport_install::{Change, FolderState, Installed, Project, Request, Source, manifest::Kind};
use skillport_oci::{Reference, Store};

use crate::cli::{InstallArgs, OutdatedArgs, ScopeArgs, UninstallArgs, UpdateArgs, VerifyArgs};
use crate::output::print_table;
use crate::remote::{Bars, RegistrySettings, block_on, print_json};

/// This project (the current folder), or with `--global` the user's scope.
fn project(scope: &ScopeArgs) -> Result<Project> {
    let home = std::env::var_os("HOME")
        .filter(|home| !home.is_empty())
        .map(PathBuf::from)
        .context("HOME is not set: skillport needs it for ~/… folders")?;
    if scope.global {
        let config = std::env::var_os("XDG_CONFIG_HOME")
            .filter(|dir| !dir.is_empty())
            .map_or_else(|| home.join(".config"), PathBuf::from)
            .join("skillport");
        Ok(Project::global(&home, &config))
    } else {
        let root = std::env::current_dir().context("reading the current folder")?;
        Ok(Project::local(&root, &home))
    }
}

/// The image references a run may reach: for the client's per-registry trust and settings.
fn image_references(project: &Project, extra: &[Source]) -> Vec<Reference> {
    let manifest = project.manifest().unwrap_or_default();
    manifest
        .skills
        .values()
        .map(|wanted| &wanted.source)
        .chain(extra)
        .filter_map(|source| match source.kind() {
            Ok(Kind::Image(text)) => text.parse().ok(),
            _ => None,
        })
        .collect()
}

fn run_install(
    settings: &RegistrySettings,
    store: &Store,
    project: &Project,
    request: &Request,
) -> Result<Vec<Installed>> {
    let extra: Vec<Source> = request
        .add
        .iter()
        .map(|(source, _)| source.clone())
        .collect();
    let references = image_references(project, &extra);
    let client = settings.client(&references.iter().collect::<Vec<_>>())?;
    let done = block_on(skillport_install::install(
        project,
        request,
        store,
        &client,
        Bars::shared(),
    ))?;
    for skill in &done {
        let what = match skill.change {
            Change::Installed => "installed",
            Change::Updated => "updated",
            Change::UpToDate => "up to date",
            Change::Removed => "removed",
        };
        eprintln!(
            "{what:<10} {} {} -> {}",
            skill.name,
            short(&skill.revision),
            skill.folders.join(", ")
        );
    }
    eprintln!(
        "wrote {} and {}",
        project.manifest_path().display(),
        project.lock_path().display()
    );
    Ok(done)
}

pub fn install(settings: &RegistrySettings, store: &Store, args: &InstallArgs) -> Result<ExitCode> {
    if args.name.is_some() && args.sources.len() != 1 {
        bail!("--name names one skill: give exactly one SOURCE with it");
    }
    let cwd = std::env::current_dir().context("reading the current folder")?;
    let add = args
        .sources
        .iter()
        .map(|text| {
            let mut source = Source::parse(text).map_err(anyhow::Error::msg)?;
            // The user's scope has no project folder: a folder source is kept absolute.
            if let Some(folder) = &source.folder
                && args.scope.global
            {
                source.folder = Some(cwd.join(folder).display().to_string());
            }
            Ok((source, args.name.clone()))
        })
        .collect::<Result<Vec<_>>>()?;
    let request = Request {
        add,
        targets: args.targets.clone(),
        frozen: args.frozen,
        update: None,
        adopt: args.adopt,
        force: args.force,
    };
    let project = project(&args.scope)?;
    let done = run_install(settings, store, &project, &request)?;
    if args.scope.json {
        print_json(&installed_json(&done))?;
    }
    Ok(ExitCode::SUCCESS)
}

pub fn update(settings: &RegistrySettings, store: &Store, args: &UpdateArgs) -> Result<ExitCode> {
    let request = Request {
        update: Some(args.names.clone()),
        force: args.force,
        ..Request::default()
    };
    let project = project(&args.scope)?;
    let done = run_install(settings, store, &project, &request)?;
    if args.scope.json {
        print_json(&installed_json(&done))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn installed_json(done: &[Installed]) -> serde_json::Value {
    done.iter()
        .map(|skill| {
            json!({
                "name": skill.name,
                "source": skill.source,
                "revision": skill.revision,
                "change": format!("{:?}", skill.change).to_lowercase(),
                "folders": skill.folders,
            })
        })
        .collect()
}

/// `sha256:0123456789ab` or a 12-digit commit.
fn short(revision: &str) -> String {
    match revision.strip_prefix("sha256:") {
        Some(hex) => format!("sha256:{}", &hex[..hex.len().min(12)]),
        None => revision[..revision.len().min(12)].to_owned(),
    }
}

pub fn list(args: &ScopeArgs) -> Result<ExitCode> {
    let project = project(args)?;
    let lock = project.lock()?;
    if args.json {
        let skills: Vec<_> = lock
            .skills
            .iter()
            .map(|(name, locked)| {
                json!({
                    "name": name,
                    "source": locked.source.to_string(),
                    "digest": locked.digest,
                    "commit": locked.commit,
                    "treeHash": locked.tree_hash,
                    "folders": locked.installed,
                })
            })
            .collect();
        print_json(&json!(skills))?;
        return Ok(ExitCode::SUCCESS);
    }
    if lock.skills.is_empty() {
        eprintln!(
            "no skills installed ({} is empty or absent)",
            project.lock_path().display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = lock
        .skills
        .iter()
        .map(|(name, locked)| {
            let revision = locked.digest.clone().or_else(|| locked.commit.clone());
            vec![
                name.clone(),
                locked.source.to_string(),
                short(&revision.unwrap_or_default()),
                locked.installed.join(", "),
            ]
        })
        .collect();
    print_table(&["NAME", "SOURCE", "REVISION", "FOLDERS"], &rows);
    Ok(ExitCode::SUCCESS)
}

pub fn outdated(
    settings: &RegistrySettings,
    store: &Store,
    args: &OutdatedArgs,
) -> Result<ExitCode> {
    let project = project(&args.scope)?;
    let references = image_references(&project, &[]);
    let client = settings.client(&references.iter().collect::<Vec<_>>())?;
    let found = block_on(skillport_install::outdated(&project, store, &client))?;
    if args.scope.json {
        let rows: Vec<_> = found
            .iter()
            .map(|o| json!({"name": o.name, "source": o.source, "locked": o.locked, "latest": o.latest}))
            .collect();
        print_json(&json!(rows))?;
    } else if found.is_empty() {
        eprintln!("every installed skill is at what its tag or branch points to");
    } else {
        let rows: Vec<Vec<String>> = found
            .iter()
            .map(|o| {
                vec![
                    o.name.clone(),
                    o.source.clone(),
                    short(&o.locked),
                    short(&o.latest),
                ]
            })
            .collect();
        print_table(&["NAME", "SOURCE", "LOCKED", "LATEST"], &rows);
        eprintln!("`skillport update` moves them");
    }
    Ok(ExitCode::SUCCESS)
}

pub fn uninstall(args: &UninstallArgs) -> Result<ExitCode> {
    let project = project(&args.scope)?;
    let removed = skillport_install::uninstall(&project, &args.names, args.force)?;
    for folder in &removed {
        eprintln!("removed {folder}");
    }
    if args.scope.json {
        print_json(&json!({"removed": removed}))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `verify` without --skill: the installed skills against the lock.
pub fn verify_installed(args: &VerifyArgs) -> Result<ExitCode> {
    let project = project(&ScopeArgs {
        global: args.global,
        json: args.json,
    })?;
    let checked = skillport_install::verify(&project)?;
    let ok = checked.iter().all(|c| c.state == FolderState::Intact);
    if args.json {
        let rows: Vec<_> = checked
            .iter()
            .map(|c| {
                let (state, changes) = match &c.state {
                    FolderState::Intact => ("intact", Vec::new()),
                    FolderState::Missing => ("missing", Vec::new()),
                    FolderState::Changed(changes) => ("changed", changes.clone()),
                    FolderState::Unreadable(_) => ("unreadable", Vec::new()),
                };
                let changes: Vec<_> = changes
                    .iter()
                    .map(|(path, change)| json!({"path": path, "change": change}))
                    .collect();
                json!({"name": c.name, "folder": c.folder, "state": state, "changes": changes})
            })
            .collect();
        print_json(&json!(rows))?;
    } else {
        for c in &checked {
            match &c.state {
                FolderState::Intact => out!("ok       {} {}", c.name, c.folder),
                FolderState::Missing => out!("MISSING  {} {}", c.name, c.folder),
                FolderState::Changed(changes) => {
                    out!("CHANGED  {} {}", c.name, c.folder);
                    for (path, change) in changes {
                        out!("  {change:<8} {path}");
                    }
                }
                FolderState::Unreadable(reason) => {
                    out!("UNREADABLE {} {}: {reason}", c.name, c.folder);
                }
            }
        }
        if checked.is_empty() {
            eprintln!(
                "nothing installed ({} lists no skills)",
                project.lock_path().display()
            );
        }
    }
    if ok {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "hint: `skillport install --force` puts the locked content back; `skillport update` \
             records new content from the sources"
        );
        Ok(ExitCode::FAILURE)
    }
}
