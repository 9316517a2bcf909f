// SKILL.md: splitting off the YAML frontmatter, reading its fields and checking them against
// the agentskills.io specification. Everything here is pure: text in, values and diagnostics out.
//
// Where we are stricter than the reference validator (skills-ref), on purpose:
// - names are ASCII only (`a-z`, `0-9`, `-`), as the specification text says; skills-ref
//   accepts any Unicode lowercase letter or digit;
// - `metadata` values must be strings; skills-ref accepts nested mappings and lists;
// - `compatibility`, when present, must not be empty (the specification says 1-500 characters);
// - `allowed-tools` must be a string (the specification's space-separated list), not a YAML list.
// tests/fixtures/validate/DIFFERENCES.md lists every case where the two disagree.

use std::collections::BTreeMap;
use std::path::Path;

use marked_yaml::types::{MarkedMappingNode, MarkedScalarNode};
use marked_yaml::{LoadError as YamlError, LoaderOptions, Node};
use serde::Serialize;

use crate::diagnostic::{Diagnostic, Mode, Position, Report};

const NAME_MAX: usize = 64;
const DESCRIPTION_MAX: usize = 1024;
const COMPATIBILITY_MAX: usize = 500;
const FIELDS: &[&str] = &[
    "name",
    "description",
    "license",
    "compatibility",
    "metadata",
    "allowed-tools",
];

/// The fields of a SKILL.md frontmatter, as the agentskills.io specification defines them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Frontmatter {
    /// The skill name: 1-64 of `a-z`, `0-9`, `-`; equals the folder name.
    pub name: String,
    /// What the skill does and when to use it (1-1024 characters), trimmed.
    pub description: String,
    /// The license name or a reference to a bundled license file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    /// Environment requirements (1-500 characters).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compatibility: Option<String>,
    /// Extra string properties for clients.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// Space-separated tools the skill may use (experimental in the specification).
    #[serde(rename = "allowed-tools", skip_serializing_if = "Option::is_none")]
    pub allowed_tools: Option<String>,
}

/// Parses and validates the text of a SKILL.md.
///
/// Returns the frontmatter (only when there is no error), the body (the text after the closing
/// `---` line, or the whole text when there is no frontmatter) and every diagnostic, sorted by
/// line. `folder_name`, when given, is compared with `name`.
pub fn parse_skill_md(
    text: &str,
    file: &Path,
    folder_name: Option<&str>,
    mode: Mode,
) -> (Option<Frontmatter>, String, Vec<Diagnostic>) {
    let (frontmatter, body, report) = read_skill_md(text, file, folder_name, mode);
    let frontmatter = frontmatter.filter(|_| !report.has_errors());
    (frontmatter, body, report.finish())
}

/// Checks a skill name against the specification's rules (not against a folder name).
/// The error is the first problem found.
pub fn validate_name(name: &str) -> Result<(), String> {
    match name_problems("name", name).into_iter().next() {
        Some(problem) => Err(problem),
        None => Ok(()),
    }
}

/// A SKILL.md to start from, for `skillport init <name>`: valid in strict mode as written, with
/// a placeholder description that says what to write.
/// How the description [`scaffold_skill_md`] writes begins.
const PLACEHOLDER_DESCRIPTION: &str = "Replace this with what the skill does and when to use it";

pub fn scaffold_skill_md(name: &str) -> String {
    let title = name
        .split('-')
        .filter(|word| !word.is_empty())
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_uppercase().chain(chars).collect::<String>()
            })
        })
        .collect::<Vec<_>>()
        .join(" ");
    format!(
        "---
name: {name}
description: >-
  Replace this with what the skill does and when to use it, in up to 1024
  characters. Name the tasks, file types or keywords that should make an agent
  pick this skill.
---

# {title}

## When to use this skill

Describe the requests or situations this skill is for.

## Instructions

Step-by-step instructions for the agent. Put long reference material in
`references/` and scripts in `scripts/`, and link to them from here.

## Examples

Show an example input and the expected result.
"
    )
}

