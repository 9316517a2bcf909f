// The commands that talk to registries.

use std::collections::HashMap;
use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;
use skillport_oci::spec::Platform;
use skillport_oci::spec::annotation;
use skillport_oci::{Reference, Store};
use skillport_registry::auth::{AuthFile, CredentialStore, Credentials, Secret};
use skillport_registry::{Client, ClientOptions, Progress};

use crate::cli::{
    Cli, ExportArgs, InspectArgs, LoginArgs, LogoutArgs, PullArgs, PushArgs, ResolveArgs, TagsArgs,
};
use crate::commands::platforms;
use crate::output::{human_size, one_line, plural};

/// Registry settings from the global flags.
pub struct RegistrySettings {
    pub ca_files: Vec<PathBuf>,
    pub insecure: bool,
    pub auth_files: Vec<PathBuf>,
    /// `--platform`: the manifest read (or pulled) from an index.
    pub platform: Option<Platform>,
}

impl RegistrySettings {
    pub fn from_cli(cli: &Cli) -> RegistrySettings {
        RegistrySettings {
            ca_files: cli.ca_files.clone(),
            insecure: cli.insecure,
            auth_files: cli.auth_files.clone(),
            platform: None,
        }
    }

    /// These settings, reading `platform`'s manifest of an index.
    pub fn on(mut self, platform: Option<&Platform>) -> RegistrySettings {
        self.platform = platform.cloned();
        self
    }

    /// These settings (given before the command) with the command's own options: CA files
    /// add up, `--insecure` from either, the command's `--authfile` list when it gives one.
    pub fn with(&self, options: &crate::cli::RegistryOptions) -> RegistrySettings {
        let mut ca_files = self.ca_files.clone();
        ca_files.extend(options.ca_files.iter().cloned());
        RegistrySettings {
            ca_files,
            insecure: self.insecure || options.insecure,
            auth_files: if options.auth_files.is_empty() {
                self.auth_files.clone()
            } else {
                options.auth_files.clone()
            },
            platform: self.platform.clone(),
        }
    }

    /// A client for talking to the registries of `references`.
    pub(crate) fn client(&self, references: &[&Reference]) -> Result<Client> {
        self.client_with(self.credentials()?, references)
    }

    fn credentials(&self) -> Result<Credentials> {
        Ok(if self.auth_files.is_empty() {
            Credentials::discover().context("reading registry credentials")?
        } else {
            let files = self
                .auth_files
                .iter()
                .map(|path| AuthFile::read(path))
                .collect::<Result<Vec<_>, _>>()
                .context("reading registry credentials")?;
            Credentials::from_files(files)
        })
    }

    fn client_with(&self, credentials: Credentials, references: &[&Reference]) -> Result<Client> {
        for warning in credentials.warnings() {
            tracing::warn!("{warning}");
        }
        let insecure_registries = if self.insecure {
            references
                .iter()
                .map(|r| r.registry().unwrap_or("docker.io").to_owned())
                .collect()
        } else {
            Vec::new()
        };
        let mut ca_files = self.ca_files.clone();
        ca_files.extend(trusted_by_folder(references));
        let options = ClientOptions {
            ca_files,
            insecure_registries,
            platform: self.platform.clone(),
            ..ClientOptions::default()
        };
        Ok(Client::new(credentials, options)?)
    }
}

/// The per-registry trust folder, as containers keeps it: `$SKILLPORT_CERTS_D`, else
/// `$XDG_CONFIG_HOME/skillport/certs.d`, else `~/.config/skillport/certs.d`.
fn certs_dir() -> Option<PathBuf> {
    let set = |name| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    set("SKILLPORT_CERTS_D")
        .or_else(|| set("XDG_CONFIG_HOME").map(|dir| dir.join("skillport/certs.d")))
        .or_else(|| set("HOME").map(|home| home.join(".config/skillport/certs.d")))
}

/// The CA certificates (`*.crt`) in `certs.d/<host[:port]>/` for each registry of
/// `references`: trust for one registry without a flag, as containers and docker keep it.
fn trusted_by_folder(references: &[&Reference]) -> Vec<PathBuf> {
    let Some(dir) = certs_dir() else {
        return Vec::new();
    };
    let mut files = Vec::new();
    for reference in references {
        let host = reference.registry().unwrap_or("docker.io");
        let Ok(entries) = std::fs::read_dir(dir.join(host)) else {
            continue;
        };
        let mut found: Vec<PathBuf> = entries
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "crt"))
            .collect();
        found.sort();
        tracing::debug!(%host, ?found, "CA certificates from certs.d");
        files.extend(found);
    }
    files
}

