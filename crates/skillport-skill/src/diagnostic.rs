// Diagnostics: one problem found in a skill file, with where it is and how bad it is.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

/// How strictly a skill is validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Every rule of the specification is an error (the default: what we publish must be right).
    #[default]
    Strict,
    /// Rules become warnings, except the few without which a skill cannot be used at all
    /// (the agentskills.io client guidance: load leniently).
    Lenient,
}

/// Whether a diagnostic stops the skill from loading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The skill is invalid.
    Error,
    /// The skill loads, but breaks a rule of the specification.
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// One problem in a skill file, with its position when the file gives one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// The file the problem is in (`<dir>/SKILL.md` or `<dir>/skill.yaml`).
    pub file: PathBuf,
    /// 1-based line in the whole file, when known.
    pub line: Option<usize>,
    /// 1-based column (in characters), when known.
    pub column: Option<usize>,
    /// Error or warning.
    pub severity: Severity,
    /// What is wrong and what to do, short and lowercase.
    pub message: String,
}

impl Diagnostic {
    /// Whether this diagnostic is an error.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        write!(f, ": {}: {}", self.severity, self.message)
    }
}

/// A 1-based (line, column) position in a file.
pub(crate) type Position = Option<(usize, usize)>;

/// Collects diagnostics for one file, turning rule violations into errors or warnings by mode.
pub(crate) struct Report {
    file: PathBuf,
    mode: Mode,
    /// Added to every line: the YAML of SKILL.md starts after the opening `---` line.
    pub(crate) line_offset: usize,
    pub(crate) diagnostics: Vec<Diagnostic>,
}

impl Report {
    pub(crate) fn new(file: PathBuf, mode: Mode, line_offset: usize) -> Self {
        Report {
            file,
            mode,
            line_offset,
            diagnostics: Vec::new(),
        }
    }

    fn push(&mut self, severity: Severity, at: Position, message: String) {
        self.diagnostics.push(Diagnostic {
            file: self.file.clone(),
            line: at.map(|(line, _)| line + self.line_offset),
            column: at.map(|(_, column)| column),
            severity,
            message,
        });
    }

    /// A problem that is an error in every mode.
    pub(crate) fn error(&mut self, at: Position, message: impl Into<String>) {
        self.push(Severity::Error, at, message.into());
    }

    /// A rule of the specification: an error in strict mode, a warning in lenient mode.
    pub(crate) fn rule(&mut self, at: Position, message: impl Into<String>) {
        let severity = match self.mode {
            Mode::Strict => Severity::Error,
            Mode::Lenient => Severity::Warning,
        };
        self.push(severity, at, message.into());
    }

    /// Worth saying, never an error (the skill is valid).
    pub(crate) fn warning(&mut self, at: Position, message: impl Into<String>) {
        self.push(Severity::Warning, at, message.into());
    }

    pub(crate) fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }

    /// The diagnostics sorted by position; file-level ones (no line) first.
    pub(crate) fn finish(mut self) -> Vec<Diagnostic> {
        // A stable sort keeps the order rules were checked in for the same position.
        self.diagnostics.sort_by_key(|d| (d.line, d.column));
        self.diagnostics
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_json() {
        let mut diagnostic = Diagnostic {
            file: PathBuf::from("pdf/SKILL.md"),
            line: Some(3),
            column: Some(7),
            severity: Severity::Warning,
            message: "description is 1025 characters; the limit is 1024".to_owned(),
        };
        assert_eq!(
            diagnostic.to_string(),
            "pdf/SKILL.md:3:7: warning: description is 1025 characters; the limit is 1024"
        );
        assert_eq!(
            serde_json::to_value(&diagnostic).unwrap(),
            serde_json::json!({
                "file": "pdf/SKILL.md",
                "line": 3,
                "column": 7,
                "severity": "warning",
                "message": "description is 1025 characters; the limit is 1024",
            })
        );
        diagnostic.line = None;
        diagnostic.column = None;
        diagnostic.severity = Severity::Error;
        assert_eq!(
            diagnostic.to_string(),
            "pdf/SKILL.md: error: description is 1025 characters; the limit is 1024"
        );
    }
}