/// Like [`parse_skill_md`], but returns the frontmatter whenever `name` and `description` could
/// be read, even when other rules failed: `load` checks skill.yaml against it either way.
pub(crate) fn read_skill_md(
    text: &str,
    file: &Path,
    folder_name: Option<&str>,
    mode: Mode,
) -> (Option<Frontmatter>, String, Report) {
    let mut report = Report::new(file.to_owned(), mode, 0);
    let text = match text.strip_prefix('\u{feff}') {
        Some(rest) => {
            // Editors on Windows add one; skills-ref and other clients check that the file
            // starts with "---" and would reject it.
            report.rule(
                Some((1, 1)),
                "SKILL.md starts with a byte-order mark; save it as UTF-8 without one",
            );
            rest
        }
        None => text,
    };
    let Some((yaml, body)) = split_frontmatter(text, &mut report) else {
        return (None, text.to_owned(), report);
    };
    // The YAML starts on line 2, after the opening `---`.
    report.line_offset = 1;
    let Some(map) = parse_yaml_mapping(yaml, "frontmatter", &mut report) else {
        return (None, body.to_owned(), report);
    };
    let frontmatter = read_fields(&map, folder_name, &mut report);
    (frontmatter, body.to_owned(), report)
}

/// Splits `---\n<yaml>---\n<body>`; the delimiter lines may end in spaces and `\r`.
fn split_frontmatter<'a>(text: &'a str, report: &mut Report) -> Option<(&'a str, &'a str)> {
    let mut lines = text.split_inclusive('\n');
    let is_delimiter = |line: &str| line.trim_end() == "---";
    let Some(first) = lines.next().filter(|line| is_delimiter(line)) else {
        report.error(
            Some((1, 1)),
            "SKILL.md must start with a \"---\" line that opens the YAML frontmatter",
        );
        return None;
    };
    let yaml_start = first.len();
    let mut offset = yaml_start;
    for line in lines {
        if is_delimiter(line) {
            return Some((&text[yaml_start..offset], &text[offset + line.len()..]));
        }
        offset += line.len();
    }
    report.error(
        Some((1, 1)),
        "frontmatter is not closed; add a \"---\" line after it",
    );
    None
}

/// Parses YAML whose top level must be a mapping; reports why when it cannot.
/// `what` names the document in messages ("frontmatter", "skill.yaml").
pub(crate) fn parse_yaml_mapping(
    yaml: &str,
    what: &str,
    report: &mut Report,
) -> Option<MarkedMappingNode> {
    let options = LoaderOptions::default().error_on_duplicate_keys(true);
    let error = match marked_yaml::parse_yaml_with_options(0, yaml, options) {
        Ok(Node::Mapping(map)) => return Some(map),
        Ok(_) => unreachable!("marked-yaml returns a mapping at the top level"),
        Err(error) => error,
    };
    let (at, message) = match &error {
        YamlError::TopLevelMustBeMapping(mark) | YamlError::TopLevelMustBeSequence(mark) => (
            mark,
            format!("{what} must be a YAML mapping of fields (key: value)"),
        ),
        YamlError::UnexpectedAnchor(mark) => (mark, "YAML anchors are not supported".to_owned()),
        YamlError::UnexpectedTag(mark) => (mark, "YAML tags are not supported".to_owned()),
        YamlError::MappingKeyMustBeScalar(mark) => {
            (mark, "mapping keys must be plain strings".to_owned())
        }
        YamlError::ScanError(mark, scan)
            if scan.info().contains("mapping values are not allowed") =>
        {
            (
                mark,
                format!(
                    "invalid YAML: {}; a value that holds \": \" must be quoted, e.g. \
                 description: \"Use when: …\"",
                    scan.info()
                ),
            )
        }
        YamlError::ScanError(mark, scan) => (mark, format!("invalid YAML: {}", scan.info())),
        YamlError::DuplicateKey(keys) => {
            let first = key_position(&keys.prev_key).map_or(0, |(line, _)| line);
            let key = &keys.key;
            report.error(
                key_position(key),
                format!(
                    "field \"{}\" appears twice (first on line {}); keep one",
                    key.as_str(),
                    first + report.line_offset
                ),
            );
            return None;
        }
    };
    report.error(Some((at.line(), at.column())), message);
    None
}

