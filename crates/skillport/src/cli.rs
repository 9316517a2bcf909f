// Command-line arguments.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

const EXAMPLES: &str = "\
Examples:
  skillport init my-skill                      # scaffold my-skill/SKILL.md
  skillport validate my-skill                  # check it against the agentskills.io spec
  skillport build my-skill -t my-skill:0.1.0   # build an image into the local store
  skillport images                             # list what the store holds
  skillport inspect my-skill:0.1.0 --json      # metadata, annotations, files
  skillport tag my-skill:0.1.0 my-skill:latest
  skillport export my-skill:0.1.0 ./out        # the skill's files back on disk
  skillport rm my-skill:latest
  skillport demo                               # the shipped examples: built, exported, rendered for a cluster";

/// Package Agent Skills as OCI images and deliver them where agents run.
#[derive(Debug, Parser)]
#[command(name = "skillport", version, about, after_help = EXAMPLES)]
pub struct Cli {
    /// The local image store (an OCI image layout).
    /// [default: $XDG_DATA_HOME/skillport/store]
    #[arg(long, env = "SKILLPORT_STORE", value_name = "DIR")]
    pub store: Option<PathBuf>,

    /// Extra CA certificate (PEM) to trust for registries; repeatable.
    #[arg(long = "ca-file", value_name = "FILE")]
    pub ca_files: Vec<PathBuf>,

    /// Skip TLS verification (and allow plain HTTP) for the registries this command talks to.
    #[arg(long)]
    pub insecure: bool,

    /// Registry credentials from these Docker config / auth.json files only, in order (the
    /// first with an entry for a registry wins). [default: docker's and podman's usual files]
    #[arg(long = "authfile", value_name = "FILE")]
    pub auth_files: Vec<PathBuf>,

