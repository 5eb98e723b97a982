use super::*;
use proptest::prelude::*;

fn cfg() -> SpoolConfig {
    SpoolConfig { segment_bytes: 200, ..SpoolConfig::default() }
}

fn payloads(records: &[Record]) -> Vec<String> {
    records.iter().map(|r| String::from_utf8_lossy(&r.payload).into_owned()).collect()
}

fn fill(spool: &mut Spool, n: usize) {
    for i in 0..n {
        spool.append(format!("record-{i:03}").as_bytes()).unwrap();
    }
    spool.sync().unwrap();
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    v.sort();
    v
}

#[test]
fn reads_in_order_across_segments_and_reopens_where_it_left_off() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Spool::open(dir.path(), cfg()).unwrap();
    fill(&mut s, 30);
    assert!(segment_files(dir.path()).len() > 2, "small segments roll over");
    let first = s.read(10).unwrap();
    assert_eq!(first.first().unwrap().id, 1);
    assert_eq!(payloads(&first)[9], "record-009");
    s.ack_through(10).unwrap();
    drop(s);
    let mut s = Spool::open(dir.path(), cfg()).unwrap();
    assert_eq!(s.pending(), 20);
    let rest = s.read(100).unwrap();
    assert_eq!(rest.len(), 20);
    assert_eq!(rest[0].id, 11);
    assert_eq!(s.append(b"next").unwrap(), 31, "ids keep growing after a reopen");
}

#[test]
fn segments_are_deleted_only_when_fully_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Spool::open(dir.path(), cfg()).unwrap();
    fill(&mut s, 30);
    let before = segment_files(dir.path()).len();
    s.ack_through(1).unwrap();
    assert_eq!(
        segment_files(dir.path()).len(),
        before,
        "one record of the first segment is not a whole segment"
    );
    s.ack_through(30).unwrap();
    assert_eq!(segment_files(dir.path()).len(), 1, "all acknowledged: only the newest stays");
    assert_eq!(s.pending(), 0);
    assert_eq!(s.stats().acked, 30);
}

#[test]
fn rewind_reads_the_unacknowledged_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Spool::open(dir.path(), cfg()).unwrap();
    fill(&mut s, 5);
    assert_eq!(s.read(3).unwrap().len(), 3);
    s.ack_through(2).unwrap();
    assert_eq!(s.read(10).unwrap().len(), 2);
    s.rewind();
    let again = s.read(10).unwrap();
    assert_eq!(again.iter().map(|r| r.id).collect::<Vec<_>>(), vec![3, 4, 5]);
}

#[test]
fn recovers_after_torn_write() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Spool::open(dir.path(), SpoolConfig::default()).unwrap();
    fill(&mut s, 3);
    drop(s);
    let seg = segment_files(dir.path()).pop().unwrap();
    let len = std::fs::metadata(&seg).unwrap().len();
    // A crash in the middle of the third record.
    std::fs::OpenOptions::new().write(true).open(&seg).unwrap().set_len(len - 4).unwrap();
    let mut s = Spool::open(dir.path(), SpoolConfig::default()).unwrap();
    assert!(s.stats().torn_bytes > 0);
    assert_eq!(payloads(&s.read(10).unwrap()), vec!["record-000", "record-001"]);
    assert_eq!(s.append(b"after").unwrap(), 3, "the torn record's id is reused: it never existed");
    s.sync().unwrap();
    drop(s);
    let mut s = Spool::open(dir.path(), SpoolConfig::default()).unwrap();
    assert_eq!(payloads(&s.read(10).unwrap()), vec!["record-000", "record-001", "after"]);
}

#[test]
fn reader_skips_record_with_bad_checksum() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Spool::open(dir.path(), SpoolConfig::default()).unwrap();
    fill(&mut s, 3);
    drop(s);
    let seg = segment_files(dir.path()).pop().unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    let second_payload = HEADER + "record-000".len() + HEADER;
    bytes[second_payload] ^= 0xFF;
    std::fs::write(&seg, bytes).unwrap();
    let mut s = Spool::open(dir.path(), SpoolConfig::default()).unwrap();
    assert_eq!(payloads(&s.read(10).unwrap()), vec!["record-000", "record-002"]);
    assert!(s.stats().corrupt >= 1);
}

#[test]
fn garbage_ledger_means_resend_not_loss() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Spool::open(dir.path(), cfg()).unwrap();
    fill(&mut s, 3);
    s.ack_through(2).unwrap();
    drop(s);
    std::fs::write(dir.path().join("acked"), b"garbage-bytes").unwrap();
    let mut s = Spool::open(dir.path(), cfg()).unwrap();
    assert_eq!(s.read(10).unwrap().len(), 3);
}