/// Where a node starts, 1-based.
pub(crate) fn position(node: &Node) -> Position {
    node.span().start().map(|mark| (mark.line(), mark.column()))
}

/// Where a mapping key starts, 1-based.
pub(crate) fn key_position(key: &MarkedScalarNode) -> Position {
    key.span().start().map(|mark| (mark.line(), mark.column()))
}

/// "a string", "a mapping" or "a list", for messages.
pub(crate) fn kind(node: &Node) -> &'static str {
    match node {
        Node::Scalar(_) => "a string",
        Node::Mapping(_) => "a mapping",
        Node::Sequence(_) => "a list",
    }
}

/// Whether `name` keeps the naming rules of a skill's `name` (lowercase a-z, 0-9 and single
/// `-` inside, at most 64 characters).
pub fn is_valid_name(name: &str) -> bool {
    name_problems("name", name).is_empty()
}

/// Every way `name` breaks the naming rules; `field` names it in messages.
pub(crate) fn name_problems(field: &str, name: &str) -> Vec<String> {
    if name.is_empty() {
        return vec![format!("{field} must not be empty")];
    }
    let mut problems = Vec::new();
    let length = name.chars().count();
    if length > NAME_MAX {
        problems.push(format!(
            "{field} is {length} characters; the limit is {NAME_MAX}"
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        problems.push(format!(
            "{field} {name:?} may only contain lowercase a-z, 0-9 and \"-\""
        ));
    }
    if name.starts_with('-') || name.ends_with('-') {
        problems.push(format!("{field} {name:?} must not start or end with \"-\""));
    }
    if name.contains("--") {
        problems.push(format!("{field} {name:?} must not contain \"--\""));
    }
    problems
}

fn read_fields(
    map: &MarkedMappingNode,
    folder_name: Option<&str>,
    report: &mut Report,
) -> Option<Frontmatter> {
    for key in map.keys() {
        if !FIELDS.contains(&key.as_str()) {
            report.rule(
                key_position(key),
                format!(
                    "unknown field {:?}; move it under metadata or remove it",
                    key.as_str()
                ),
            );
        }
    }
    let name = read_name(map, folder_name, report);
    let description = read_description(map, report);
    let license = optional_string(map, "license", report);
    let compatibility = read_compatibility(map, report);
    let allowed_tools = read_allowed_tools(map, report);
    let metadata = read_metadata(map, report);
    Some(Frontmatter {
        name: name?,
        description: description?,
        license,
        compatibility,
        metadata,
        allowed_tools,
    })
}

/// The key and value of `field`, when present.
fn entry<'a>(map: &'a MarkedMappingNode, field: &str) -> Option<(&'a MarkedScalarNode, &'a Node)> {
    map.iter().find(|(key, _)| key.as_str() == field)
}

/// A required field that must be a non-empty string: missing, empty or not a string is an error
/// in every mode, since a skill cannot be listed or chosen without it.
fn required_string<'a>(
    map: &'a MarkedMappingNode,
    field: &str,
    hint: &str,
    report: &mut Report,
) -> Option<(&'a str, Position)> {
    let Some((key, value)) = entry(map, field) else {
        report.error(None, format!("missing required field \"{field}\"{hint}"));
        return None;
    };
    let at = key_position(key);
    let Node::Scalar(value) = value else {
        report.error(at, format!("{field} must be a string, not {}", kind(value)));
        return None;
    };
    if value.as_str().trim().is_empty() {
        report.error(at, format!("{field} must not be empty{hint}"));
        return None;
    }
    Some((value.as_str(), at))
}

