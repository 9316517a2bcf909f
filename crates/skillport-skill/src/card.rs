// skill.yaml: the SkillCard of the skillimage/skillctl tool (`apiVersion: skillimage.io/v1alpha1`).
// Parsing walks the YAML tree by hand rather than through serde so that every problem is
// reported at once, each with its line; the field names and rules follow skillctl's JSON Schema
// (schemas/skillcard-v1.json) plus a strict SemVer 2.0 `metadata.version`.

use std::fmt::Write as _;
use std::path::Path;

use marked_yaml::Node;
use marked_yaml::types::MarkedMappingNode;
use serde::{Deserialize, Serialize};

use crate::diagnostic::{Diagnostic, Mode, Position, Report};
use crate::frontmatter::{Frontmatter, key_position, kind, name_problems, parse_yaml_mapping};

/// The only `apiVersion` a `SkillCard` may have.
pub const SKILL_CARD_API_VERSION: &str = "skillimage.io/v1alpha1";
/// The only `kind` a `SkillCard` may have.
pub const SKILL_CARD_KIND: &str = "SkillCard";

const DISPLAY_NAME_MAX: usize = 128;
const NAMESPACE_MAX: usize = 128;

/// The optional `skill.yaml` of a skill: publishing metadata beyond SKILL.md.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SkillCard {
    /// Always [`SKILL_CARD_API_VERSION`].
    pub api_version: String,
    /// Always [`SKILL_CARD_KIND`].
    pub kind: String,
    /// Name, namespace, version and descriptive fields.
    pub metadata: CardMetadata,
    /// Where the skill came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<CardProvenance>,
    /// Prompt file, examples and dependencies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<CardSpec>,
}

/// `metadata` of a `SkillCard`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct CardMetadata {
    /// The skill name; equals SKILL.md's `name`.
    pub name: String,
    /// Display name, 1-128 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Owner, like `team` or `org/team`.
    pub namespace: String,
    /// A `SemVer` 2.0 version, like `1.2.0`.
    pub version: String,
    /// What the skill does.
    pub description: String,
    /// License name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    /// Environment requirements.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compatibility: Option<String>,
    /// Free-form tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Authors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authors: Vec<CardAuthor>,
    /// Space-separated tools the skill may use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_tools: Option<String>,
}

/// One author in a `SkillCard`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardAuthor {
    /// Author name.
    pub name: String,
    /// Author e-mail address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// `provenance` of a `SkillCard`: the source the skill was built from.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardProvenance {
    /// Source repository URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Source commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// Path of the skill inside the source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// `spec` of a `SkillCard`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardSpec {
    /// The prompt file, usually `SKILL.md`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// Example inputs and outputs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub examples: Vec<CardExample>,
    /// Other skills this one needs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<CardDependency>,
}

/// One example in a `SkillCard`'s `spec`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardExample {
    /// Example input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    /// Expected output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
}

/// One dependency in a `SkillCard`'s `spec`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardDependency {
    /// Skill name.
    pub name: String,
    /// Version or range.
    pub version: String,
}

impl SkillCard {
    /// Parses and validates the text of a skill.yaml; the error holds every problem, by line.
    pub fn parse(text: &str, file: &Path) -> Result<SkillCard, Vec<Diagnostic>> {
        let (card, _, report) = read_card(text, file);
        match card {
            Some(card) if !report.has_errors() => Ok(card),
            _ => Err(report.finish()),
        }
    }

