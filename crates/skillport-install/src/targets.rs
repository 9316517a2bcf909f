//! Where each agent looks for skills: the folders `--target` names.
//!
//! Each row is taken from that agent's own documentation (checked 2026-12):
//! - `agents`: the cross-client convention, <https://agentskills.io/client-implementation/adding-skills-support>
//!   (`<project>/.agents/skills`, `~/.agents/skills`), which Codex, Cursor, Copilot, Gemini CLI,
//!   OpenCode and Windsurf also read;
//! - `claude`: Claude Code, <https://code.claude.com/docs/en/skills>;
//! - `cursor`: <https://cursor.com/docs/skills>;
//! - `copilot`: <https://docs.github.com/en/copilot/concepts/agents/about-agent-skills> and
//!   <https://code.visualstudio.com/docs/agents/reference/agent-skills-reference>;
//! - `codex`: <https://developers.openai.com/codex/skills> (current docs: `.agents/skills`;
//!   older releases read `.codex/skills`);
//! - `gemini`: Gemini CLI, <https://geminicli.com/docs/cli/using-agent-skills>;
//! - `opencode`: <https://opencode.ai/docs/skills>;
//! - `windsurf`: <https://docs.windsurf.com/windsurf/cascade/skills>.

use std::fmt;
use std::path::{Path, PathBuf};

/// An agent's skills folders: project scope (relative to the project) and user scope
/// (relative to the home folder).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Agent {
    pub name: &'static str,
    pub project: &'static str,
    pub global: &'static str,
}

/// The agents `--target` knows, by name.
pub const AGENTS: &[Agent] = &[
    Agent {
        name: "agents",
        project: ".agents/skills",
        global: ".agents/skills",
    },
    Agent {
        name: "claude",
        project: ".claude/skills",
        global: ".claude/skills",
    },
    Agent {
        name: "cursor",
        project: ".cursor/skills",
        global: ".cursor/skills",
    },
    Agent {
        name: "copilot",
        project: ".github/skills",
        global: ".copilot/skills",
    },
    Agent {
        name: "codex",
        project: ".agents/skills",
        global: ".agents/skills",
    },
    Agent {
        name: "gemini",
        project: ".gemini/skills",
        global: ".gemini/skills",
    },
    Agent {
        name: "opencode",
        project: ".opencode/skills",
        global: ".config/opencode/skills",
    },
    Agent {
        name: "windsurf",
        project: ".windsurf/skills",
        global: ".codeium/windsurf/skills",
    },
];

/// The default target: the cross-agent folder.
pub const DEFAULT_TARGET: &str = "agents";

/// A `--target`: an agent's name, or a folder of skills.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    Agent(&'static Agent),
    /// Skills go into `<dir>/<name>`; relative to the project (or the home folder with
    /// `--global`).
    Dir(String),
}

impl PartialOrd for Agent {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Agent {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.name.cmp(other.name)
    }
}

impl Target {
    /// An agent's name, else a folder (`./skills`, `/opt/skills`, `tools/skills`).
    pub fn parse(text: &str) -> Result<Target, String> {
        if let Some(agent) = AGENTS.iter().find(|agent| agent.name == text) {
            return Ok(Target::Agent(agent));
        }
        if text.contains('/') || text.starts_with('.') {
            return normalize(text).map(Target::Dir);
        }
        let names: Vec<&str> = AGENTS.iter().map(|agent| agent.name).collect();
        Err(format!(
            "unknown target {text:?}: one of {}, or a folder (write ./{text} for a folder here)",
            names.join(", ")
        ))
    }

    /// The skills folder, as recorded: relative to the project, or `~/…` in user scope.
    pub fn folder(&self, global: bool) -> String {
        match (self, global) {
            (Target::Agent(agent), false) => agent.project.to_owned(),
            (Target::Agent(agent), true) => format!("~/{}", agent.global),
            (Target::Dir(dir), false) => dir.clone(),
            (Target::Dir(dir), true) if dir.starts_with('/') || dir.starts_with("~/") => {
                dir.clone()
            }
            (Target::Dir(dir), true) => format!("~/{dir}"),
        }
    }
}