    /// More log output on stderr (-v: debug, -vv: trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

/// `--store`, on the commands that use the local store (and before any command).
#[derive(Debug, Args, Clone, Default)]
pub struct StoreOption {
    /// The local image store (an OCI image layout).
    /// [default: $XDG_DATA_HOME/skillport/store]
    #[arg(long, env = "SKILLPORT_STORE", value_name = "DIR")]
    pub store: Option<PathBuf>,
}

/// Trust and credentials, on the commands that talk to registries (and before any command).
#[derive(Debug, Args, Clone, Default)]
pub struct RegistryOptions {
    /// Extra CA certificate (PEM) to trust for registries; repeatable.
    #[arg(long = "ca-file", value_name = "FILE")]
    pub ca_files: Vec<PathBuf>,
    /// Skip TLS verification (and allow plain HTTP) for the registries this command talks to.
    #[arg(long)]
    pub insecure: bool,
    /// Registry credentials from these Docker config / auth.json files only, in order (the
    /// first with an entry for a registry wins). [default: docker's and podman's usual files]
    #[arg(long = "authfile", value_name = "FILE")]
    pub auth_files: Vec<PathBuf>,
}

/// The options of [`Cli`] that act on the store or on registries, as written on the command
/// line before the command (not from the environment): those a command has no use for are
/// refused, not ignored. After the command, only the commands that use them have them.
pub fn given_globals(matches: &clap::ArgMatches) -> Vec<&'static str> {
    [
        ("store", "--store"),
        ("ca_files", "--ca-file"),
        ("insecure", "--insecure"),
        ("auth_files", "--authfile"),
    ]
    .into_iter()
    .filter(|(id, _)| matches.value_source(id) == Some(clap::parser::ValueSource::CommandLine))
    .map(|(_, flag)| flag)
    .collect()
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a new skill folder with a valid SKILL.md.
    #[command(after_help = "Example:\n  skillport init pdf-tools --card")]
    Init(InitArgs),
    /// Check skill folders against the agentskills.io specification.
    #[command(after_help = "Example:\n  skillport validate skills/* --lenient")]
    Validate(ValidateArgs),
    /// Build a skill folder into an OCI image in the local store.
    #[command(
        after_help = "Example:\n  SOURCE_DATE_EPOCH=1700000000 skillport build ./pdf-tools -t pdf-tools:1.2.0 -t pdf-tools:latest"
    )]
    Build(BuildArgs),
    /// List the images in the local store.
    Images(ImagesArgs),
    /// Show an image's metadata, annotations and files.
    #[command(after_help = "Example:\n  skillport inspect pdf-tools:1.2.0 --json")]
    Inspect(InspectArgs),
    /// Print an image's manifest (or index) exactly as stored or served, for scripts.
    #[command(
        after_help = "Example:\n  skillport manifest registry.example.com/skills/pdf-tools:1.2.0 | jq ."
    )]
    Manifest(RawArgs),
    /// Print the image config of the manifest a skill is read from, for scripts.
    #[command(after_help = "Example:\n  skillport config pdf-tools:1.2.0 | jq .rootfs")]
    Config(RawArgs),
    /// Give an image another name.
    #[command(after_help = "Example:\n  skillport tag pdf-tools:1.2.0 pdf-tools:stable")]
    Tag(TagArgs),
    /// Write an image's files to a folder.
    #[command(after_help = "Example:\n  skillport export pdf-tools:1.2.0 .agents/skills/pdf-tools")]
    Export(ExportArgs),
    /// Remove names from the store and delete blobs nothing uses any more.
    #[command(visible_alias = "rmi")]
    Rm(RmArgs),
    /// Push an image from the local store to a registry.
    #[command(
        after_help = "Example:\n  skillport push pdf-tools:1.2.0 registry.example.com/skills/pdf-tools:1.2.0"
    )]
    Push(PushArgs),
    /// Pull an image from a registry into the local store.
    #[command(
        after_help = "Examples:\n  skillport pull registry.example.com/skills/pdf-tools:1.2.0\n  skillport pull registry.example.com/skills/pdf-tools@sha256:…"
    )]
    Pull(PullArgs),
    /// Copy an image from one registry (or repository) to another, never through the disk.
    #[command(
        after_help = "Example:\n  skillport copy registry.example.com/skills/pdf-tools:1.2.0 mirror.example.com/skills/pdf-tools:1.2.0\n\nEvery platform is copied and the digest stays the same. Blobs the target lacks are mounted\nwithin one registry, or carried in memory between two. Credentials for both come from the\nsame files (--authfile, repeatable)."
    )]
    Copy(CopyArgs),
    /// Print the digest a registry reference points at.
    Resolve(ResolveArgs),
    /// List a repository's tags.
    #[command(
        after_help = "Example:\n  skillport tags registry.example.com/skills/pdf-tools --json"
    )]
    Tags(TagsArgs),
    /// Store registry credentials as docker does: with the credential helper the Docker config
    /// names for the registry (credHelpers, credsStore), else in the file.
    #[command(
        after_help = "Example:\n  printf %s \"$TOKEN\" | skillport login registry.example.com -u robot --password-stdin"
    )]
    Login(LoginArgs),
    /// Remove a registry's credentials from where login put them (its credential helper, the
    /// Docker config file).
    #[command(after_help = "Example:\n  skillport logout registry.example.com")]
    Logout(LogoutArgs),
    /// Build the example skills into a fresh store, export them as an agent sees them, and
    /// render them onto an example Deployment as the operator would (both delivery modes).
    Demo(DemoArgs),
    /// Fetch the skills a plan lists into a folder: the agent pod's init container.
    #[command(
        after_help = "Example:\n  skillport fetch --plan /etc/skillport/plan.json --into /skills\n\nThe plan (docs/fetch.md) names the skills, the mounted pull secrets, CA files and\ninsecure registries; no other flag or file is read. On failure one line goes to\n--termination-log and the exit code is 1."
    )]
    Fetch(FetchArgs),
    /// Install skills for local agents: add them to skillport.json, pin them in
    /// skillport.lock.json, and write them into each target's skills folder.
    #[command(after_help = INSTALL_HELP)]
    Install(InstallArgs),
    /// List the installed skills: source, digest or commit, folders.
    List(ScopeArgs),
    /// List installed skills whose tag or branch now points elsewhere.
    Outdated(OutdatedArgs),
    /// Move installed skills to what their tags and branches point at now; rewrite the lock.
    Update(UpdateArgs),
    /// Remove installed skills: their folders, and their entries in the manifest and lock.
    Uninstall(UninstallArgs),
    /// Check installed skills against the lock (each file edited, added or removed), or, with
    /// --skill, skills mounted as image volumes (the operator's verify init container).
    #[command(
        after_help = "Examples:\n  skillport verify                 # the installed skills against skillport.lock.json\n  skillport verify --global --json\n  skillport verify --index /var/run/skillport/index/index.json --index-root /skills \\\n    --skill name=pdf,path=/skills/pdf,image=registry.example.com/skills/pdf@sha256:…\n\nWithout --skill: exit 1 when a folder is missing or changed, naming each file. With\n--skill: each folder must exist, not be empty and have a usable SKILL.md; on failure one\nline goes to --termination-log and the exit code is 1. Signatures: verify-signature."
    )]
    Verify(VerifyArgs),
    /// Sign an image in a registry as cosign does: a sigstore bundle attached to its digest.
    #[command(
        after_help = "Example:\n  COSIGN_PASSWORD=… skillport sign registry.example.com/skills/pdf-tools:1.2.0 --key cosign.key\n\nThe signature is a sigstore bundle (cosign v3's format) attached through the OCI 1.1\nreferrers API, or the referrers tag sha256-<digest> on registries without it.\n`cosign verify` reads it."
    )]
    Sign(SignArgs),
    /// Check an image's cosign signatures: with a key, or a keyless identity and trusted root.
    #[command(
        after_help = "Examples:\n  skillport verify-signature registry.example.com/skills/pdf-tools:1.2.0 --key cosign.pub\n  skillport verify-signature registry.example.com/skills/pdf-tools:1.2.0 \\\n    --certificate-identity dev@example.com --certificate-oidc-issuer https://accounts.example.com \\\n    --trusted-root trusted_root.json\n\nReads cosign v3 bundles (referrers API or tag) and legacy .sig tags, offline. Exits 0 only\nwhen a signature satisfies every flag given. `skillport verify` is another command: it\nchecks skill folders mounted in a pod."
    )]
    VerifySignature(VerifySignatureArgs),
    /// Write a new key pair in cosign's format: cosign.key (encrypted) and cosign.pub.
    #[command(
        after_help = "Example:\n  COSIGN_PASSWORD=… skillport generate-key-pair --output-key-prefix release\n\nThe password comes from COSIGN_PASSWORD, or is asked for on a terminal."
    )]
    GenerateKeyPair(GenerateKeyPairArgs),
    /// Print shell completions for bash, zsh, fish, elvish or PowerShell.
    #[command(
        after_help = "Examples:\n  skillport completions bash > ~/.local/share/bash-completion/completions/skillport\n  skillport completions zsh > \"${fpath[1]}/_skillport\"\n  skillport completions fish > ~/.config/fish/completions/skillport.fish"
    )]
    Completions(CompletionsArgs),
    /// Print skillport's version.
    Version,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// Print JSON instead of a table.
    #[arg(long, conflicts_with = "quiet")]
    pub json: bool,
    /// Print only the references (NAME:TAG, or NAME@DIGEST without a tag), one a line.
    #[arg(short, long)]
    pub quiet: bool,
    #[command(flatten)]
    pub store: StoreOption,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The skill's name; also the folder created (1-64 of a-z, 0-9, -).
    pub name: String,
    /// Create the folder inside this one.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,
    /// Also write a skill.yaml (SkillCard).
    #[arg(long)]
    pub card: bool,
    /// The SkillCard's namespace (with --card).
    #[arg(long, default_value = "default")]
    pub namespace: String,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Skill folders (the current folder when none is given).
    #[arg(value_name = "DIR", default_value = ".")]
    pub dirs: Vec<PathBuf>,
    /// Report spec violations as warnings, as agent clients load skills.
    #[arg(long)]
    pub lenient: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The skill folder.
    #[arg(value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,
    /// Name the image (repeatable), e.g. my-skill:0.1.0. [default: <skill name>:latest]
    #[arg(short, long = "tag", value_name = "NAME[:TAG]")]
    pub tags: Vec<String>,
    /// Build despite spec violations (they are printed as warnings).
    #[arg(long)]
    pub lenient: bool,
    /// Add a skill.yaml generated from SKILL.md when the folder has none.
    #[arg(long)]
    pub card: bool,
    /// The generated SkillCard's namespace (with --card).
    #[arg(long, default_value = "default")]
    pub namespace: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub store: StoreOption,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The image, e.g. my-skill:0.1.0, my-skill@sha256:… or registry.example.com/skills/x:1
    /// (a reference naming a registry is read from the registry, with one manifest fetch).
    pub reference: String,
    /// Read a reference that names a registry from the local store instead.
    #[arg(long)]
    pub local: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub store: StoreOption,
    #[command(flatten)]
    pub registries: RegistryOptions,
    /// Read the manifest of this platform from a multi-platform image (os/arch[/variant], as
    /// docker's --platform). [default: linux/amd64, else the image's only one]
    #[arg(long, value_name = "OS/ARCH")]
    pub platform: Option<skillport_oci::spec::Platform>,
}

