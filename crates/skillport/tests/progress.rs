// The progress bar: drawn on a terminal for a big build, and never when stderr is a file or
// a pipe (CI logs, scripts), where escape codes and carriage returns would be noise. The
// terminal case runs the build under util-linux `script`, which gives it a pseudo-terminal;
// it shows that the quiet case is quiet because of the check, not because the build is small.

mod common;

use std::fs;
use std::path::PathBuf;

use common::{Rng, Sandbox, digest_line, path_str, run, tool, write_minimal_skill};

/// A skill past the bar's 16 MiB threshold.
fn big_skill(sandbox: &Sandbox) -> PathBuf {
    let dir = write_minimal_skill(&sandbox.join("src"), "big-skill");
    let mut rng = Rng::new(16);
    fs::create_dir(dir.join("assets")).unwrap();
    for i in 0..3 {
        fs::write(dir.join(format!("assets/part-{i}.bin")), rng.bytes(6 << 20)).unwrap();
    }
    dir
}

#[test]
fn progress_bar_stays_quiet_when_stderr_is_not_a_terminal() {
    let sandbox = Sandbox::new();
    let dir = big_skill(&sandbox);
    let run = sandbox.ok(&["build", path_str(&dir), "-t", "big-skill:1"]);
    digest_line(&run);
    assert!(
        !run.stderr.contains('\u{1b}') && !run.stderr.contains('\r'),
        "no escape codes or carriage returns on a non-terminal stderr\n{run}"
    );
    assert_eq!(
        run.stderr.trim(),
        "tagged big-skill:1",
        "stderr holds only the report\n{run}"
    );
}

#[test]
fn progress_bar_shows_on_a_terminal() {
    let sandbox = Sandbox::new();
    let dir = big_skill(&sandbox);
    let command_line = format!(
        "'{}' --store '{}' build '{}' -t big-skill:1",
        env!("CARGO_BIN_EXE_skillport"),
        sandbox.store().display(),
        dir.display()
    );
    let mut script = tool("script", "bsdutils");
    script
        .args(["-q", "-e", "-c", &command_line, "/dev/null"])
        .env_remove("SOURCE_DATE_EPOCH")
        .env("TERM", "xterm");
    let run = run(script).success();
    assert!(
        run.stdout.contains("building big-skill"),
        "the bar names the build on a terminal\n{run}"
    );
    assert!(run.stdout.contains("sha256:"), "{run}");
}
