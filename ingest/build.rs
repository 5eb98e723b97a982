//! Stamps the git commit ingest is built from into `BUILD_GIT_COMMIT` (for the
//! `ingest_build_info` metric): `BUILD_GIT_COMMIT` from the environment when set (a package
//! built from a tarball), else `git rev-parse`, else "unknown". Never fails the build.

use std::path::PathBuf;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}

fn main() {
    println!("cargo:rerun-if-env-changed=BUILD_GIT_COMMIT");
    let commit = std::env::var("BUILD_GIT_COMMIT").ok().filter(|c| !c.is_empty()).or_else(|| {
        // Built again when HEAD moves: HEAD itself, the branch it points to, packed refs.
        if let Some(dir) = git(&["rev-parse", "--path-format=absolute", "--git-dir"]).map(PathBuf::from) {
            println!("cargo:rerun-if-changed={}", dir.join("HEAD").display());
            if let (Some(common), Some(branch)) = (
                git(&["rev-parse", "--path-format=absolute", "--git-common-dir"]).map(PathBuf::from),
                git(&["symbolic-ref", "-q", "HEAD"]),
            ) {
                for file in [common.join(branch), common.join("packed-refs")] {
                    if file.exists() {
                        println!("cargo:rerun-if-changed={}", file.display());
                    }
                }
            }
        }
        git(&["rev-parse", "--short=12", "HEAD"])
    });
    let commit: String = commit
        .unwrap_or_else(|| "unknown".into())
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        .collect();
    println!("cargo:rustc-env=BUILD_GIT_COMMIT={commit}");
}