    /// A `SkillCard` for a skill that has none: SKILL.md's fields plus a version and namespace.
    /// Like skillctl, `spec.prompt` is `SKILL.md` and a `metadata.author` entry becomes the author.
    pub fn from_frontmatter(
        frontmatter: &Frontmatter,
        version: &semver::Version,
        namespace: &str,
    ) -> SkillCard {
        let authors = frontmatter
            .metadata
            .get("author")
            .map(|name| CardAuthor {
                name: name.clone(),
                email: None,
            })
            .into_iter()
            .collect();
        SkillCard {
            api_version: SKILL_CARD_API_VERSION.to_owned(),
            kind: SKILL_CARD_KIND.to_owned(),
            metadata: CardMetadata {
                name: frontmatter.name.clone(),
                display_name: None,
                namespace: namespace.to_owned(),
                version: version.to_string(),
                description: frontmatter.description.clone(),
                license: frontmatter.license.clone(),
                compatibility: frontmatter.compatibility.clone(),
                tags: Vec::new(),
                authors,
                allowed_tools: frontmatter.allowed_tools.clone(),
            },
            provenance: None,
            spec: Some(CardSpec {
                prompt: Some("SKILL.md".to_owned()),
                ..CardSpec::default()
            }),
        }
    }

    /// The card as skill.yaml text; [`SkillCard::parse`] reads it back to an equal card.
    pub fn to_yaml(&self) -> String {
        let mut out = Yaml::default();
        out.field(0, "apiVersion", &self.api_version);
        out.field(0, "kind", &self.kind);
        out.key(0, "metadata");
        let metadata = &self.metadata;
        out.field(2, "name", &metadata.name);
        out.optional(2, "display-name", metadata.display_name.as_deref());
        out.field(2, "namespace", &metadata.namespace);
        out.field(2, "version", &metadata.version);
        out.field(2, "description", &metadata.description);
        out.optional(2, "license", metadata.license.as_deref());
        out.optional(2, "compatibility", metadata.compatibility.as_deref());
        if !metadata.tags.is_empty() {
            out.key(2, "tags");
            for tag in &metadata.tags {
                out.item(4, tag);
            }
        }
        if !metadata.authors.is_empty() {
            out.key(2, "authors");
            for author in &metadata.authors {
                out.list_field(4, "name", &author.name);
                out.optional(6, "email", author.email.as_deref());
            }
        }
        out.optional(2, "allowed-tools", metadata.allowed_tools.as_deref());
        if let Some(provenance) = &self.provenance {
            let fields = [
                ("source", &provenance.source),
                ("commit", &provenance.commit),
                ("path", &provenance.path),
            ];
            if fields.iter().all(|(_, value)| value.is_none()) {
                out.empty_mapping(0, "provenance");
            } else {
                out.key(0, "provenance");
                for (key, value) in fields {
                    out.optional(2, key, value.as_deref());
                }
            }
        }
        if let Some(spec) = &self.spec {
            if *spec == CardSpec::default() {
                out.empty_mapping(0, "spec");
            } else {
                out.key(0, "spec");
                out.optional(2, "prompt", spec.prompt.as_deref());
                if !spec.examples.is_empty() {
                    out.key(2, "examples");
                    for example in &spec.examples {
                        match (&example.input, &example.output) {
                            (None, None) => out.line(4, "- {}"),
                            (Some(input), output) => {
                                out.list_field(4, "input", input);
                                out.optional(6, "output", output.as_deref());
                            }
                            (None, Some(output)) => out.list_field(4, "output", output),
                        }
                    }
                }
                if !spec.dependencies.is_empty() {
                    out.key(2, "dependencies");
                    for dependency in &spec.dependencies {
                        out.list_field(4, "name", &dependency.name);
                        out.field(6, "version", &dependency.version);
                    }
                }
            }
        }
        out.text
    }
}

