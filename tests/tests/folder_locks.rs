//! One process per spool folder, against the real binaries: a second gateway on the same spool
//! (a second ingest on the same WAL) exits at once, naming the folder, while the first keeps
//! running; once the first is killed with SIGKILL, as a crash would, the folder is free again.
//! No broker is needed: both keep running, retrying the connection, without one.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use system_tests::{binary, free_port, kill_9, wait_for, Proc};

/// The pid written into the folder's lock file (what the holder wrote, not who holds the lock).
fn pid_in_lock_file(folder: &Path) -> Option<u32> {
    std::fs::read_to_string(folder.join("lock")).ok()?.trim().parse().ok()
}

fn second_is_refused_until_the_first_is_killed(folder: &Path, start: impl Fn(&str) -> Proc) {
    let mut first = start("first");
    let first_pid = first.child.id();
    wait_for(Duration::from_secs(20), "the first to lock the folder", || {
        (pid_in_lock_file(folder) == Some(first_pid)).then_some(())
    });

    let mut second = start("second");
    let status =
        wait_for(Duration::from_secs(20), "the second to exit", || second.child.try_wait().ok().flatten());
    let out = second.output();
    assert!(!status.success(), "the second exited with {status}:\n{out}");
    assert!(out.contains(&folder.display().to_string()), "the message names the folder:\n{out}");
    assert!(out.contains(&format!("in use by process {first_pid}")), "{out}");
    assert_eq!(first.child.try_wait().unwrap(), None, "the first keeps running:\n{}", first.output());
    assert_eq!(pid_in_lock_file(folder), Some(first_pid), "the refused one leaves the lock file alone");

    kill_9(&mut first);
    let mut third = start("third");
    let third_pid = third.child.id();
    wait_for(Duration::from_secs(20), "the third to lock the folder", || {
        assert_eq!(third.child.try_wait().unwrap(), None, "the third exited:\n{}", third.output());
        (pid_in_lock_file(folder) == Some(third_pid)).then_some(())
    });
    third.terminate();
}

#[test]
fn a_second_gateway_on_the_same_spool_is_refused_until_the_first_dies() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dir = dir.path();
    let spool = dir.join("spool");
    let config = dir.join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "[gateway]\nid = \"gw-lock\"\n[spool]\ndir = {:?}\n[mqtt]\nurl = \"mqtt://127.0.0.1:{}\"\n\
             [[line]]\nname = \"tcp-1\"\ntransport = \"tcp\"\naddress = \"127.0.0.1:{}\"\n\
             [[device]]\nid = \"boiler-1\"\nline = \"tcp-1\"\nunit = 5\nprofile = \"boiler-ctl-v1\"\ninterval = \"2s\"\n",
            spool.display().to_string(),
            free_port(),
            free_port()
        ),
    )
    .expect("gateway config");
    second_is_refused_until_the_first_is_killed(&spool, |name| {
        let mut cmd = Command::new(binary("gateway"));
        cmd.arg("run").arg("--config").arg(&config).env("GATEWAY_LOG", "info");
        Proc::spawn(&format!("gateway-{name}"), cmd, dir)
    });
}

#[test]
fn a_second_ingest_on_the_same_wal_is_refused_until_the_first_dies() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dir = dir.path();
    let wal = dir.join("wal");
    let config = dir.join("ingest.toml");
    std::fs::write(
        &config,
        format!(
            "[mqtt]\nurl = \"mqtt://127.0.0.1:{}\"\nclient_id = \"ingest-lock\"\n\n[files]\ndir = {:?}\n\n[wal]\ndir = {:?}\n",
            free_port(),
            dir.join("files").display().to_string(),
            wal.display().to_string()
        ),
    )
    .expect("ingest config");
    second_is_refused_until_the_first_is_killed(&wal, |name| {
        let mut cmd = Command::new(binary("ingest"));
        cmd.arg("run").arg("--config").arg(&config);
        Proc::spawn(&format!("ingest-{name}"), cmd, dir)
    });
}
