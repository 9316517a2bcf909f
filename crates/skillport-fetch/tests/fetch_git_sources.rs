//! Git sources through the plan runner: HTTPS with basic auth from a mounted Secret folder
//! and a CA file, `git://` at a commit SHA, re-runs (a commit is up to date without asking
//! the server; a branch is fetched again), and bad credentials. The servers are the fixture
//! of `tests/git.rs` (git daemon, git http-backend) on 127.0.0.1.

// The fixture of tests/git.rs, of which this file uses a part.
#[path = "git/fixture.rs"]
#[allow(dead_code)]
mod fixture;

mod common;

use std::fs;

use common::{fast_options, index, run, top_level};
use fixture::{Fixture, PASSWORD, USER};
use skillport_fetch::Action;
use skillport_fetch::plan::{CredentialFile, FetchPlan, GitSpec, PlannedSkill};

/// A Secret with `username` and `password`, mounted as a folder.
fn mount_git_secret(fixture: &Fixture, name: &str, username: &str, password: &str) -> String {
    let dir = fixture.out_of_tree(name);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("username"), format!("{username}\n")).unwrap();
    fs::write(dir.join("password"), format!("{password}\n")).unwrap();
    fs::write(dir.join("host"), format!("{}\n", fixture.https_host())).unwrap();
    dir.display().to_string()
}

fn git_plan(fixture: &Fixture, secret: String) -> FetchPlan {
    FetchPlan {
        skills: vec![
            PlannedSkill::git(
                "code-review",
                GitSpec {
                    url: fixture.https_url(),
                    reference: "main".into(),
                    path: Some("skills/code-review".into()),
                },
            ),
            PlannedSkill::git(
                "pinned",
                GitSpec {
                    url: fixture.git_url(),
                    reference: fixture.commits.second.clone(),
                    path: Some("skills/code-review".into()),
                },
            ),
        ],
        git_credentials: Some(CredentialFile {
            name: "git-token".into(),
            path: secret,
        }),
        ca_files: vec![fixture.ca_file().display().to_string()],
        ..FetchPlan::new()
    }
}

#[test]
fn git_skills_are_fetched_indexed_and_skipped_at_a_commit() {
    let fixture = Fixture::new();
    let secret = mount_git_secret(&fixture, "git-secret", USER, PASSWORD);
    let plan = git_plan(&fixture, secret);
    let into = fixture.out_of_tree("skills");
    let report = run(&plan, &into, &fast_options());
    assert!(report.is_success(), "{:?}", report.termination_message());
    assert_eq!(top_level(&into), ["code-review", "index.json", "pinned"]);
    assert_eq!(
        fs::read_to_string(into.join("code-review/SKILL.md")).unwrap(),
        fixture::skill_md(3)
    );
    assert_eq!(
        fs::read_to_string(into.join("pinned/SKILL.md")).unwrap(),
        fixture::skill_md(2)
    );

    let index = index(&into);
    let [main, pinned] = index.skills.as_slice() else {
        panic!("{index:?}")
    };
    assert_eq!(main.commit.as_deref(), Some(fixture.commits.main.as_str()));
    assert_eq!(main.digest, None);
    assert_eq!(main.description, "Reviews code (version 3).");
    assert!(
        main.warnings
            .iter()
            .any(|w| w.contains("vendored") && w.contains("submodule")),
        "{:?}",
        main.warnings
    );
    assert_eq!(
        pinned.commit.as_deref(),
        Some(fixture.commits.second.as_str())
    );
    // Folder "pinned", skill "code-review": a lenient warning.
    assert!(
        pinned.warnings.iter().any(|w| w.starts_with("SKILL.md:2")),
        "{:?}",
        pinned.warnings
    );

    let report = run(&plan, &into, &fast_options());
    let actions: Vec<Option<Action>> = report
        .outcomes
        .iter()
        .map(|o| o.result.as_ref().ok().map(|d| d.action))
        .collect();
    assert_eq!(actions, [Some(Action::Replaced), Some(Action::UpToDate)]);
}

#[test]
fn wrong_git_credentials_name_the_url_and_never_the_password() {
    let fixture = Fixture::new();
    let wrong = "wrong-git-NEVER-PRINT";
    let secret = mount_git_secret(&fixture, "git-secret", USER, wrong);
    let mut plan = git_plan(&fixture, secret);
    plan.skills.truncate(1);
    let into = fixture.out_of_tree("skills");
    let report = run(&plan, &into, &fast_options());
    let failure = report.failures().next().expect("a failure");
    let message = failure.to_string();
    assert!(message.starts_with("skill \"code-review\": "), "{message}");
    assert!(message.contains(&fixture.https_url()), "{message}");
    assert!(
        !message.contains(wrong) && !message.contains(PASSWORD),
        "{message}"
    );
    assert!(failure.hint().is_some());
    assert_eq!(top_level(&into), ["index.json"]);
}

#[test]
fn an_unreadable_git_secret_stops_the_run() {
    let fixture = Fixture::new();
    let plan = git_plan(
        &fixture,
        fixture.out_of_tree("absent").display().to_string(),
    );
    let err = common::try_run(&plan, &fixture.out_of_tree("skills"), &fast_options()).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("git credentials \"git-token\": "),
        "{err}"
    );
}

#[test]
fn git_credentials_go_to_https_sources_only() {
    // git.rs refuses to send credentials over plain http; a public http source in a plan
    // with git credentials must still work, fetched without them.
    let fixture = Fixture::new();
    let secret = mount_git_secret(&fixture, "git-secret", USER, PASSWORD);
    let mut plan = git_plan(&fixture, secret);
    plan.skills[1] = PlannedSkill::git(
        "plain",
        GitSpec {
            url: fixture.http_url(),
            reference: "v2".into(),
            path: Some("skills/code-review".into()),
        },
    );
    let into = fixture.out_of_tree("skills");
    let report = run(&plan, &into, &fast_options());
    assert!(report.is_success(), "{:?}", report.termination_message());
    assert_eq!(top_level(&into), ["code-review", "index.json", "plain"]);
}
