//! Where the peer tools are: Debian packages on `PATH`, Python tools in the test virtualenv.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const INSTALL_HINT: &str = "run scripts/test.sh, which installs the real parts the tests use";

/// The workspace root (the folder holding the root `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/skillport-testkit sits two levels under the workspace root")
        .to_path_buf()
}

/// `skopeo` from `PATH`, ready for arguments. Panics if it is not installed.
pub fn skopeo() -> Command {
    Command::new(required_program("skopeo", "skopeo"))
}

/// `$SKILLPORT_TEST_VENV/bin/NAME`, or `<workspace>/target/test-venv/bin/NAME` when the variable
/// is unset. Panics if the tool is not there.
pub fn venv_tool(name: &str) -> PathBuf {
    let venv = env::var_os("SKILLPORT_TEST_VENV").map_or_else(
        || workspace_root().join("target").join("test-venv"),
        PathBuf::from,
    );
    let tool = venv.join("bin").join(name);
    assert!(
        tool.is_file(),
        "{name} is not installed: {} does not exist; {INSTALL_HINT} \
         (it makes the virtualenv; SKILLPORT_TEST_VENV points at another one)",
        tool.display()
    );
    tool
}

/// The full path of `program` on `PATH`, or `None`.
pub(crate) fn find_on_path(program: &str) -> Option<PathBuf> {
    env::split_paths(&env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// The full path of `program` on `PATH`; panics naming the Debian `package` if it is missing.
pub(crate) fn required_program(program: &str, package: &str) -> PathBuf {
    find_on_path(program).unwrap_or_else(|| {
        panic!("`{program}` is not on PATH (Debian package `{package}`): {INSTALL_HINT}")
    })
}
