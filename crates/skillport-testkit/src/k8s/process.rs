//! One control-plane process: its log file, its watchdog, and a stop that waits for it to exit.

use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};

use crate::registry::watchdog;

/// A running component (`etcd`, `kube-apiserver`, …) writing stdout and stderr to `log`.
pub(crate) struct Process {
    pub(crate) name: &'static str,
    child: Child,
    watchdog: Option<(Child, ChildStdin)>,
    log: PathBuf,
}

impl Process {
    /// Runs `program args…` in `dir`, appending its output to `log`. The watchdog kills it and
    /// removes `folders` if the test process dies without dropping it (a nextest timeout).
    pub(crate) fn spawn<I, S>(
        name: &'static str,
        program: &Path,
        args: I,
        dir: &Path,
        log: PathBuf,
        folders: &[&Path],
    ) -> Process
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut process = Process::spawn_unwatched_with_path(name, program, args, dir, log, None);
        process.watchdog = watchdog(process.child.id(), folders);
        process
    }

    /// Like [`Process::spawn`] without a watchdog of its own, for a part whose owner has one
    /// watchdog for everything it started (`Node`'s teardown script); `path`, when given, goes
    /// first on `PATH` (containerd finds its shim there).
    pub(crate) fn spawn_unwatched_with_path<I, S>(
        name: &'static str,
        program: &Path,
        args: I,
        dir: &Path,
        log: PathBuf,
        path: Option<&Path>,
    ) -> Process
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap_or_else(|err| panic!("opening {}: {err}", log.display()));
        let mut command = Command::new(program);
        if let Some(first) = path {
            let mut dirs = vec![first.to_path_buf()];
            dirs.extend(std::env::split_paths(
                &std::env::var_os("PATH").unwrap_or_default(),
            ));
            command.env(
                "PATH",
                std::env::join_paths(dirs).expect("PATH entries without ':'"),
            );
        }
        let child = command
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("cloning the log handle"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|err| panic!("running {}: {err}", program.display()));
        Process {
            name,
            watchdog: None,
            child,
            log,
        }
    }

    pub(crate) fn id(&self) -> u32 {
        self.child.id()
    }

    /// `Some(status)` once the process has exited.
    pub(crate) fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The last `max_lines` lines of its output.
    pub(crate) fn log_tail(&self, max_lines: usize) -> String {
        let text = self.log();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(max_lines)..].join("\n")
    }

    /// Everything it wrote so far.
    pub(crate) fn log(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = File::open(&self.log) {
            let _ = file.seek(SeekFrom::Start(0));
            let _ = file.read_to_string(&mut text);
        }
        text
    }

    /// Kills it (SIGKILL: test state is thrown away anyway) and waits until it has exited, so
    /// its ports and files are free when this returns.
    pub(crate) fn stop(mut self) {
        // The watchdog first: once the process is reaped its pid may be reused.
        if let Some((mut watchdog, stdin)) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
            drop(stdin);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