#[test]
fn drop_oldest_counts_what_it_drops() {
    let dir = tempfile::tempdir().unwrap();
    let c = SpoolConfig { max_bytes: 600, segment_bytes: 200, ..SpoolConfig::default() };
    let mut s = Spool::open(dir.path(), c).unwrap();
    fill(&mut s, 40);
    assert!(s.bytes() <= 600, "{} bytes", s.bytes());
    let stats = s.stats();
    assert!(stats.dropped_full > 0);
    let left = s.read(100).unwrap();
    assert_eq!(left.len() as u64 + stats.dropped_full, 40, "every record is either kept or counted");
    assert_eq!(left.last().unwrap().id, 40, "the newest are kept");
}

#[test]
fn block_refuses_when_full_and_accepts_after_acks() {
    let dir = tempfile::tempdir().unwrap();
    let c = SpoolConfig {
        max_bytes: 600,
        segment_bytes: 200,
        when_full: WhenFull::Block,
        ..SpoolConfig::default()
    };
    let mut s = Spool::open(dir.path(), c).unwrap();
    let mut n = 0;
    while s.append(b"0123456789").is_ok() {
        n += 1;
    }
    assert!(matches!(s.append(b"x"), Err(SpoolError::Full { .. })));
    s.ack_through(n).unwrap();
    assert!(s.append(b"0123456789").is_ok());
    assert_eq!(s.stats().dropped_full, 0);
}

#[test]
fn expire_drops_old_segments_and_counts_them() {
    let dir = tempfile::tempdir().unwrap();
    let c =
        SpoolConfig { max_age: Some(Duration::from_secs(60)), segment_bytes: 200, ..SpoolConfig::default() };
    let mut s = Spool::open(dir.path(), c).unwrap();
    fill(&mut s, 30);
    assert_eq!(s.expire(SystemTime::now()).unwrap(), 0);
    let later = SystemTime::now() + Duration::from_secs(3600);
    let dropped = s.expire(later).unwrap();
    assert_eq!(dropped, 30);
    assert_eq!(s.stats().dropped_age, 30);
    assert!(s.read(100).unwrap().is_empty());
}

#[test]
fn refuses_records_over_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let mut s =
        Spool::open(dir.path(), SpoolConfig { max_record_bytes: 8, ..SpoolConfig::default() }).unwrap();
    assert!(matches!(s.append(b"123456789"), Err(SpoolError::TooLarge(9))));
}

#[test]
fn appends_are_written_together_and_flushed_records_survive_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Spool::open(dir.path(), SpoolConfig::default()).unwrap();
    for i in 0..5 {
        s.append(format!("record-{i:03}").as_bytes()).unwrap();
    }
    assert_eq!(s.unwritten(), 5);
    assert_eq!(std::fs::metadata(&segment_files(dir.path())[0]).unwrap().len(), 0, "held in memory");
    s.flush().unwrap();
    assert_eq!(s.unwritten(), 0);
    assert_eq!(s.bytes(), std::fs::metadata(&segment_files(dir.path())[0]).unwrap().len());
    s.crash();
    let mut s = Spool::open(dir.path(), SpoolConfig::default()).unwrap();
    assert_eq!(s.read(10).unwrap().len(), 5);
}

/// A kill between a batch of appends and the next write, with acknowledgements of records
/// sent from memory in between: what the broker acknowledged never comes back, what was
/// written and not acknowledged does, and ids are never handed out twice below the ledger.
#[test]
fn a_kill_before_the_batch_is_written_loses_nothing_acknowledged_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Spool::open(dir.path(), cfg()).unwrap();
    fill(&mut s, 10);
    s.ack_through(4).unwrap();
    for i in 10..15 {
        s.append(format!("record-{i:03}").as_bytes()).unwrap();
    }
    // Ids 11..=15 are in memory only; the broker acknowledged through 12 (sent from memory).
    s.ack_through(12).unwrap();
    s.crash();
    let mut s = Spool::open(dir.path(), cfg()).unwrap();
    assert_eq!(s.acked(), 12, "the ledger is written in place at once");
    assert_eq!(s.pending(), 0, "5..=10 are acknowledged, 13..=15 were never written");
    assert!(s.read(100).unwrap().is_empty());
    assert_eq!(s.append(b"next").unwrap(), 13, "no id at or below the ledger again");

    // Without the late acknowledgement, the written records come back, once each.
    let dir = tempfile::tempdir().unwrap();
    let mut s = Spool::open(dir.path(), cfg()).unwrap();
    fill(&mut s, 10);
    s.ack_through(4).unwrap();
    s.append(b"unwritten").unwrap();
    s.crash();
    let mut s = Spool::open(dir.path(), cfg()).unwrap();
    let back = s.read(100).unwrap();
    assert_eq!(back.iter().map(|r| r.id).collect::<Vec<_>>(), (5..=10).collect::<Vec<_>>());
    assert_eq!(payloads(&back)[0], "record-004");
}

