// One function per command. Each parses and checks its arguments, calls the library crates,
// and prints.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};
use skillport_oci::spec::{Descriptor, ImageIndex, ImageManifest, Platform, annotation, media};
use skillport_oci::{BuildRequest, Reference, SkillImage, Store, StoredImage};
use skillport_skill::{Diagnostic, EntryKind, LoadError, Mode, Severity, Skill, SkillCard};

use crate::cli::{
    BuildArgs, Cli, Command, ExportArgs, ImagesArgs, InitArgs, InspectArgs, RmArgs, TagArgs,
    ValidateArgs,
};
use crate::output::{human_size, one_line, plural, print_table, progress_bar};
use crate::remote::{self, RegistrySettings, print_json};

/// Store and registry options given before a command that uses neither are an error.
fn refuse_unused_globals(command: &Command, given: &[&str]) -> Result<()> {
    // Commands that use neither the store nor a registry (fetch reads both from its plan).
    let unused = match command {
        Command::Init(_) => Some("init"),
        Command::Validate(_) => Some("validate"),
        Command::Demo(_) => Some("demo (its store is --out's)"),
        Command::Fetch(_) => {
            Some("fetch (its plan names registries and credentials; it keeps no store)")
        }
        Command::Verify(_) => Some("verify"),
        Command::List(_) => Some("list"),
        Command::Uninstall(_) => Some("uninstall"),
        Command::Completions(_) => Some("completions"),
        Command::Version => Some("version"),
        Command::Logout(_) => Some("logout"),
        Command::GenerateKeyPair(_) => Some("generate-key-pair"),
        _ => None,
    };
    if let Some(command) = unused
        && !given.is_empty()
    {
        let (verb, pronoun) = if given.len() == 1 {
            ("does", "it")
        } else {
            ("do", "them")
        };
        bail!(
            "{} {verb} nothing for {command}; remove {pronoun}",
            given.join(", ")
        );
    }
    Ok(())
}