/// A folder target as recorded: no `.` or empty parts, a trailing `/` dropped; `~/` and `/`
/// kept in front. A `..` part is refused: a target must not climb out of where it is written.
fn normalize(text: &str) -> Result<String, String> {
    let (prefix, rest) = if let Some(rest) = text.strip_prefix("~/") {
        ("~/", rest)
    } else if let Some(rest) = text.strip_prefix('/') {
        ("/", rest)
    } else {
        ("", text)
    };
    let mut parts = Vec::new();
    for part in rest.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                return Err(format!(
                    "target {text:?} has a `..` part; name the folder without it"
                ));
            }
            part => parts.push(part),
        }
    }
    if parts.is_empty() {
        return Err(format!("target {text:?} names no folder below it"));
    }
    Ok(format!("{prefix}{}", parts.join("/")))
}

/// Whether `recorded` (a lock's `installed` entry) is a folder named `name` written as
/// `Target::folder` writes them: no `.`, `..` or empty parts.
pub fn is_recorded_folder(recorded: &str, name: &str) -> bool {
    let rest = recorded
        .strip_prefix("~/")
        .or_else(|| recorded.strip_prefix('/'))
        .unwrap_or(recorded);
    let parts: Vec<&str> = rest.split('/').collect();
    parts.len() >= 2
        && parts.last() == Some(&name)
        && parts.iter().all(|part| !matches!(*part, "" | "." | ".."))
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Agent(agent) => f.write_str(agent.name),
            Target::Dir(dir) => f.write_str(dir),
        }
    }
}

/// A recorded folder (`.claude/skills/pdf`, `~/.claude/skills/pdf`, `/abs/pdf`) on this
/// machine: `~/` is the home folder, a relative path is under the project.
pub fn on_disk(recorded: &str, project: &Path, home: &Path) -> PathBuf {
    if let Some(rest) = recorded.strip_prefix("~/") {
        home.join(rest)
    } else {
        project.join(recorded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_agents_or_folders() {
        assert_eq!(
            Target::parse("claude").unwrap().folder(false),
            ".claude/skills"
        );
        assert_eq!(
            Target::parse("opencode").unwrap().folder(true),
            "~/.config/opencode/skills"
        );
        assert_eq!(
            Target::parse("./tools/skills/").unwrap().folder(false),
            "tools/skills"
        );
        assert_eq!(
            Target::parse("tools//./skills").unwrap().folder(false),
            "tools/skills"
        );
        assert!(Target::parse("../elsewhere").is_err());
        assert!(Target::parse("tools/../../x").is_err());
        assert!(Target::parse("./").is_err());
        assert!(is_recorded_folder("~/.claude/skills/x", "x"));
        assert!(is_recorded_folder("/opt/skills/x", "x"));
        assert!(!is_recorded_folder("docs", "x"));
        assert!(!is_recorded_folder("skills/../x", "x"));
        assert!(!is_recorded_folder("x", "x"));
        assert_eq!(Target::parse("./tools").unwrap().folder(true), "~/tools");
        let unknown = Target::parse("claud").unwrap_err();
        assert!(unknown.contains("write ./claud"), "{unknown}");
    }

    #[test]
    fn recorded_folders_resolve_under_the_project_or_home() {
        let project = Path::new("/p");
        let home = Path::new("/h");
        assert_eq!(
            on_disk(".claude/skills/x", project, home),
            Path::new("/p/.claude/skills/x")
        );
        assert_eq!(
            on_disk("~/.claude/skills/x", project, home),
            Path::new("/h/.claude/skills/x")
        );
        assert_eq!(on_disk("/abs/x", project, home), Path::new("/abs/x"));
    }
}