#[derive(Debug, Args)]
pub struct TagArgs {
    /// The existing image.
    pub source: String,
    /// The new name.
    pub target: String,
    #[command(flatten)]
    pub store: StoreOption,
    /// Print JSON: the new reference and its digest.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The image (a reference naming a registry is downloaded from it).
    pub reference: String,
    /// The folder to create (it must not exist, or be empty).
    pub dest: PathBuf,
    /// Read a reference that names a registry from the local store instead.
    #[arg(long)]
    pub local: bool,
    #[command(flatten)]
    pub store: StoreOption,
    #[command(flatten)]
    pub registries: RegistryOptions,
    /// Print JSON: the reference, its digest, the folder, and the files and bytes written.
    #[arg(long)]
    pub json: bool,
    /// Read the manifest of this platform from a multi-platform image (os/arch[/variant], as
    /// docker's --platform). [default: linux/amd64, else the image's only one]
    #[arg(long, value_name = "OS/ARCH")]
    pub platform: Option<skillport_oci::spec::Platform>,
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// The image in the local store.
    pub source: String,
    /// Where to push it [default: the source's own name, which must name a registry].
    pub target: Option<String>,
    /// Print JSON: the reference and its digest (and media type and size).
    #[arg(long)]
    pub json: bool,
    /// Sign what was pushed (as `skillport sign`), with --key.
    #[arg(long, requires = "key")]
    pub sign: bool,
    /// The cosign private key to sign with (password from COSIGN_PASSWORD or a prompt).
    #[arg(long, value_name = "FILE", requires = "sign")]
    pub key: Option<PathBuf>,
    #[command(flatten)]
    pub store: StoreOption,
    #[command(flatten)]
    pub registries: RegistryOptions,
}