pub fn run(cli: Cli, given: &[&str]) -> Result<ExitCode> {
    refuse_unused_globals(&cli.command, given)?;
    let top = RegistrySettings::from_cli(&cli);
    let top_store = cli.store;
    let store =
        |option: &crate::cli::StoreOption| open_store(option.store.clone().or(top_store.clone()));
    match cli.command {
        Command::Init(args) => init(&args),
        Command::Validate(args) => validate(&args),
        Command::Build(args) => build(&store(&args.store)?, &args),
        Command::Images(args) => images(&store(&args.store)?, &args),
        Command::Inspect(args) if remote::is_remote(&args.reference, args.local) => {
            remote::inspect(
                &top.with(&args.registries).on(args.platform.as_ref()),
                &args,
            )
        }
        Command::Inspect(args) => inspect(&store(&args.store)?, &args),
        Command::Manifest(args) if remote::is_remote(&args.reference, args.local) => {
            remote::raw(&top.with(&args.registries), &args, false)
        }
        Command::Config(args) if remote::is_remote(&args.reference, args.local) => {
            remote::raw(&top.with(&args.registries), &args, true)
        }
        Command::Manifest(args) => raw(&store(&args.store)?, &args, false),
        Command::Config(args) => raw(&store(&args.store)?, &args, true),
        Command::Tag(args) => tag(&store(&args.store)?, &args),
        Command::Export(args) if remote::is_remote(&args.reference, args.local) => remote::export(
            &top.with(&args.registries).on(args.platform.as_ref()),
            &args,
        ),
        Command::Export(args) => export(&store(&args.store)?, &args),
        Command::Rm(args) => rm(&store(&args.store)?, &args),
        Command::Push(args) => {
            remote::push(&top.with(&args.registries), &store(&args.store)?, &args)
        }
        Command::Pull(args) => {
            let settings = top.with(&args.registries).on(args.platform.as_ref());
            remote::pull(&settings, &store(&args.store)?, &args)
        }
        Command::Resolve(args) => remote::resolve(&top.with(&args.registries), &args),
        Command::Copy(args) => remote::copy(&top.with(&args.registries), &args),
        Command::Tags(args) => remote::tags(&top.with(&args.registries), &args),
        Command::Login(args) => remote::login(&top.with(&args.registries), &args),
        Command::Logout(args) => remote::logout(&args),
        Command::Sign(args) => crate::signing::sign(&top.with(&args.registries), &args),
        Command::VerifySignature(args) => {
            crate::signing::verify_signature(&top.with(&args.registries), &args)
        }
        Command::GenerateKeyPair(args) => crate::signing::generate_key_pair(&args),
        Command::Demo(args) => crate::demo::demo(&args),
        Command::Fetch(args) => crate::fetch::run(&args),
        Command::Verify(args) if args.skills.is_empty() => crate::install::verify_installed(&args),
        Command::Verify(args) => Ok(crate::fetch::verify(&args)),
        Command::Install(args) => {
            crate::install::install(&top.with(&args.registries), &store(&args.store)?, &args)
        }
        Command::Update(args) => {
            crate::install::update(&top.with(&args.registries), &store(&args.store)?, &args)
        }
        Command::Outdated(args) => {
            crate::install::outdated(&top.with(&args.registries), &store(&args.store)?, &args)
        }
        Command::List(args) => crate::install::list(&args),
        Command::Uninstall(args) => crate::install::uninstall(&args),
        Command::Completions(args) => {
            let mut script = Vec::new();
            clap_complete::generate(
                args.shell,
                &mut <Cli as clap::CommandFactory>::command(),
                "skillport",
                &mut script,
            );
            out!("{}", String::from_utf8_lossy(&script).trim_end());
            Ok(ExitCode::SUCCESS)
        }
        Command::Version => {
            out!("skillport {}", env!("CARGO_PKG_VERSION"));
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn default_store_root() -> Result<PathBuf> {
    let data_home = std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".local/share")))
        .ok_or_else(|| anyhow!("neither XDG_DATA_HOME nor HOME is set; pass --store DIR"))?;
    Ok(data_home.join("skillport/store"))
}

fn open_store(root: Option<PathBuf>) -> Result<Store> {
    let root = match root {
        Some(root) => root,
        None => default_store_root()?,
    };
    Store::open(&root).with_context(|| format!("opening the store at {}", root.display()))
}

pub(crate) fn parse_reference(text: &str) -> Result<Reference> {
    Ok(text.parse::<Reference>()?)
}