/// Runs a future on a fresh runtime; the CLI is synchronous everywhere else.
pub(crate) fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime starts")
        .block_on(future)
}

/// A remote reference: it must name a registry.
pub(crate) fn remote_reference(text: &str) -> Result<Reference> {
    let reference: Reference = text.parse()?;
    if reference.registry().is_none() {
        bail!(
            "{text} names no registry; write it as REGISTRY/REPOSITORY[:TAG], e.g. \
             registry.example.com/{text}"
        );
    }
    Ok(reference)
}

/// `reference` as said in errors: without a tag or digest, the `latest` that was asked for.
pub(crate) fn asked(reference: &Reference) -> String {
    if reference.tag().is_none() && reference.digest().is_none() {
        format!("{reference}:latest (no tag given)")
    } else {
        reference.to_string()
    }
}

/// Whether `text` should be read from a registry (it names one, and `--local` is not set).
pub fn is_remote(text: &str, local: bool) -> bool {
    !local
        && text
            .parse::<Reference>()
            .is_ok_and(|r| r.registry().is_some())
}

/// One indicatif bar per transfer, on stderr, only on a terminal.
pub(crate) struct Bars {
    multi: MultiProgress,
    active: Mutex<HashMap<u64, ProgressBar>>,
    next: AtomicU64,
}

impl Bars {
    pub(crate) fn shared() -> Arc<dyn Progress> {
        let target = if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        Arc::new(Bars {
            multi: MultiProgress::with_draw_target(target),
            active: Mutex::new(HashMap::new()),
            next: AtomicU64::new(1),
        })
    }
}

