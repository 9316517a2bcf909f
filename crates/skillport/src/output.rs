// Logging, error reporting and small formatting helpers. Data goes to stdout; logs, progress
// and errors to stderr. Log lines are coloured only on a terminal without NO_COLOR.

use std::fmt::Write as _;
use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};
use skillport_oci::{ParseReferenceError, ReadError, StoreError, UnpackError};
use skillport_skill::{LoadError, WalkError};

/// Prints one line on standard output, as `println!` does, but a reader that went away
/// (`skillport images | head -1`) ends the program quietly with success, as Unix tools do,
/// instead of a panic: whatever was done is done by the time it is printed. Any other write
/// error (a full disk behind a redirect) is said, and the program fails.
pub fn line(args: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    let written = stdout
        .write_fmt(args)
        .and_then(|()| stdout.write_all(b"\n"))
        .and_then(|()| stdout.flush());
    finish_writing(written);
}

/// Writes `bytes` to standard output as they are (no newline added), with [`line`]'s rules
/// for a reader that went away: `manifest` output must hash to its digest.
pub fn raw(bytes: &[u8]) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    let written = stdout.write_all(bytes).and_then(|()| stdout.flush());
    finish_writing(written);
}

fn finish_writing(written: std::io::Result<()>) {
    match written {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(err) => {
            eprintln!("error: writing to standard output: {err}");
            std::process::exit(1);
        }
    }
}

/// `println!` through [`line`].
macro_rules! out {
    () => {
        $crate::output::line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::output::line(format_args!($($arg)*))
    };
}

pub fn init_logging(verbose: u8) {
    // rustls logs a failed certificate check as an ERROR of its own; the error chain says it.
    let default = match verbose {
        0 => "warn,rustls=off",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("SKILLPORT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colour only on a terminal and never with NO_COLOR: pod logs and CI logs stay plain.
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .init();
}

/// For an argument that was read as an option but names a file or folder here
/// (`skillport validate -21risk-automation`): how to name it.
pub fn dash_folder_hint(arg: &std::ffi::OsStr) -> Option<String> {
    let text = arg.to_str()?;
    (text.starts_with('-') && std::path::Path::new(arg).exists())
        .then(|| format!("{text} is read as an option; to name the folder, write ./{text}"))
}

/// Prints the whole error chain once, then a `hint:` line when we know what to do about it.
pub fn print_error(err: &anyhow::Error) {
    eprintln!("error: {}", chain_text(err));
    if let Some(hint) = hint(err) {
        eprintln!("hint: {hint}");
    }
}

/// The error chain as `{:#}` prints it, less what it says twice: a cause's leading `NAME: `
/// (a name: no spaces) when the cause before it names NAME already (`pulling host/r:1: host: 401 …`), and a cause
/// said word for word before.
fn chain_text(err: &anyhow::Error) -> String {
    let mut text = String::new();
    let mut previous = String::new();
    for cause in err.chain() {
        let whole = cause.to_string();
        let part = match whole.split_once(": ") {
            // Only a name (a host, a path: no spaces), never a phrase.
            Some((head, rest))
                if !head.contains(char::is_whitespace) && previous.contains(head) =>
            {
                rest
            }
            _ => whole.as_str(),
        };
        if !text.contains(part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(part);
        }
        previous = whole;
    }
    text
}

fn hint(err: &anyhow::Error) -> Option<String> {
    for cause in err.chain() {
        if let Some(err) = cause.downcast_ref::<skillport_install::InstallError>() {
            return err.hint();
        }
        if let Some(err) = cause.downcast_ref::<skillport_registry::RegistryError>()
            && let Some(hint) = err.hint()
        {
            return Some(hint);
        }
        if let Some(err) = cause.downcast_ref::<StoreError>() {
            return store_hint(err);
        }
        if let Some(err) = cause.downcast_ref::<skillport_registry::auth::AuthError>() {
            return err.hint();
        }
        // `ReadError` wraps these transparently, so they never show up in the chain alone.
        match cause.downcast_ref::<ReadError>() {
            Some(ReadError::Store(err)) => return store_hint(err),
            Some(ReadError::Unpack(err)) => return unpack_hint(err),
            _ => {}
        }
        if let Some(err) = cause.downcast_ref::<UnpackError>() {
            return unpack_hint(err);
        }
        if cause.downcast_ref::<ParseReferenceError>().is_some() {
            return Some(
                "write references as NAME[:TAG] or NAME@sha256:DIGEST, e.g. my-skill:0.1.0".into(),
            );
        }
        if let Some(err) = cause.downcast_ref::<WalkError>() {
            return match err {
                WalkError::EscapingLink { .. } | WalkError::DanglingLink { .. } => Some(
                    "replace the link with a copy of what it points to, or list it in .skillignore"
                        .into(),
                ),
                WalkError::SpecialFile { .. } => {
                    Some("remove it from the skill folder, or list it in .skillignore".into())
                }
                _ => None,
            };
        }
        if let Some(err) = cause.downcast_ref::<LoadError>() {
            return match err {
                LoadError::MissingSkillMd {
                    other_case: Some(name),
                    ..
                } => Some(format!("rename {name} to SKILL.md")),
                LoadError::MissingSkillMd { .. } => Some(
                    "a skill is a folder with a SKILL.md; `skillport init NAME` creates one".into(),
                ),
                LoadError::Invalid { .. } => {
                    Some("fix the problems listed above, or pass --lenient to build anyway".into())
                }
                _ => None,
            };
        }
    }
    None
}

fn unpack_hint(err: &UnpackError) -> Option<String> {
    match err {
        UnpackError::DestinationExists { .. } => {
            Some("choose a folder that does not exist yet, or empty it first".into())
        }
        _ => None,
    }
}

fn store_hint(err: &StoreError) -> Option<String> {
    match err {
        StoreError::NotFound { .. } => Some(
            "`skillport images` lists what the store holds; `skillport build` adds to it".into(),
        ),
        StoreError::NotALayout { .. } => Some(
            "point --store (or SKILLPORT_STORE) at an empty folder or an existing OCI image layout"
                .into(),
        ),
        StoreError::Incomplete { .. } => {
            Some("another command changed the store at the same time: run this one again".into())
        }
        StoreError::DigestMismatch { .. } | StoreError::MissingBlob { .. } => Some(
            "the store is damaged: remove the image with `skillport rm` and build or pull it again"
                .into(),
        ),
        _ => None,
    }
}

/// A byte-count progress bar on stderr, shown only on a terminal and only for big jobs.
pub fn progress_bar(total: u64, message: &str) -> ProgressBar {
    const SHOW_FROM: u64 = 16 << 20;
    if total < SHOW_FROM || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_message(message.to_owned());
    bar
}

/// `1.5 MiB`-style sizes.
/// `1 file`, `2 files`: a count and its noun, plural but for one.
pub fn plural<N: std::fmt::Display + PartialEq + From<u8> + Copy>(count: N, one: &str) -> String {
    if count == N::from(1) {
        format!("1 {one}")
    } else {
        format!("{count} {one}s")
    }
}

pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    #[allow(clippy::cast_precision_loss)] // a rounded display value
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Prints rows as left-aligned columns; the last column is not padded.
pub fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len() - 1;
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i == last {
                out.push_str(cell);
            } else {
                let _ = write!(out, "{cell:<width$}  ", width = widths[i]);
            }
        }
        out!("{}", out.trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// Cuts `text` to `max` characters on one line, with an ellipsis.
pub fn one_line(text: &str, max: usize) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        flat
    } else {
        let cut: String = flat.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}