/// An image of the store by its reference, or by its digest or a prefix of it as `images`
/// shows them (`1c86727641f4`, `sha256:1c86…`; at least 4 hex digits), as docker takes image
/// IDs. A name wins over a digest prefix that reads the same; a prefix two images share is
/// refused, naming them.
pub fn local_reference(store: &Store, text: &str) -> Result<Reference> {
    let hex = text.strip_prefix("sha256:").unwrap_or(text);
    let is_prefix = (4..=64).contains(&hex.len())
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let named = text.parse::<Reference>().ok();
    if !is_prefix
        || named
            .as_ref()
            .is_some_and(|reference| store.resolve(reference).is_ok())
    {
        return parse_reference(text);
    }
    let images = store.list()?;
    let matching: Vec<&StoredImage> = images
        .iter()
        .filter(|image| image.descriptor.digest.hex().starts_with(hex))
        .collect();
    let digests: std::collections::BTreeSet<&str> =
        matching.iter().map(|i| i.descriptor.digest.hex()).collect();
    match (matching.first(), digests.len()) {
        (Some(first), 1) => Ok(first.key.parse()?),
        (Some(_), _) => bail!(
            "{text} is the start of more than one image's digest ({}); give more of it",
            matching
                .iter()
                .map(|image| format!("{} {}", image.key, image.descriptor.digest.short()))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        (None, _) => parse_reference(text),
    }
}

fn mode(lenient: bool) -> Mode {
    if lenient { Mode::Lenient } else { Mode::Strict }
}

fn print_diagnostics(diagnostics: &[Diagnostic]) {
    for diagnostic in diagnostics {
        eprintln!("{diagnostic}");
    }
}

/// Loads a skill; on spec violations prints them all before failing.
pub(crate) fn load_skill(dir: &Path, lenient: bool) -> Result<Skill> {
    match skillport_skill::load(dir, mode(lenient)) {
        Ok(skill) => {
            print_diagnostics(&skill.warnings);
            Ok(skill)
        }
        Err(err) => {
            if let LoadError::Invalid { diagnostics, .. } = &err {
                print_diagnostics(diagnostics);
            }
            Err(err).with_context(|| format!("loading the skill in {}", dir.display()))
        }
    }
}

fn init(args: &InitArgs) -> Result<ExitCode> {
    skillport_skill::validate_name(&args.name)
        .map_err(|reason| anyhow!("{reason}"))
        .context("choosing the skill's name")?;
    let dir = args.dir.join(&args.name);
    fs::create_dir(&dir).with_context(|| {
        format!(
            "creating {} (a skill folder is created new, never reused)",
            dir.display()
        )
    })?;
    let skill_md = dir.join("SKILL.md");
    fs::write(&skill_md, skillport_skill::scaffold_skill_md(&args.name))
        .with_context(|| format!("writing {}", skill_md.display()))?;
    out!("created {}", skill_md.display());
    if args.card {
        let skill = load_skill(&dir, false)?;
        // A new skill starts at 0.1.0 (as its SKILL.md says, when it does).
        let version = declared_version(&skill).unwrap_or_else(|| semver::Version::new(0, 1, 0));
        let card = generated_card(&skill, &args.namespace, &version);
        let card_path = dir.join("skill.yaml");
        fs::write(&card_path, card.to_yaml())
            .with_context(|| format!("writing {}", card_path.display()))?;
        out!("created {}", card_path.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// A SkillCard from SKILL.md, at `version`.
fn generated_card(skill: &Skill, namespace: &str, version: &semver::Version) -> SkillCard {
    SkillCard::from_frontmatter(&skill.frontmatter, version, namespace)
}

/// The skill's `metadata.version` when it is SemVer.
fn declared_version(skill: &Skill) -> Option<semver::Version> {
    skill
        .frontmatter
        .metadata
        .get("version")
        .and_then(|v| semver::Version::parse(v).ok())
}

/// The version of a SkillCard made at build: the skill's own, else the first tag that is a
/// SemVer version; never one made up (the image would show a version the skill never had).
fn card_version(skill: &Skill, names: &[Reference]) -> Result<semver::Version> {
    declared_version(skill)
        .or_else(|| {
            names
                .iter()
                .find_map(|name| semver::Version::parse(name.tag()?).ok())
        })
        .ok_or_else(|| {
            anyhow!(
                "--card needs a version: the skill declares no metadata.version and no tag is \
                 one; add `metadata: {{version: 1.0.0}}` to SKILL.md, or tag the image \
                 NAME:1.0.0"
            )
        })
}

fn validate(args: &ValidateArgs) -> Result<ExitCode> {
    let mut results = Vec::new();
    let mut all_valid = true;
    for dir in &args.dirs {
        let (name, diagnostics, failure) = match skillport_skill::load(dir, mode(args.lenient)) {
            Ok(skill) => {
                // A folder that loads can still hold files no image may carry.
                let failure = skillport_skill::walk(dir).err().map(|err| err.to_string());
                (Some(skill.frontmatter.name), skill.warnings, failure)
            }
            Err(LoadError::Invalid {
                name, diagnostics, ..
            }) => (name, diagnostics, None),
            Err(err) => (
                None,
                Vec::new(),
                Some(format!("{:#}", anyhow::Error::from(err))),
            ),
        };
        let errors = diagnostics
            .iter()
            .filter(|d| matches!(d.severity, Severity::Error))
            .count()
            + usize::from(failure.is_some());
        all_valid &= errors == 0;
        if !args.json {
            for diagnostic in &diagnostics {
                out!("{diagnostic}");
            }
            if let Some(failure) = &failure {
                out!("{}: error: {failure}", dir.display());
            }
            let warnings = diagnostics.len() + usize::from(failure.is_some()) - errors;
            match (errors, warnings) {
                (0, 0) => out!("{}: valid", dir.display()),
                (0, w) => out!("{}: valid, {}", dir.display(), plural(w, "warning")),
                (e, _) => out!("{}: invalid, {}", dir.display(), plural(e, "error")),
            }
        }
        results.push(json!({
            "path": dir,
            "name": name,
            "valid": errors == 0,
            "diagnostics": diagnostics,
            "error": failure,
        }));
    }
    if args.json {
        out!("{}", serde_json::to_string_pretty(&results)?);
    } else if args.dirs.len() > 1 {
        let invalid = results.iter().filter(|r| r["valid"] == false).count();
        out!(
            "{}: {} valid, {} invalid",
            plural(args.dirs.len(), "folder"),
            args.dirs.len() - invalid,
            invalid
        );
    }
    Ok(if all_valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub(crate) fn source_date_epoch() -> Result<Option<u64>> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(value) if !value.trim().is_empty() => {
            value.trim().parse::<u64>().map(Some).map_err(|_| {
                anyhow!("SOURCE_DATE_EPOCH={value:?} is not a whole number of seconds")
            })
        }
        _ => Ok(None),
    }
}

/// `<name>:latest` for a build without `-t`: the skill's name, or, when that is no image name
/// (a lenient build of `name: Ahrefs Automation`), the folder's.
fn default_name(skill: &Skill, dir: &Path) -> Result<Reference> {
    // The name the folder check of `load` compares with.
    let folder = skillport_skill::folder_name(dir).ok();
    std::iter::once(skill.frontmatter.name.clone())
        .chain(folder)
        .find_map(|name| format!("{name}:latest").parse::<Reference>().ok())
        .ok_or_else(|| {
            anyhow!(
                "neither the skill's name {:?} nor its folder's makes an image name; name the \
                 image with -t NAME:TAG (lowercase letters, digits, -, _ and .)",
                skill.frontmatter.name
            )
        })
}

/// The name a lenient build records for a skill whose own name breaks the rules
/// (`name: Ahrefs Automation`): its folder's, else the image's, when that one keeps them.
fn recorded_name(skill: &Skill, dir: &Path, names: &[Reference]) -> Result<String> {
    let folder = skillport_skill::folder_name(dir).ok();
    let image = names
        .first()
        .and_then(|name| name.repository().rsplit('/').next().map(str::to_owned));
    folder
        .into_iter()
        .chain(image)
        .find(|name| skillport_skill::is_valid_name(name))
        .ok_or_else(|| {
            anyhow!(
                "the skill's name {:?} breaks the naming rules, and neither its folder's nor the \
                 image's name keeps them; fix `name` in SKILL.md (lowercase a-z, 0-9 and -)",
                skill.frontmatter.name
            )
        })
}

fn build(store: &Store, args: &BuildArgs) -> Result<ExitCode> {
    let mut skill = load_skill(&args.dir, args.lenient)?;
    let entries = skillport_skill::walk(&args.dir)
        .with_context(|| format!("reading the files of {}", args.dir.display()))?;
    let names = if args.tags.is_empty() {
        vec![default_name(&skill, &args.dir)?]
    } else {
        args.tags
            .iter()
            .map(|tag| parse_reference(tag))
            .collect::<Result<Vec<_>>>()?
    };
    // A version tag other than the version the skill declares is most likely a slip.
    if let Some(declared) = declared_version(&skill) {
        for name in &names {
            if let Some(tag) = name.tag().and_then(|t| semver::Version::parse(t).ok())
                && tag != declared
            {
                eprintln!(
                    "warning: tag {} is not the skill's own version {declared} (metadata.version)",
                    name.store_key()
                );
            }
        }
    }
    if let Some(pinned) = names.iter().find(|name| name.digest().is_some()) {
        bail!("cannot name a new image {pinned}: a digest is computed, not chosen; use NAME:TAG");
    }
    // Only a lenient load lets a bad name through. The image (its annotations and a generated
    // card) records a name that keeps the rules; SKILL.md is packed as it is.
    let own_name = skill.frontmatter.name.clone();
    if !skillport_skill::is_valid_name(&own_name) {
        let recorded = recorded_name(&skill, &args.dir, &names)?;
        eprintln!(
            "warning: the image records the skill's name as {recorded:?}, not {own_name:?} \
             (which breaks the naming rules); SKILL.md is packed unchanged"
        );
        skill.frontmatter.name = recorded;
    }
    let card = if args.card && skill.card.is_none() {
        let version = card_version(&skill, &names)?;
        let mut card = generated_card(&skill, &args.namespace, &version);
        if own_name != skill.frontmatter.name {
            card.metadata.display_name = Some(own_name);
        }
        Some(card)
    } else {
        None
    };
    let total: u64 = entries
        .iter()
        .map(|entry| match entry.kind {
            EntryKind::File { size, .. } => size,
            _ => 0,
        })
        .sum();
    let bar = progress_bar(total, &format!("building {}", skill.frontmatter.name));
    let request = BuildRequest {
        skill: &skill,
        entries: &entries,
        generated_card: card.as_ref(),
        source_date_epoch: source_date_epoch()?,
        names: &names,
    };
    let built = skillport_oci::build(store, &request, &mut |done| bar.set_position(done))
        .with_context(|| format!("building {}", args.dir.display()))?;
    bar.finish_and_clear();
    if args.json {
        let output = json!({
            "digest": built.digest(),
            "names": names.iter().map(Reference::store_key).collect::<Vec<_>>(),
            "layer": {"digest": built.layer.digest, "size": built.layer.size, "files": built.layer.files},
            "annotations": built.annotations,
        });
        out!("{}", serde_json::to_string_pretty(&output)?);
    } else {
        for name in &names {
            eprintln!("tagged {}", name.store_key());
        }
        out!("{}", built.digest());
    }
    Ok(ExitCode::SUCCESS)
}

/// The name and tag (or digest) parts of a store key. Keys written by other tools may not
/// parse as references; they show whole, as the name.
/// A store key's name and tag; an image kept by digest alone (pulled as `name@sha256:…`) has
/// no tag, as docker shows it.
fn split_key(key: &str) -> (String, Option<String>) {
    match key.parse::<Reference>() {
        Ok(reference) => (
            reference.name().to_owned(),
            reference.tag().map(str::to_owned),
        ),
        Err(_) => (key.to_owned(), None),
    }
}

pub(crate) fn images(store: &Store, args: &ImagesArgs) -> Result<ExitCode> {
    let mut rows = Vec::new();
    let mut json_rows = Vec::new();
    for image in store.list()? {
        let (name, tag) = split_key(&image.key);
        let resolved = skillport_oci::skill_image(store, &image.descriptor);
        let (annotations, size) = match &resolved {
            Ok(resolved) => (
                resolved.manifest.annotations.clone(),
                Some(resolved.layer.size),
            ),
            Err(_) => (std::collections::BTreeMap::default(), None),
        };
        let description = annotations
            .get(annotation::DESCRIPTION)
            .cloned()
            .unwrap_or_default();
        rows.push(vec![
            name.clone(),
            tag.clone().unwrap_or_else(|| "<none>".to_owned()),
            image.descriptor.digest.short().to_owned(),
            size.map_or_else(|| "?".to_owned(), human_size),
            one_line(&description, 60),
        ]);
        json_rows.push(json!({
            "name": name,
            "tag": tag,
            "reference": image.key,
            "digest": image.descriptor.digest,
            "size": size,
            "skill": annotations.get(annotation::SKILL_NAME),
            "description": description,
        }));
    }
    if args.json {
        out!("{}", serde_json::to_string_pretty(&json_rows)?);
    } else if args.quiet {
        for row in &json_rows {
            out!("{}", row["reference"].as_str().unwrap_or_default());
        }
    } else if rows.is_empty() {
        eprintln!("the store at {} holds no images", store.root().display());
    } else {
        print_table(&["NAME", "TAG", "DIGEST", "SIZE", "DESCRIPTION"], &rows);
    }
    Ok(ExitCode::SUCCESS)
}

/// The `os/architecture` of each manifest an index lists.
pub fn platforms(index: &ImageIndex) -> Vec<String> {
    index
        .manifests
        .iter()
        .filter_map(|d| d.platform.as_ref())
        .map(|p| format!("{}/{}", p.os, p.architecture))
        .collect()
}

pub(crate) fn resolve_skill(store: &Store, text: &str) -> Result<(StoredImage, SkillImage)> {
    resolve_skill_on(store, text, None)
}

/// [`resolve_skill`], reading `platform`'s manifest of an index (`--platform`).
fn resolve_skill_on(
    store: &Store,
    text: &str,
    platform: Option<&Platform>,
) -> Result<(StoredImage, SkillImage)> {
    let reference = local_reference(store, text)?;
    let stored = store.resolve(&reference)?;
    let image = skillport_oci::skill_image_on(store, &stored.descriptor, platform)
        .with_context(|| format!("reading {}", stored.key))?;
    Ok((stored, image))
}

/// `inspect --json`, one schema for a local image and a remote one (whose files are `null`:
/// listing them would download the layer).
pub fn inspect_json(
    reference: &str,
    top: &Descriptor,
    platforms: &[String],
    (manifest_descriptor, manifest): (&Descriptor, &ImageManifest),
    layer: &Descriptor,
    files: &Value,
) -> Value {
    json!({
        "reference": reference,
        "digest": top.digest,
        "mediaType": top.media_type,
        "size": top.size,
        "platforms": platforms,
        "manifest": {"digest": manifest_descriptor.digest, "size": manifest_descriptor.size},
        "config": {"digest": manifest.config.digest, "mediaType": manifest.config.media_type},
        "layer": {"digest": layer.digest, "size": layer.size, "mediaType": layer.media_type},
        "annotations": manifest.annotations,
        "files": files,
    })
}

fn inspect(store: &Store, args: &InspectArgs) -> Result<ExitCode> {
    let (stored, image) = resolve_skill_on(store, &args.reference, args.platform.as_ref())?;
    let files = skillport_oci::list_files(store, &image)
        .with_context(|| format!("listing the files of {}", stored.key))?;
    let platforms = image.index.as_ref().map(platforms).unwrap_or_default();
    if args.json {
        let output = inspect_json(
            &stored.key,
            &image.descriptor,
            &platforms,
            (&image.manifest_descriptor, &image.manifest),
            &image.layer,
            &json!(files),
        );
        out!("{}", serde_json::to_string_pretty(&output)?);
        return Ok(ExitCode::SUCCESS);
    }
    let ann = &image.manifest.annotations;
    let get = |key: &str| ann.get(key).map_or("-", String::as_str);
    out!("Reference:    {}", stored.key);
    out!("Digest:       {}", image.descriptor.digest);
    out!("Skill:        {}", get(annotation::SKILL_NAME));
    out!(
        "Description:  {}",
        one_line(get(annotation::DESCRIPTION), 200)
    );
    out!("Version:      {}", get(annotation::VERSION));
    if image.descriptor.media_type == media::IMAGE_INDEX {
        out!("Platforms:    {}", platforms.join(", "));
    }
    out!(
        "Layer:        {} ({})",
        image.layer.digest,
        human_size(image.layer.size)
    );
    out!("Annotations:");
    for (key, value) in ann {
        out!("  {key}: {}", one_line(value, 200));
    }
    out!("Files:");
    for file in &files {
        match file.kind {
            "file" => out!("  {}  ({})", file.path, human_size(file.size)),
            "dir" => out!("  {}/", file.path),
            kind => out!("  {}  ({kind})", file.path),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `manifest` / `config` of a store image: the top document's bytes, or the picked
/// manifest's config blob, exactly as stored.
fn raw(store: &Store, args: &crate::cli::RawArgs, config: bool) -> Result<ExitCode> {
    let (stored, image) = resolve_skill(store, &args.reference)?;
    let digest = if config {
        &image.manifest.config.digest
    } else {
        &stored.descriptor.digest
    };
    let bytes = store
        .read_blob(digest)
        .with_context(|| format!("reading {} of {}", digest, stored.key))?;
    crate::output::raw(&bytes);
    Ok(ExitCode::SUCCESS)
}

fn tag(store: &Store, args: &TagArgs) -> Result<ExitCode> {
    let source = local_reference(store, &args.source)?;
    let target = parse_reference(&args.target)?;
    if target.digest().is_some() {
        bail!("cannot tag as {target}: a new name is NAME:TAG, without a digest");
    }
    let tagged = store.tag(&source, &target)?;
    eprintln!("tagged {}", tagged.key);
    if args.json {
        print_json(&serde_json::json!({
            "reference": tagged.key,
            "digest": tagged.descriptor.digest,
        }))?;
    } else {
        out!("{}", tagged.descriptor.digest);
    }
    Ok(ExitCode::SUCCESS)
}

fn export(store: &Store, args: &ExportArgs) -> Result<ExitCode> {
    let (stored, image) = resolve_skill_on(store, &args.reference, args.platform.as_ref())?;
    let unpacked = skillport_oci::export(store, &image, &args.dest)
        .with_context(|| format!("exporting {} to {}", stored.key, args.dest.display()))?;
    eprintln!(
        "exported {} ({}, {}) to {}",
        stored.key,
        plural(unpacked.files, "file"),
        human_size(unpacked.bytes),
        args.dest.display()
    );
    // The digest on stdout, as an export from a registry prints it.
    exported_json_or_digest(args, &stored.key, &stored.descriptor.digest, &unpacked)
}

/// What `export` prints on stdout: the digest, or with `--json` what was written where.
pub fn exported_json_or_digest(
    args: &ExportArgs,
    reference: &str,
    digest: &skillport_oci::Digest,
    unpacked: &skillport_oci::Unpacked,
) -> Result<ExitCode> {
    if args.json {
        print_json(&serde_json::json!({
            "reference": reference,
            "digest": digest,
            "dest": args.dest,
            "files": unpacked.files,
            "bytes": unpacked.bytes,
        }))?;
    } else {
        out!("{digest}");
    }
    Ok(ExitCode::SUCCESS)
}

fn rm(store: &Store, args: &RmArgs) -> Result<ExitCode> {
    let mut removed_all = Vec::new();
    for text in &args.references {
        let reference = local_reference(store, text)?;
        let removed = store.remove(&reference)?;
        // The name as the store held it: `rm my-skill` removes my-skill:latest, and says so.
        if args.json {
            removed_all.push(serde_json::json!({
                "reference": reference.store_key(),
                "blobsDeleted": removed.blobs,
                "bytesDeleted": removed.bytes,
            }));
        } else {
            out!(
                "removed {} (deleted {}, {})",
                reference.store_key(),
                plural(removed.blobs, "unused blob"),
                human_size(removed.bytes)
            );
        }
    }
    if args.json {
        print_json(&serde_json::Value::Array(removed_all))?;
    }
    Ok(ExitCode::SUCCESS)
}