#[derive(Debug, Args)]
pub struct SignArgs {
    /// The image, e.g. registry.example.com/skills/pdf-tools:1.2.0 (a tag is signed at the
    /// digest it points to now).
    pub reference: String,
    /// The cosign private key (cosign.key); password from COSIGN_PASSWORD or a prompt.
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// Print JSON: the image digest and the signature's.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub registries: RegistryOptions,
}

#[derive(Debug, Args)]
pub struct VerifySignatureArgs {
    /// The image.
    pub reference: String,
    /// The public key (cosign.pub) a signature must verify with.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["certificate_identity", "certificate_identity_regexp", "certificate_oidc_issuer", "certificate_oidc_issuer_regexp", "trusted_root"])]
    pub key: Option<PathBuf>,
    /// Keyless: the identity (email or URI) the signing certificate must name.
    #[arg(
        long,
        value_name = "ID",
        conflicts_with = "certificate_identity_regexp"
    )]
    pub certificate_identity: Option<String>,
    /// Keyless: a regular expression the certificate's identity must match.
    #[arg(long, value_name = "REGEX")]
    pub certificate_identity_regexp: Option<String>,
    /// Keyless: the OIDC issuer the certificate must name.
    #[arg(
        long,
        value_name = "URL",
        conflicts_with = "certificate_oidc_issuer_regexp"
    )]
    pub certificate_oidc_issuer: Option<String>,
    /// Keyless: a regular expression the certificate's OIDC issuer must match.
    #[arg(long, value_name = "REGEX")]
    pub certificate_oidc_issuer_regexp: Option<String>,
    /// Keyless: the sigstore trusted root (trusted_root.json) certificates must chain to.
    #[arg(long, value_name = "FILE")]
    pub trusted_root: Option<PathBuf>,
    /// Print JSON: the digest and every signature that passed.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub registries: RegistryOptions,
}