/// Parses a skill.yaml; also returns where `metadata.name` is, for the check against SKILL.md.
/// The card is `Some` whenever the YAML is a mapping; check the report for errors.
pub(crate) fn read_card(text: &str, file: &Path) -> (Option<SkillCard>, Position, Report) {
    // Lenient mode does not apply to skill.yaml: it is our own publishing format.
    let mut report = Report::new(file.to_owned(), Mode::Strict, 0);
    let Some(root) = parse_yaml_mapping(text, "skill.yaml", &mut report) else {
        return (None, None, report);
    };
    let root = Fields::check(
        &root,
        "",
        None,
        &["apiVersion", "kind", "metadata", "provenance", "spec"],
        &mut report,
    );
    let api_version = root.string("apiVersion", true, &mut report);
    if let Some(value) = &api_version
        && value != SKILL_CARD_API_VERSION
    {
        report.error(
            root.at("apiVersion"),
            format!("apiVersion must be {SKILL_CARD_API_VERSION:?}, not {value:?}"),
        );
    }
    let kind_value = root.string("kind", true, &mut report);
    if let Some(value) = &kind_value
        && value != SKILL_CARD_KIND
    {
        report.error(
            root.at("kind"),
            format!("kind must be {SKILL_CARD_KIND:?}, not {value:?}"),
        );
    }
    let metadata = root.mapping("metadata", true, METADATA_FIELDS, &mut report);
    let name_at = metadata.as_ref().and_then(|metadata| metadata.at("name"));
    let metadata = metadata
        .map(|metadata| read_metadata(&metadata, &mut report))
        .unwrap_or_default();
    let provenance = root
        .mapping(
            "provenance",
            false,
            &["source", "commit", "path"],
            &mut report,
        )
        .map(|provenance| CardProvenance {
            source: provenance.string("source", false, &mut report),
            commit: provenance.string("commit", false, &mut report),
            path: provenance.string("path", false, &mut report),
        });
    let spec = root
        .mapping(
            "spec",
            false,
            &["prompt", "examples", "dependencies"],
            &mut report,
        )
        .map(|spec| read_spec(&spec, &mut report));
    let card = SkillCard {
        api_version: api_version.unwrap_or_default(),
        kind: kind_value.unwrap_or_default(),
        metadata,
        provenance,
        spec,
    };
    (Some(card), name_at, report)
}

const METADATA_FIELDS: &[&str] = &[
    "name",
    "display-name",
    "namespace",
    "version",
    "description",
    "license",
    "compatibility",
    "tags",
    "authors",
    "allowed-tools",
];

fn read_metadata(metadata: &Fields<'_>, report: &mut Report) -> CardMetadata {
    let name = metadata.string("name", true, report);
    if let Some(name) = &name {
        for problem in name_problems("metadata.name", name) {
            report.error(metadata.at("name"), problem);
        }
    }
    let namespace = metadata.string("namespace", true, report);
    if let Some(namespace) = &namespace
        && !namespace_is_valid(namespace)
    {
        report.error(
            metadata.at("namespace"),
            format!(
                "metadata.namespace {namespace:?} must be up to {NAMESPACE_MAX} characters of a-z, 0-9 and \"-\", in segments separated by \"/\" (like \"team\" or \"org/team\")"
            ),
        );
    }
    let version = metadata.string("version", true, report);
    if let Some(version) = &version
        && let Err(error) = semver::Version::parse(version)
    {
        report.error(
            metadata.at("version"),
            format!("metadata.version {version:?} is not a SemVer 2.0 version like 1.0.0: {error}"),
        );
    }
    let description = metadata.string("description", true, report);
    if description.as_deref().is_some_and(|d| d.trim().is_empty()) {
        report.error(
            metadata.at("description"),
            "metadata.description must not be empty",
        );
    }
    let display_name = metadata.string("display-name", false, report);
    if let Some(display_name) = &display_name {
        let length = display_name.chars().count();
        if length == 0 || length > DISPLAY_NAME_MAX {
            report.error(
                metadata.at("display-name"),
                format!("metadata.display-name must be 1 to {DISPLAY_NAME_MAX} characters"),
            );
        }
    }
    let tags = metadata
        .list("tags", report)
        .into_iter()
        .filter_map(|(path, at, node)| match node {
            Node::Scalar(tag) => Some(tag.as_str().to_owned()),
            other => {
                report.error(at, format!("{path} must be a string, not {}", kind(other)));
                None
            }
        })
        .collect();
    let authors = metadata
        .list("authors", report)
        .into_iter()
        .filter_map(|(path, at, node)| {
            let author = Fields::check_node(node, &path, at, &["name", "email"], report)?;
            let name = author.string("name", true, report);
            if name.as_deref().is_some_and(str::is_empty) {
                report.error(author.at("name"), format!("{path}.name must not be empty"));
            }
            Some(CardAuthor {
                name: name.unwrap_or_default(),
                email: author.string("email", false, report),
            })
        })
        .collect();
    CardMetadata {
        name: name.unwrap_or_default(),
        display_name,
        namespace: namespace.unwrap_or_default(),
        version: version.unwrap_or_default(),
        description: description.unwrap_or_default(),
        license: metadata.string("license", false, report),
        compatibility: metadata.string("compatibility", false, report),
        tags,
        authors,
        allowed_tools: metadata.string("allowed-tools", false, report),
    }
}