impl Progress for Bars {
    fn start(&self, label: &str, total: Option<u64>) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let bar = self.multi.add(ProgressBar::new(total.unwrap_or(0)));
        bar.set_style(
            ProgressStyle::with_template(
                "{msg:40} [{bar:25}] {bytes}/{total_bytes} {bytes_per_sec}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_message(label.to_owned());
        self.active.lock().expect("not poisoned").insert(id, bar);
        id
    }

    fn advance(&self, id: u64, bytes: u64) {
        if let Some(bar) = self.active.lock().expect("not poisoned").get(&id) {
            bar.inc(bytes);
        }
    }

    fn restart(&self, id: u64) {
        if let Some(bar) = self.active.lock().expect("not poisoned").get(&id) {
            bar.set_position(0);
        }
    }

    fn finish(&self, id: u64) {
        if let Some(bar) = self.active.lock().expect("not poisoned").remove(&id) {
            bar.finish_and_clear();
        }
    }
}

pub(crate) fn print_json(value: &serde_json::Value) -> Result<()> {
    out!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

pub fn push(settings: &RegistrySettings, store: &Store, args: &PushArgs) -> Result<ExitCode> {
    let source = crate::commands::local_reference(store, &args.source)?;
    let target = remote_reference(args.target.as_deref().unwrap_or(&args.source))?;
    if target.digest().is_some() {
        bail!("push to a tag, not a digest: the digest is the image's own");
    }
    let client = settings.client(&[&target])?;
    let digest = block_on(client.push(store, &source, &target, Bars::shared()))
        .with_context(|| format!("pushing {source} to {target}"))?;
    eprintln!("pushed {target}");
    if let Some(key) = args.key.as_deref().filter(|_| args.sign) {
        crate::signing::sign_pushed(settings, &target, &digest, key)?;
    }
    if args.json {
        print_json(&json!({"reference": target.to_string(), "digest": digest}))?;
    } else {
        out!("{digest}");
    }
    Ok(ExitCode::SUCCESS)
}

pub fn copy(settings: &RegistrySettings, args: &crate::cli::CopyArgs) -> Result<ExitCode> {
    let source = remote_reference(&args.source)?;
    let target = remote_reference(&args.target)?;
    let client = settings.client(&[&source, &target])?;
    let digest = block_on(client.copy(&source, &target, Bars::shared()))
        .with_context(|| format!("copying {} to {}", asked(&source), asked(&target)))?;
    eprintln!("copied {} to {target}", asked(&source));
    if args.json {
        print_json(&json!({"reference": target.to_string(), "digest": digest}))?;
    } else {
        out!("{digest}");
    }
    Ok(ExitCode::SUCCESS)
}

pub fn pull(settings: &RegistrySettings, store: &Store, args: &PullArgs) -> Result<ExitCode> {
    let reference = remote_reference(&args.reference)?;
    let client = settings.client(&[&reference])?;
    let stored = block_on(client.pull(store, &reference, Bars::shared()))
        .with_context(|| format!("pulling {}", asked(&reference)))?;
    match &settings.platform {
        Some(platform) => eprintln!("pulled {} ({platform} only)", stored.key),
        None => eprintln!("pulled {}", stored.key),
    }
    if args.json {
        print_json(&json!({
            "reference": stored.key,
            "digest": stored.descriptor.digest,
            "mediaType": stored.descriptor.media_type,
            "size": stored.descriptor.size,
        }))?;
    } else {
        out!("{}", stored.descriptor.digest);
    }
    Ok(ExitCode::SUCCESS)
}

pub fn resolve(settings: &RegistrySettings, args: &ResolveArgs) -> Result<ExitCode> {
    let reference = remote_reference(&args.reference)?;
    let client = settings.client(&[&reference])?;
    let descriptor = block_on(client.resolve(&reference))
        .with_context(|| format!("resolving {}", asked(&reference)))?;
    if args.json {
        print_json(&json!({
            "reference": reference.to_string(),
            "digest": descriptor.digest,
            "mediaType": descriptor.media_type,
            "size": descriptor.size,
        }))?;
    } else {
        out!("{}", descriptor.digest);
    }
    Ok(ExitCode::SUCCESS)
}

pub fn tags(settings: &RegistrySettings, args: &TagsArgs) -> Result<ExitCode> {
    let reference = remote_reference(&args.repository)?;
    if reference.tag().is_some() || reference.digest().is_some() {
        bail!(
            "give a repository without a tag or digest, e.g. {}",
            reference.name()
        );
    }
    let client = settings.client(&[&reference])?;
    let tags = block_on(client.list_tags(&reference))
        .with_context(|| format!("listing the tags of {}", reference.name()))?;
    if args.json {
        out!("{}", serde_json::to_string_pretty(&tags)?);
    } else {
        for tag in tags {
            out!("{tag}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `manifest` / `config` of a registry image: the manifest as served, or the picked manifest's
/// config blob.
pub fn raw(
    settings: &RegistrySettings,
    args: &crate::cli::RawArgs,
    config: bool,
) -> Result<ExitCode> {
    let reference = remote_reference(&args.reference)?;
    let client = settings.client(&[&reference])?;
    let bytes = if config {
        let (tree, picked) = block_on(client.skill_manifest(&reference))
            .with_context(|| format!("reading {}", asked(&reference)))?;
        let manifest = &tree.manifest(&picked.digest).expect("fetched").manifest;
        block_on(client.blob(&reference, &manifest.config, 4 << 20))
            .with_context(|| format!("reading the config of {}", asked(&reference)))?
    } else {
        block_on(client.fetch_manifest(&reference))
            .with_context(|| format!("reading {}", asked(&reference)))?
            .bytes
    };
    crate::output::raw(&bytes);
    Ok(ExitCode::SUCCESS)
}

pub fn inspect(settings: &RegistrySettings, args: &InspectArgs) -> Result<ExitCode> {
    let reference = remote_reference(&args.reference)?;
    let client = settings.client(&[&reference])?;
    let (tree, picked) = block_on(client.skill_manifest(&reference))
        .with_context(|| format!("inspecting {}", asked(&reference)))?;
    let manifest = &tree.manifest(&picked.digest).expect("fetched").manifest;
    let (layer, _) = skillport_oci::skill_layer(manifest)
        .with_context(|| format!("reading the manifest of {reference}"))?;
    let top = &tree.top().descriptor;
    let platforms = tree.index().map(platforms).unwrap_or_default();
    if args.json {
        let output = crate::commands::inspect_json(
            &reference.to_string(),
            top,
            &platforms,
            (&picked, manifest),
            &layer,
            &serde_json::Value::Null,
        );
        out!("{}", serde_json::to_string_pretty(&output)?);
        return Ok(ExitCode::SUCCESS);
    }
    let annotations = &manifest.annotations;
    let get = |key: &str| annotations.get(key).map_or("-", String::as_str);
    out!("Reference:    {reference}");
    out!("Digest:       {}", top.digest);
    out!("Media type:   {}", top.media_type);
    out!("Skill:        {}", get(annotation::SKILL_NAME));
    out!(
        "Description:  {}",
        one_line(get(annotation::DESCRIPTION), 200)
    );
    out!("Version:      {}", get(annotation::VERSION));
    if !platforms.is_empty() {
        out!("Platforms:    {}", platforms.join(", "));
    }
    out!(
        "Layer:        {} ({})",
        layer.digest,
        human_size(layer.size)
    );
    out!("Annotations:");
    for (key, value) in annotations {
        out!("  {key}: {}", one_line(value, 200));
    }
    Ok(ExitCode::SUCCESS)
}

pub fn export(settings: &RegistrySettings, args: &ExportArgs) -> Result<ExitCode> {
    let reference = remote_reference(&args.reference)?;
    let client = settings.client(&[&reference])?;
    let exported = block_on(client.export(&reference, &args.dest, Bars::shared()))
        .with_context(|| format!("exporting {} to {}", asked(&reference), args.dest.display()))?;
    eprintln!(
        "exported {reference} ({}, {}) to {}",
        plural(exported.unpacked.files, "file"),
        human_size(exported.unpacked.bytes),
        args.dest.display()
    );
    crate::commands::exported_json_or_digest(
        args,
        &reference.to_string(),
        &exported.digest,
        &exported.unpacked,
    )
}

pub fn logout(args: &LogoutArgs) -> Result<ExitCode> {
    let path = match &args.config {
        Some(path) => path.clone(),
        None => skillport_registry::auth::default_docker_config_path()
            .context("neither DOCKER_CONFIG nor HOME is set; pass --config FILE")?,
    };
    let removed = skillport_registry::auth::logout(&path, &args.registry)
        .with_context(|| format!("removing the credentials for {}", args.registry))?;
    for place in &removed {
        eprintln!("credentials for {} removed from {place}", args.registry);
    }
    if removed.is_empty() {
        eprintln!(
            "{} holds no credentials for {}; nothing to remove",
            path.display(),
            args.registry
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn login(settings: &RegistrySettings, args: &LoginArgs) -> Result<ExitCode> {
    let password = if args.password_stdin {
        let mut password = String::new();
        std::io::stdin()
            .read_to_string(&mut password)
            .context("reading the password from standard input")?;
        password.trim_end_matches(['\r', '\n']).to_owned()
    } else if std::io::stdin().is_terminal() {
        rpassword::prompt_password(format!(
            "Password for {} at {}: ",
            args.username, args.registry
        ))
        .context("reading the password from the terminal")?
    } else {
        bail!(
            "no terminal to ask for the password on: pass --password-stdin and the password on \
             standard input (never as an argument)"
        );
    };
    if password.is_empty() {
        bail!("standard input held no password");
    }
    // Check the credentials with the registry first, as docker does, so that a typo is
    // caught now rather than at the first pull. They live only in memory until saved.
    let entry = serde_json::json!({"auths": {&args.registry: {"username": &args.username, "password": &password}}});
    let file = AuthFile::parse(entry.to_string().as_bytes(), "the login")
        .context("preparing the credentials")?;
    let registry: Reference = format!("{}/x", args.registry)
        .parse()
        .with_context(|| format!("{} is not a registry host[:port]", args.registry))?;
    let client = settings.client_with(Credentials::from_files(vec![file]), &[&registry])?;
    match block_on(client.check_login(&args.registry)) {
        Ok(()) => {}
        // Said plainly: the registry's 401 names no repository, and its hint would suggest the
        // very command that failed.
        Err(skillport_registry::RegistryError::Unauthorized { .. }) => bail!(
            "wrong username or password for {} (user {:?}); nothing was saved",
            args.registry,
            args.username
        ),
        Err(err) => {
            return Err(anyhow::Error::new(err).context(format!("logging in to {}", args.registry)));
        }
    }
    let path = match &args.config {
        Some(path) => path.clone(),
        None => skillport_registry::auth::default_docker_config_path()
            .context("neither DOCKER_CONFIG nor HOME is set; pass --config FILE")?,
    };
    let saved = skillport_registry::auth::login(
        &path,
        &args.registry,
        &args.username,
        &Secret::new(password),
    )
    .with_context(|| format!("saving credentials for {}", args.registry))?;
    eprintln!("credentials for {} saved in {saved}", args.registry);
    if args.json {
        let helper = match &saved {
            CredentialStore::Helper { helper, .. } => Some(format!("docker-credential-{helper}")),
            CredentialStore::File(_) => None,
        };
        print_json(&json!({
            "registry": args.registry,
            "username": args.username,
            "config": path,
            "helper": helper,
        }))?;
    }
    Ok(ExitCode::SUCCESS)
}