#[derive(Clone, Debug)]
enum Op {
    Append(Vec<u8>),
    Sync,
    Flush,
    Crash,
    Read(usize),
    AckRead,
    Rewind,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => proptest::collection::vec(any::<u8>(), 0..40).prop_map(Op::Append),
        1 => Just(Op::Sync),
        1 => Just(Op::Flush),
        1 => Just(Op::Crash),
        2 => (1usize..8).prop_map(Op::Read),
        2 => Just(Op::AckRead),
        1 => Just(Op::Rewind),
        1 => Just(Op::Reopen),
    ]
}

proptest! {
    /// Against a model queue: reads return exactly the unacknowledged records in order, across
    /// segment roll-overs, rewinds, reopens (a clean reopen after a sync) and kills (which lose
    /// the records not yet written, the newest, and nothing else).
    #[test]
    fn behaves_like_a_queue(ops in proptest::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let c = SpoolConfig { segment_bytes: 120, ..SpoolConfig::default() };
        let mut s = Spool::open(dir.path(), c.clone()).unwrap();
        let mut model: VecDeque<(u64, Vec<u8>)> = VecDeque::new();
        let mut read_upto = 0u64;
        let mut last_read = 0u64;
        for op in ops {
            match op {
                Op::Append(p) => {
                    let id = s.append(&p).unwrap();
                    prop_assert!(id > s.acked() && model.back().is_none_or(|(last, _)| id > *last));
                    model.push_back((id, p));
                }
                Op::Sync => s.sync().unwrap(),
                Op::Flush => s.flush().unwrap(),
                Op::Crash => {
                    let lost = s.unwritten();
                    let newest = s.acked() + s.pending();
                    s.crash();
                    s = Spool::open(dir.path(), c.clone()).unwrap();
                    model.retain(|(id, _)| *id + lost <= newest);
                    read_upto = model.front().map_or(read_upto, |(id, _)| id - 1);
                    if let Some((id, _)) = model.back() {
                        prop_assert!(s.acked() + s.pending() == *id, "ids go on after the last written record");
                    }
                }
                Op::Read(n) => {
                    let got = s.read(n).unwrap();
                    let want: Vec<(u64, Vec<u8>)> = model.iter().filter(|(id, _)| *id > read_upto).take(n).cloned().collect();
                    prop_assert_eq!(got.iter().map(|r| (r.id, r.payload.clone())).collect::<Vec<_>>(), want);
                    if let Some(r) = got.last() {
                        read_upto = r.id;
                        last_read = r.id;
                    }
                }
                Op::AckRead => {
                    s.ack_through(last_read).unwrap();
                    while model.front().is_some_and(|(id, _)| *id <= last_read) {
                        model.pop_front();
                    }
                }
                Op::Rewind => {
                    s.rewind();
                    read_upto = model.front().map_or(read_upto, |(id, _)| id - 1);
                }
                Op::Reopen => {
                    s.sync().unwrap();
                    drop(s);
                    s = Spool::open(dir.path(), c.clone()).unwrap();
                    read_upto = model.front().map_or(read_upto, |(id, _)| id - 1);
                }
            }
            prop_assert_eq!(s.pending(), model.len() as u64);
        }
    }
}

#[test]
fn a_sync_run_apart_covers_what_was_appended_before_it_and_the_spool_goes_on_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Spool::open(dir.path(), SpoolConfig::default()).unwrap();
    fill(&mut s, 5);
    s.append(b"before").unwrap();
    s.ack_through(2).unwrap();
    let pending = s.begin_sync().unwrap();
    assert_eq!(s.unwritten(), 0, "written out before the sync");
    let names: Vec<_> = pending.files.iter().map(|(p, _)| p.file_name().unwrap().to_owned()).collect();
    assert_eq!(names.len(), 2, "the segment and the ledger: {names:?}");
    assert!(pending.ledger);
    // The spool is free while the files are synced.
    s.append(b"during").unwrap();
    s.ack_through(3).unwrap();
    pending.run().unwrap();
    assert!(s.begin_sync().unwrap().ledger, "acknowledged during the sync: the ledger again");
    assert!(!s.begin_sync().unwrap().ledger, "nothing acknowledged since");
    s.ack_through(4).unwrap();
    let failed = s.begin_sync().unwrap();
    s.sync_failed(failed);
    assert!(s.begin_sync().unwrap().ledger, "a failed sync is tried again");
    drop(s);
    let mut s = Spool::open(dir.path(), SpoolConfig::default()).unwrap();
    assert_eq!(s.acked(), 4);
    assert_eq!(payloads(&s.read(10).unwrap()), ["record-004", "before", "during"]);
}

#[test]
fn sizes_parse_with_units() {
    assert_eq!(parse_size("512MiB"), Ok(512 << 20));
    assert_eq!(parse_size("2 GiB"), Ok(2 << 30));
    assert_eq!(parse_size("64kB"), Ok(64_000));
    assert_eq!(parse_size("100"), Ok(100));
    assert!(parse_size("12 parsecs").unwrap_err().contains("unknown unit"));
    assert!(parse_size("MiB").is_err());
    let s: ByteSize = serde_json::from_str("\"1KiB\"").unwrap();
    assert_eq!(s, ByteSize(1024));
}