#[derive(Debug, Args)]
pub struct GenerateKeyPairArgs {
    /// Write PREFIX.key and PREFIX.pub.
    #[arg(long, value_name = "PREFIX", default_value = "cosign")]
    pub output_key_prefix: String,
}

#[derive(Debug, Args)]
pub struct PullArgs {
    /// The image, e.g. registry.example.com/skills/pdf-tools:1.2.0.
    pub reference: String,
    /// Print JSON: the reference and its digest (and media type and size).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub store: StoreOption,
    #[command(flatten)]
    pub registries: RegistryOptions,
    /// Pull only this platform's manifest of a multi-platform image (os/arch[/variant]), stored
    /// as the image, as crane pull --platform does. [default: every platform]
    #[arg(long, value_name = "OS/ARCH")]
    pub platform: Option<skillport_oci::spec::Platform>,
}

#[derive(Debug, Args)]
pub struct RawArgs {
    /// The image (a reference naming a registry is read from it).
    pub reference: String,
    /// Read a reference that names a registry from the local store instead.
    #[arg(long)]
    pub local: bool,
    #[command(flatten)]
    pub store: StoreOption,
    #[command(flatten)]
    pub registries: RegistryOptions,
}

#[derive(Debug, Args)]
pub struct CopyArgs {
    /// The image to copy, e.g. registry.example.com/skills/pdf-tools:1.2.0.
    pub source: String,
    /// Where to, e.g. mirror.example.com/skills/pdf-tools:1.2.0.
    pub target: String,
    /// Print JSON: the target and the digest.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub registries: RegistryOptions,
}

#[derive(Debug, Args)]
pub struct ResolveArgs {
    /// The image.
    pub reference: String,
    /// Print JSON: the reference and its digest (and media type and size).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub registries: RegistryOptions,
}

#[derive(Debug, Args)]
pub struct TagsArgs {
    /// The repository, e.g. registry.example.com/skills/pdf-tools.
    pub repository: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub registries: RegistryOptions,
}

