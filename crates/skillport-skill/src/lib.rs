//! The Agent Skill model.
//!
//! Owns everything about a skill *folder*: parsing and validating `SKILL.md` frontmatter per
//! the agentskills.io specification, the optional `skill.yaml` SkillCard, generating a
//! SkillCard from `SKILL.md`, and walking the folder to list the files that make up the skill
//! (leaving out hidden files, VCS folders and `.skillignore` patterns; refusing links that
//! escape and special files).
//!
//! It must not do I/O beyond reading the skill folder: no network, no image format, no store.

mod card;
mod diagnostic;
mod frontmatter;
mod skill;
mod walk;

pub use card::*;
pub use diagnostic::*;
pub use frontmatter::*;
pub use skill::*;
pub use walk::{Entry, EntryKind, WalkError, walk};