fn read_spec(spec: &Fields<'_>, report: &mut Report) -> CardSpec {
    let prompt = spec.string("prompt", false, report);
    let examples = spec
        .list("examples", report)
        .into_iter()
        .filter_map(|(path, at, node)| {
            let example = Fields::check_node(node, &path, at, &["input", "output"], report)?;
            Some(CardExample {
                input: example.string("input", false, report),
                output: example.string("output", false, report),
            })
        })
        .collect();
    let dependencies = spec
        .list("dependencies", report)
        .into_iter()
        .filter_map(|(path, at, node)| {
            let dependency = Fields::check_node(node, &path, at, &["name", "version"], report)?;
            Some(CardDependency {
                name: dependency.string("name", true, report).unwrap_or_default(),
                version: dependency
                    .string("version", true, report)
                    .unwrap_or_default(),
            })
        })
        .collect();
    CardSpec {
        prompt,
        examples,
        dependencies,
    }
}

/// skillctl's pattern: `^[a-z0-9]+(-[a-z0-9]+)*(/[a-z0-9]+(-[a-z0-9]+)*)*$`, up to 128 characters.
fn namespace_is_valid(namespace: &str) -> bool {
    namespace.len() <= NAMESPACE_MAX
        && namespace.split('/').all(|segment| {
            !segment.is_empty()
                && segment
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !segment.starts_with('-')
                && !segment.ends_with('-')
                && !segment.contains("--")
        })
}

/// A mapping being read: its dotted path (for messages) and where it is (for missing fields).
struct Fields<'a> {
    map: &'a MarkedMappingNode,
    path: String,
    at: Position,
}

impl<'a> Fields<'a> {
    /// Flags every key of `map` not in `allowed`.
    fn check(
        map: &'a MarkedMappingNode,
        path: &str,
        at: Position,
        allowed: &[&str],
        report: &mut Report,
    ) -> Self {
        let fields = Fields {
            map,
            path: path.to_owned(),
            at,
        };
        for key in map.keys() {
            if !allowed.contains(&key.as_str()) {
                report.error(
                    key_position(key),
                    format!(
                        "unknown field {:?}; expected one of: {}",
                        fields.path_of(key.as_str()),
                        allowed.join(", ")
                    ),
                );
            }
        }
        fields
    }

    /// Like [`Fields::check`], for a node that must be a mapping.
    fn check_node(
        node: &'a Node,
        path: &str,
        at: Position,
        allowed: &[&str],
        report: &mut Report,
    ) -> Option<Self> {
        match node {
            Node::Mapping(map) => Some(Fields::check(map, path, at, allowed, report)),
            other => {
                report.error(at, format!("{path} must be a mapping, not {}", kind(other)));
                None
            }
        }
    }

    fn path_of(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    fn get(&self, key: &str) -> Option<&'a Node> {
        self.map.get_node(key)
    }

    /// Where `key` is written.
    fn at(&self, key: &str) -> Position {
        self.map
            .keys()
            .find(|candidate| candidate.as_str() == key)
            .and_then(key_position)
    }

    fn missing(&self, key: &str, report: &mut Report) {
        report.error(
            self.at,
            format!("missing required field {:?}", self.path_of(key)),
        );
    }