fn read_name(
    map: &MarkedMappingNode,
    folder_name: Option<&str>,
    report: &mut Report,
) -> Option<String> {
    let (name, at) = required_string(map, "name", "", report)?;
    for problem in name_problems("name", name) {
        report.rule(at, problem);
    }
    if let Some(folder) = folder_name
        && folder != name
    {
        report.rule(
            at,
            format!("name {name:?} does not match the folder name {folder:?}; rename one of them"),
        );
    }
    Some(name.to_owned())
}

fn read_description(map: &MarkedMappingNode, report: &mut Report) -> Option<String> {
    let hint = "; say what the skill does and when to use it";
    let (description, at) = required_string(map, "description", hint, report)?;
    // Trimmed, so a folded block scalar's final newline does not count against the limit.
    let description = description.trim();
    if description.starts_with(PLACEHOLDER_DESCRIPTION) {
        report.warning(
            at,
            "description is still the placeholder `skillport init` wrote; say what the skill \
             does and when to use it, or agents will not pick it",
        );
    }
    let length = description.chars().count();
    if length > DESCRIPTION_MAX {
        report.rule(
            at,
            format!("description is {length} characters; the limit is {DESCRIPTION_MAX}"),
        );
    }
    Some(description.to_owned())
}

/// An optional string field; an empty value (`license:`) counts as absent.
fn optional_string(map: &MarkedMappingNode, field: &str, report: &mut Report) -> Option<String> {
    let (key, value) = entry(map, field)?;
    match value {
        Node::Scalar(value) if value.as_str().is_empty() => None,
        Node::Scalar(value) => Some(value.as_str().to_owned()),
        other => {
            report.rule(
                key_position(key),
                format!("{field} must be a string, not {}", kind(other)),
            );
            None
        }
    }
}

fn read_compatibility(map: &MarkedMappingNode, report: &mut Report) -> Option<String> {
    let (key, value) = entry(map, "compatibility")?;
    let at = key_position(key);
    let Node::Scalar(value) = value else {
        report.rule(
            at,
            format!("compatibility must be a string, not {}", kind(value)),
        );
        return None;
    };
    let value = value.as_str();
    let length = value.chars().count();
    if value.trim().is_empty() {
        report.rule(
            at,
            "compatibility must not be empty; remove it or say what the skill needs",
        );
        return None;
    }
    if length > COMPATIBILITY_MAX {
        report.rule(
            at,
            format!("compatibility is {length} characters; the limit is {COMPATIBILITY_MAX}"),
        );
    }
    Some(value.to_owned())
}

fn read_allowed_tools(map: &MarkedMappingNode, report: &mut Report) -> Option<String> {
    let (key, value) = entry(map, "allowed-tools")?;
    match value {
        Node::Sequence(items) => {
            report.rule(
                key_position(key),
                "allowed-tools must be one space-separated string (like \"Bash(git:*) Read\"), not a list",
            );
            // Lenient: a list of strings still says which tools; keep them.
            let tools: Vec<&str> = items
                .iter()
                .filter_map(|item| item.as_scalar().map(MarkedScalarNode::as_str))
                .collect();
            (!tools.is_empty()).then(|| tools.join(" "))
        }
        _ => optional_string(map, "allowed-tools", report),
    }
}