#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// The registry host, e.g. registry.example.com or 127.0.0.1:5000.
    pub registry: String,
    /// The Docker config file to edit. [default: $DOCKER_CONFIG/config.json or ~/.docker/config.json]
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The registry host, e.g. registry.example.com or 127.0.0.1:5000.
    pub registry: String,
    /// The user name.
    #[arg(short, long)]
    pub username: String,
    /// Read the password (or token) from standard input. Without it, the password is asked
    /// for on the terminal (not echoed). Passwords are never taken as arguments, which other
    /// users of the machine could see.
    #[arg(long)]
    pub password_stdin: bool,
    /// The Docker config file to write. [default: $DOCKER_CONFIG/config.json or ~/.docker/config.json]
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub registries: RegistryOptions,
    /// Print JSON: the registry, the user and the file the credentials went to.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Images to remove.
    #[arg(required = true)]
    pub references: Vec<String>,
    #[command(flatten)]
    pub store: StoreOption,
    /// Print JSON: each reference removed, and the unused blobs deleted with it.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// A folder of example skills to use instead of those built into skillport (the
    /// repository's `examples/`).
    #[arg(long, value_name = "DIR")]
    pub examples: Option<PathBuf>,
    /// Where to put the demo's store and the exported skills (replaced if it exists).
    #[arg(long, default_value = "target/demo", value_name = "DIR")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Where to write the index (a file named index.json). With --skill.
    #[arg(long, value_name = "FILE", requires = "skills")]
    pub index: Option<PathBuf>,
    /// The folder where the agent sees index.json; skill paths in it are relative to this.
    /// With --skill.
    #[arg(long, value_name = "DIR", requires = "skills")]
    pub index_root: Option<PathBuf>,
    /// A mounted skill: `name=NAME,path=DIR,image=REF` (optionally `,treeHash=sha256:…`).
    /// Repeatable; checked in order. Needs --index and --index-root.
    #[arg(long = "skill", value_name = "SPEC", value_parser = parse_mounted, requires_all = ["index", "index_root"])]
    pub skills: Vec<skillport_fetch::verify::Mounted>,
    /// The installed skills of the user's scope (~/.config/skillport) instead of this
    /// project's.
    #[arg(long, conflicts_with = "skills")]
    pub global: bool,
    /// The results as JSON (installed skills).
    #[arg(long, conflicts_with = "skills")]
    pub json: bool,
    /// Where one line goes on failure, for Kubernetes to show.
    /// [default: /dev/termination-log, written only when it exists]
    #[arg(long, value_name = "FILE")]
    pub termination_log: Option<PathBuf>,
}

/// `name=…,path=…,image=…[,treeHash=…]`.
fn parse_mounted(text: &str) -> Result<skillport_fetch::verify::Mounted, String> {
    let (mut name, mut path, mut image, mut tree_hash) = (None, None, None, None);
    for part in text.split(',') {
        let (key, value) = part
            .split_once('=')
            .ok_or_else(|| format!("{part:?} is not key=value"))?;
        match key {
            "name" => name = Some(value.to_owned()),
            "path" => path = Some(PathBuf::from(value)),
            "image" => image = Some(value.to_owned()),
            "treeHash" => {
                tree_hash = Some(
                    value
                        .parse()
                        .map_err(|_| format!("treeHash {value:?} is not a digest"))?,
                );
            }
            other => {
                return Err(format!(
                    "unknown key {other:?} (name, path, image, treeHash)"
                ));
            }
        }
    }
    let missing = |what| format!("{what}= is missing");
    let path = path.ok_or_else(|| missing("path"))?;
    if !path.is_absolute() {
        return Err(format!("path {} must be absolute", path.display()));
    }
    Ok(skillport_fetch::verify::Mounted {
        name: name.ok_or_else(|| missing("name"))?,
        path,
        image: image.ok_or_else(|| missing("image"))?,
        tree_hash,
    })
}

#[derive(Debug, Args)]
pub struct FetchArgs {
    /// The plan (JSON, kind FetchPlan), as mounted from the operator's ConfigMap.
    #[arg(long, value_name = "FILE")]
    pub plan: PathBuf,
    /// The folder the skills go into; the only place written (besides the termination log).
    #[arg(long, value_name = "DIR", required_unless_present = "dry_run")]
    pub into: Option<PathBuf>,
    /// Check everything a fetch needs and write nothing: the plan, its credential and CA files,
    /// and that every source resolves (prints each skill's digest or commit).
    #[arg(long, conflicts_with = "into")]
    pub dry_run: bool,
    /// Where one line goes on failure, for Kubernetes to show.
    /// [default: /dev/termination-log, written only when it exists]
    #[arg(long, value_name = "FILE")]
    pub termination_log: Option<PathBuf>,
    /// Give up after this long in all, e.g. 90s, 5m, 1h.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Attempts per skill for failures that may pass (connection, 5xx); 1 means no retry.
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub attempts: u32,
}