    fn string(&self, key: &str, required: bool, report: &mut Report) -> Option<String> {
        match self.get(key) {
            None => {
                if required {
                    self.missing(key, report);
                }
                None
            }
            Some(Node::Scalar(value)) => Some(value.as_str().to_owned()),
            Some(other) => {
                report.error(
                    self.at(key),
                    format!(
                        "{} must be a string, not {}",
                        self.path_of(key),
                        kind(other)
                    ),
                );
                None
            }
        }
    }

    fn mapping(
        &self,
        key: &str,
        required: bool,
        allowed: &[&str],
        report: &mut Report,
    ) -> Option<Fields<'a>> {
        let Some(node) = self.get(key) else {
            if required {
                self.missing(key, report);
            }
            return None;
        };
        Fields::check_node(node, &self.path_of(key), self.at(key), allowed, report)
    }

    /// The items of an optional list, each with its path (`metadata.tags[0]`) and position.
    fn list(&self, key: &str, report: &mut Report) -> Vec<(String, Position, &'a Node)> {
        let path = self.path_of(key);
        match self.get(key) {
            None => Vec::new(),
            Some(Node::Sequence(items)) => items
                .iter()
                .enumerate()
                .map(|(index, item)| (format!("{path}[{index}]"), start_of(item), item))
                .collect(),
            Some(other) => {
                report.error(
                    self.at(key),
                    format!("{path} must be a list, not {}", kind(other)),
                );
                Vec::new()
            }
        }
    }
}

/// Where a node starts. A mapping's own span starts at its first `:`, so use its first key.
fn start_of(node: &Node) -> Position {
    match node {
        Node::Mapping(map) => map.keys().next().and_then(key_position),
        Node::Scalar(_) | Node::Sequence(_) => crate::frontmatter::position(node),
    }
}

/// A small YAML writer: block style, two-space indent, strings quoted whenever plain style
/// could be read as something else.
#[derive(Default)]
struct Yaml {
    text: String,
}

impl Yaml {
    fn line(&mut self, indent: usize, content: &str) {
        let _ = writeln!(self.text, "{:indent$}{content}", "");
    }

    fn key(&mut self, indent: usize, key: &str) {
        self.line(indent, &format!("{key}:"));
    }

    fn empty_mapping(&mut self, indent: usize, key: &str) {
        self.line(indent, &format!("{key}: {{}}"));
    }

    fn field(&mut self, indent: usize, key: &str, value: &str) {
        self.line(indent, &format!("{key}: {}", quote(value)));
    }

    fn optional(&mut self, indent: usize, key: &str, value: Option<&str>) {
        if let Some(value) = value {
            self.field(indent, key, value);
        }
    }

    /// The first field of a mapping that is a list item: `- key: value`.
    fn list_field(&mut self, indent: usize, key: &str, value: &str) {
        self.line(indent, &format!("- {key}: {}", quote(value)));
    }

    fn item(&mut self, indent: usize, value: &str) {
        self.line(indent, &format!("- {}", quote(value)));
    }
}