fn read_metadata(map: &MarkedMappingNode, report: &mut Report) -> BTreeMap<String, String> {
    let mut metadata = BTreeMap::new();
    let Some((key, value)) = entry(map, "metadata") else {
        return metadata;
    };
    let entries = match value {
        Node::Mapping(entries) => entries,
        // `metadata:` with nothing after it.
        Node::Scalar(value) if value.as_str().is_empty() => return metadata,
        other => {
            report.rule(
                key_position(key),
                format!(
                    "metadata must be a mapping of string keys to string values, not {}",
                    kind(other)
                ),
            );
            return metadata;
        }
    };
    for (key, value) in entries.iter() {
        match value {
            Node::Scalar(value) => {
                metadata.insert(key.as_str().to_owned(), value.as_str().to_owned());
            }
            other => report.rule(
                key_position(key),
                format!(
                    "metadata.{} must be a string, not {}; quote it or flatten it",
                    key.as_str(),
                    kind(other)
                ),
            ),
        }
    }
    metadata
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostic::Severity;

    #[test]
    fn scaffold_parses_clean_in_strict_mode_with_one_warning_for_its_placeholder() {
        for name in ["pdf-tools", "a", "x1-y2-z3"] {
            let text = scaffold_skill_md(name);
            let (frontmatter, body, diagnostics) =
                parse_skill_md(&text, Path::new("SKILL.md"), Some(name), Mode::Strict);
            let messages: Vec<(Severity, &str)> = diagnostics
                .iter()
                .map(|d| (d.severity, d.message.as_str()))
                .collect();
            assert_eq!(messages.len(), 1, "{text}");
            assert_eq!(messages[0].0, Severity::Warning, "{text}");
            assert!(messages[0].1.contains("still the placeholder"), "{text}");
            let frontmatter = frontmatter.unwrap();
            assert_eq!(frontmatter.name, name);
            assert!(frontmatter.description.starts_with("Replace this with"));
            assert!(body.contains("## Instructions"), "{body}");
        }
        assert!(scaffold_skill_md("pdf-tools").contains("\n# Pdf Tools\n"));
    }

    #[test]
    fn validate_name_applies_each_rule() {
        assert_eq!(validate_name("pdf-tools"), Ok(()));
        assert_eq!(validate_name(&"a".repeat(64)), Ok(()));
        let cases = [
            ("", "name must not be empty"),
            (&"a".repeat(65), "name is 65 characters; the limit is 64"),
            (
                "My_Skill",
                "name \"My_Skill\" may only contain lowercase a-z, 0-9 and \"-\"",
            ),
            (
                "café",
                "name \"café\" may only contain lowercase a-z, 0-9 and \"-\"",
            ),
            ("-pdf", "name \"-pdf\" must not start or end with \"-\""),
            ("pdf-", "name \"pdf-\" must not start or end with \"-\""),
            ("pdf--tools", "name \"pdf--tools\" must not contain \"--\""),
        ];
        for (name, message) in cases {
            assert_eq!(validate_name(name), Err(message.to_owned()), "{name}");
        }
    }

    #[test]
    fn errors_withhold_the_frontmatter_and_keep_the_body() {
        let text = "---\nname: Bad\ndescription: d\n---\nbody\n";
        let (frontmatter, body, diagnostics) =
            parse_skill_md(text, Path::new("x/SKILL.md"), None, Mode::Strict);
        assert_eq!(frontmatter, None);
        assert_eq!(body, "body\n");
        assert_eq!(diagnostics.len(), 1);
        assert_eq!(
            diagnostics[0].to_string(),
            "x/SKILL.md:2:1: error: name \"Bad\" may only contain lowercase a-z, 0-9 and \"-\""
        );

        let (frontmatter, _, diagnostics) =
            parse_skill_md(text, Path::new("x/SKILL.md"), None, Mode::Lenient);
        assert_eq!(frontmatter.unwrap().name, "Bad");
        assert_eq!(diagnostics[0].severity, Severity::Warning);
    }

    #[test]
    fn delimiters_may_have_trailing_blanks_and_body_may_be_empty() {
        let text = "--- \r\nname: a\r\ndescription: d\r\n---\t";
        let (frontmatter, body, diagnostics) =
            parse_skill_md(text, Path::new("SKILL.md"), Some("a"), Mode::Strict);
        assert_eq!(diagnostics, []);
        assert_eq!(frontmatter.unwrap().description, "d");
        assert_eq!(body, "");
    }
}