/// `90s`, `5m`, `1h`, `1h30m`, or plain seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<u64>()
        && seconds > 0
    {
        return Ok(Duration::from_secs(seconds));
    }
    let mut total: u64 = 0;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            _ => return Err(format!("{text:?}: write a duration like 90s, 5m or 1h")),
        };
        let value: u64 = number
            .parse()
            .map_err(|_| format!("{text:?}: write a duration like 90s, 5m or 1h"))?;
        total = total.saturating_add(value.saturating_mul(unit));
        number.clear();
    }
    if !number.is_empty() || total == 0 {
        return Err(format!(
            "{text:?}: write a duration like 90s, 5m or 1h (more than zero)"
        ));
    }
    Ok(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5m3").is_err());
    }
}

const INSTALL_HELP: &str = "Examples:
  skillport install registry.example.com/skills/pdf-tools:1.2   # resolve, install, record
  skillport install ./my-skill                                   # a local folder (built first)
  skillport install https://github.com/org/skills.git//skills/review@v1.0.0   # git
  skillport install --target claude --target cursor registry.example.com/skills/pdf-tools:1.2
  skillport install                  # everything in skillport.json, as the lock pins it
  skillport install --frozen         # CI: fail if skillport.json and the lock disagree

Targets: agents (.agents/skills, the default), claude (.claude/skills), cursor
(.cursor/skills), copilot (.github/skills), codex (.agents/skills), gemini (.gemini/skills),
opencode (.opencode/skills), windsurf (.windsurf/skills), or a folder (./path). With
--global, the user's folders (~/.claude/skills, ~/.copilot/skills, ~/.config/opencode/skills,
~/.codeium/windsurf/skills, ...) and ~/.config/skillport/skillport.json.

A folder skillport did not write is never replaced (--adopt takes it over), nor one changed
since it was written (--force replaces it). With the images in the local store, installing
from the lock needs no network.";

/// The manifest and lock a command works on.
#[derive(Debug, Args)]
pub struct ScopeArgs {
    /// The user's scope: ~/.config/skillport/skillport.json and the agents' folders under the
    /// home folder, instead of this project's.
    #[arg(long)]
    pub global: bool,
    /// The result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct InstallArgs {
    /// Skills to add: an image reference, a local folder (./DIR) or a git URL
    /// (https://host/repo.git//PATH@REF). None: install what skillport.json lists.
    #[arg(value_name = "SOURCE")]
    pub sources: Vec<String>,
    /// The skill's folder name. [default: the image's or git path's last part, a folder's
    /// skill name]
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Where the skills added go: an agent (agents, claude, cursor, copilot, codex, gemini,
    /// opencode, windsurf) or a folder. Repeatable. [default: agents]
    #[arg(long = "target", value_name = "TARGET")]
    pub targets: Vec<String>,
    /// Fail when skillport.json and the lock disagree, instead of resolving anew.
    #[arg(long, conflicts_with = "sources")]
    pub frozen: bool,
    /// Take over existing skill folders skillport did not write (their content is replaced).
    #[arg(long)]
    pub adopt: bool,
    /// Replace skill folders changed since skillport wrote them.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub scope: ScopeArgs,
    #[command(flatten)]
    pub store: StoreOption,
    #[command(flatten)]
    pub registries: RegistryOptions,
}

#[derive(Debug, Args)]
pub struct OutdatedArgs {
    #[command(flatten)]
    pub scope: ScopeArgs,
    #[command(flatten)]
    pub store: StoreOption,
    #[command(flatten)]
    pub registries: RegistryOptions,
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// The skills to update. [default: all]
    #[arg(value_name = "NAME")]
    pub names: Vec<String>,
    /// Replace skill folders changed since skillport wrote them.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub scope: ScopeArgs,
    #[command(flatten)]
    pub store: StoreOption,
    #[command(flatten)]
    pub registries: RegistryOptions,
}

#[derive(Debug, Args)]
pub struct UninstallArgs {
    /// The skills to remove.
    #[arg(value_name = "NAME", required = true)]
    pub names: Vec<String>,
    /// Remove folders even when they changed since skillport wrote them.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub scope: ScopeArgs,
}
