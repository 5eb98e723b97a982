//! What the command-line tools (`gateway`, `gateway-bench`, `ingest`, `demo`) share: the
//! version with the git commit, the log set-up (`--log-format`), one-line error reports, and
//! the stop signal.

use std::io::IsTerminal as _;
use std::path::Path;
use std::sync::OnceLock;

/// The format [`init_logging`] set up, for [`exit_code`]'s error report.
static FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// `0.1.0 (commit abc1234)`: the calling crate's version and the commit its build script
/// stamped in `GIT_COMMIT` (`unknown` outside a git checkout; see `build/git_commit.rs`).
#[macro_export]
macro_rules! version {
    () => {
        concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("GIT_COMMIT"), ")")
    };
}

/// How log lines are written to standard error.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines, coloured only on a terminal.
    #[default]
    Text,
    /// One JSON object per line (`timestamp`, `level`, `fields.message`, `target`, …).
    Json,
}

/// Installs the global log subscriber: `filter` as in `RUST_LOG`, lines on standard error.
pub fn init_logging(filter: &str, format: LogFormat) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr);
    let _ = FORMAT.set(format);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().with_ansi(false).init(),
    }
}

/// An error and its causes on one line, each cause only when its text is not already there
/// (errors that repeat their source's message in their own).
pub fn error_line(error: &anyhow::Error) -> String {
    let mut line = error.to_string();
    for cause in error.chain().skip(1) {
        let text = cause.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
    }
    line
}

/// Prints `error: …` on standard error (with JSON logs: as a JSON log line, so that every line
/// parses) and gives exit code 1 for an error, 0 otherwise.
pub fn exit_code(result: anyhow::Result<()>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) if FORMAT.get() == Some(&LogFormat::Json) => {
            // Written directly: a log filter such as `ingest=debug` must not hide it.
            let line = serde_json::json!({
                "timestamp": humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string(),
                "level": "ERROR",
                "fields": { "message": error_line(&e) },
                "target": "main",
            });
            eprintln!("{line}");
            std::process::ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {}", error_line(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// A flag that turns true on Ctrl-C or SIGTERM; the binaries stop cleanly on it. Call it from
/// inside a tokio runtime.
pub fn shutdown_signal() -> tokio::sync::watch::Receiver<bool> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let terminated = async {
            match term.as_mut() {
                Some(t) => {
                    t.recv().await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminated => {}
        }
        let _ = tx.send(true);
    });
    rx
}

/// Checks that a file named on the command line can be read, so that a missing one reads
/// `cannot read FILE: No such file or directory` rather than a config library's wording.
pub fn readable(path: &Path) -> anyhow::Result<()> {
    match std::fs::File::open(path) {
        Ok(_) => Ok(()),
        Err(e) => anyhow::bail!("cannot read {}: {}", path.display(), io_reason(&e)),
    }
}

/// An I/O error's text without Rust's ` (os error N)` suffix.
pub fn io_reason(error: &std::io::Error) -> String {
    let text = error.to_string();
    match text.rfind(" (os error ") {
        Some(i) if text.ends_with(')') => text[..i].to_string(),
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{file}: {source}")]
    struct Repeats {
        file: String,
        source: std::io::Error,
    }

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
        let e = anyhow::Error::new(Repeats { file: "a.toml".into(), source: io });
        assert_eq!(error_line(&e), "a.toml: gone");
        let e = anyhow::anyhow!("inner").context("outer");
        assert_eq!(error_line(&e), "outer: inner");
    }

    #[test]
    fn a_missing_file_reads_plainly() {
        let e = readable(Path::new("/nonexistent/x.toml")).unwrap_err();
        assert_eq!(error_line(&e), "cannot read /nonexistent/x.toml: No such file or directory");
    }
}
