// `skillport fetch`: the init container's entry point. Reads the plan, runs
// `skillport_fetch::fetch`, says what happened on stderr, and on failure writes one line to the
// termination log and exits 1. Everything else lives in skillport-fetch.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use skillport_fetch::plan::INDEX_FILE;
use skillport_fetch::{Action, FetchOptions, FetchPlan, Report, termination_line};

use crate::cli::{FetchArgs, VerifyArgs};
use crate::output::{human_size, plural};

/// Kubernetes' default `terminationMessagePath`.
const TERMINATION_LOG: &str = "/dev/termination-log";

/// Runs a fetch. Credentials, CA files and insecure registries come from the plan only
/// (`commands::run` refuses `--authfile`, `--ca-file`, `--insecure` and `--store` here).
pub fn run(args: &FetchArgs) -> Result<ExitCode> {
    let options = FetchOptions {
        timeout: args.timeout,
        attempts: args.attempts,
        ..FetchOptions::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let plan = FetchPlan::read(&args.plan).map_err(skillport_fetch::FetchError::from);
    if args.dry_run {
        let checked =
            plan.and_then(|plan| runtime.block_on(skillport_fetch::dry_run(&plan, &options)));
        runtime.shutdown_timeout(Duration::from_secs(1));
        return Ok(match checked {
            Ok(planned) => report_dry_run(&planned),
            Err(err) => fail(&err, args),
        });
    }
    let into = args
        .into
        .as_deref()
        .expect("clap requires --into without --dry-run");
    let result =
        plan.and_then(|plan| runtime.block_on(skillport_fetch::fetch(&plan, into, &options)));
    // An unpack cut off by the timeout may still run on a blocking thread; do not wait for it.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(report) => Ok(report_outcome(&report, args)),
        Err(err) => Ok(fail(&err, args)),
    }
}

/// One line (and a hint) for what stopped the whole fetch, on stderr and in the termination log.
fn fail(err: &skillport_fetch::FetchError, args: &FetchArgs) -> ExitCode {
    let message = skillport_fetch::error_chain(err);
    eprintln!("error: {message}");
    if let Some(hint) = err.hint() {
        eprintln!("hint: {hint}");
    }
    write_termination_log(args.termination_log.as_deref(), &message);
    ExitCode::FAILURE
}

/// `--dry-run`'s findings: each skill and what it resolves to, or why it would fail.
fn report_dry_run(planned: &[skillport_fetch::Planned]) -> ExitCode {
    let mut failed = 0;
    for skill in planned {
        match &skill.resolved {
            Ok(revision) => out!(
                "would fetch {} ({}) -> {}: {revision}",
                skill.name,
                skill.source,
                skill.target
            ),
            Err(why) => {
                failed += 1;
                eprintln!("error: skill {:?} ({}): {why}", skill.name, skill.source);
            }
        }
    }
    if failed == 0 {
        eprintln!("dry run: every skill resolves; nothing was written");
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "dry run: {failed} of {} skills would fail; nothing was written",
            planned.len()
        );
        ExitCode::FAILURE
    }
}

fn report_outcome(report: &Report, args: &FetchArgs) -> ExitCode {
    for warning in &report.warnings {
        eprintln!("warning: {warning}");
    }
    for outcome in &report.outcomes {
        match &outcome.result {
            Ok(done) => {
                let entry = &done.entry;
                let revision = entry
                    .digest
                    .as_deref()
                    .or(entry.commit.as_deref())
                    .unwrap_or("-");
                let verb = match done.action {
                    Action::Fetched => "fetched",
                    Action::Replaced => "replaced",
                    Action::UpToDate => "up to date",
                };
                eprintln!(
                    "{verb}: {} ({revision}, {}, {})",
                    entry.name,
                    plural(entry.files, "file"),
                    human_size(entry.bytes)
                );
                for warning in &entry.warnings {
                    eprintln!("warning: skill {:?}: {warning}", entry.name);
                }
            }
            Err(failure) => {
                eprintln!("error: {failure}");
                if let Some(hint) = failure.hint() {
                    eprintln!("hint: {hint}");
                }
            }
        }
    }
    for name in &report.removed {
        eprintln!("removed: {name} (no longer in the plan)");
    }
    match report.termination_message() {
        None => ExitCode::SUCCESS,
        Some(line) => {
            let failed = report.failures().count();
            let total = report.outcomes.len();
            eprintln!(
                "error: {failed} of {total} skills not fetched; {} lists the ones in place",
                report.index.display()
            );
            write_termination_log(args.termination_log.as_deref(), &line);
            ExitCode::FAILURE
        }
    }
}

/// Writes `message` as one line. The default path is written only when it exists (Kubernetes
/// creates it); an explicit one is created.
/// `skillport verify`: checks the mounted skills and writes the index, or one termination line.
pub fn verify(args: &VerifyArgs) -> ExitCode {
    let fail = |message: String, hint: Option<&str>| {
        eprintln!("error: {message}");
        if let Some(hint) = hint {
            eprintln!("hint: {hint}");
        }
        write_termination_log(args.termination_log.as_deref(), &message);
        ExitCode::FAILURE
    };
    // clap requires both with --skill, the only way here.
    let (Some(index_file), Some(index_root)) = (&args.index, &args.index_root) else {
        return fail("--skill needs --index and --index-root".to_owned(), None);
    };
    let folder = match index_file.parent() {
        Some(folder) if index_file.file_name() == Some(INDEX_FILE.as_ref()) => folder,
        _ => {
            return fail(
                format!(
                    "--index {} must name a file {INDEX_FILE}",
                    index_file.display()
                ),
                None,
            );
        }
    };
    let index = match skillport_fetch::verify::verify(&args.skills, index_root) {
        Ok(index) => index,
        Err(err) => return fail(skillport_fetch::error_chain(&err), None),
    };
    if let Err(err) = index.write(folder) {
        return fail(format!("writing {}: {err}", index_file.display()), None);
    }
    for entry in &index.skills {
        eprintln!(
            "verified: {} ({}, {}, {})",
            entry.name,
            entry.digest.as_deref().unwrap_or("-"),
            plural(entry.files, "file"),
            human_size(entry.bytes)
        );
        for warning in &entry.warnings {
            eprintln!("warning: skill {:?}: {warning}", entry.name);
        }
    }
    ExitCode::SUCCESS
}

fn write_termination_log(explicit: Option<&Path>, message: &str) {
    let (path, create) = match explicit {
        Some(path) => (path.to_path_buf(), true),
        None => (PathBuf::from(TERMINATION_LOG), false),
    };
    let result = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .create(create)
        .open(&path)
        .and_then(|mut file| writeln!(file, "{}", termination_line(message)));
    if let Err(err) = result
        && (create || err.kind() != std::io::ErrorKind::NotFound)
    {
        eprintln!("warning: cannot write {}: {err}", path.display());
    }
}