/// `value` as a YAML scalar: plain when that is unambiguous, else double-quoted with escapes.
fn quote(value: &str) -> String {
    let plain = value.starts_with(|c: char| c.is_ascii_alphabetic())
        && !value.ends_with(' ')
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || " ._/@+-(),".contains(c))
        && !["true", "false", "yes", "no", "on", "off", "null", "y", "n"]
            .contains(&value.to_ascii_lowercase().as_str());
    if plain {
        return value.to_owned();
    }
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('"');
    for c in value.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            '\t' => quoted.push_str("\\t"),
            '\r' => quoted.push_str("\\r"),
            // Other control characters, and characters YAML treats as line breaks or BOM.
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}') => {
                let _ = write!(quoted, "\\u{:04x}", u32::from(c));
            }
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn frontmatter() -> Frontmatter {
        Frontmatter {
            name: "pdf-tools".to_owned(),
            description: "Extracts text: \"quoted\", back\\slash,\nnew line, café, tab\t, true"
                .to_owned(),
            license: Some("Apache-2.0".to_owned()),
            compatibility: Some("Requires python3 and poppler-utils".to_owned()),
            metadata: [("author".to_owned(), "Ana Pérez".to_owned())].into(),
            allowed_tools: Some("Bash(pdftotext:*) Read".to_owned()),
        }
    }

    #[test]
    fn generated_card_round_trips() {
        let version = semver::Version::parse("1.2.3-rc.1+build.5").unwrap();
        let card = SkillCard::from_frontmatter(&frontmatter(), &version, "org/team");
        assert_eq!(card.metadata.version, "1.2.3-rc.1+build.5");
        assert_eq!(card.metadata.authors[0].name, "Ana Pérez");
        let yaml = card.to_yaml();
        let parsed = SkillCard::parse(&yaml, Path::new("skill.yaml"))
            .unwrap_or_else(|errors| panic!("{yaml}\n{errors:#?}"));
        assert_eq!(parsed, card, "{yaml}");
    }

    #[test]
    fn full_card_round_trips() {
        let card = SkillCard {
            api_version: SKILL_CARD_API_VERSION.to_owned(),
            kind: SKILL_CARD_KIND.to_owned(),
            metadata: CardMetadata {
                name: "pdf-tools".to_owned(),
                display_name: Some("PDF: tools".to_owned()),
                namespace: "team".to_owned(),
                version: "0.1.0".to_owned(),
                description: "  leading spaces and # hash".to_owned(),
                license: Some(String::new()),
                compatibility: Some("- dash first".to_owned()),
                tags: vec!["pdf".to_owned(), "yes".to_owned(), "1.5".to_owned()],
                authors: vec![
                    CardAuthor {
                        name: "A".to_owned(),
                        email: Some("a@example.com".to_owned()),
                    },
                    CardAuthor {
                        name: "B".to_owned(),
                        email: None,
                    },
                ],
                allowed_tools: Some("Read".to_owned()),
            },
            provenance: Some(CardProvenance::default()),
            spec: Some(CardSpec {
                prompt: None,
                examples: vec![
                    CardExample::default(),
                    CardExample {
                        input: None,
                        output: Some("out\u{2028}put\u{1}".to_owned()),
                    },
                    CardExample {
                        input: Some("{in}".to_owned()),
                        output: Some("[out]".to_owned()),
                    },
                ],
                dependencies: vec![CardDependency {
                    name: "other".to_owned(),
                    version: "^1.0".to_owned(),
                }],
            }),
        };
        let yaml = card.to_yaml();
        let parsed = SkillCard::parse(&yaml, Path::new("skill.yaml"))
            .unwrap_or_else(|errors| panic!("{yaml}\n{errors:#?}"));
        assert_eq!(parsed, card, "{yaml}");
    }

    #[test]
    fn to_yaml_writes_block_style_and_quotes_only_when_needed() {
        let frontmatter = Frontmatter {
            name: "pdf-tools".to_owned(),
            description: "Reads PDFs: text and tables.".to_owned(),
            license: None,
            compatibility: None,
            metadata: BTreeMap::new(),
            allowed_tools: None,
        };
        let card =
            SkillCard::from_frontmatter(&frontmatter, &semver::Version::new(1, 0, 0), "team");
        assert_eq!(
            card.to_yaml(),
            "apiVersion: skillimage.io/v1alpha1
kind: SkillCard
metadata:
  name: pdf-tools
  namespace: team
  version: \"1.0.0\"
  description: \"Reads PDFs: text and tables.\"
spec:
  prompt: SKILL.md
"
        );
    }

    #[test]
    fn json_form_uses_the_yaml_field_names() {
        let version = semver::Version::new(1, 0, 0);
        let card = SkillCard::from_frontmatter(&frontmatter(), &version, "team");
        let json = serde_json::to_value(&card).unwrap();
        assert_eq!(json["apiVersion"], SKILL_CARD_API_VERSION);
        assert_eq!(json["metadata"]["allowed-tools"], "Bash(pdftotext:*) Read");
        let back: SkillCard = serde_json::from_value(json).unwrap();
        assert_eq!(back, card);
    }
}
