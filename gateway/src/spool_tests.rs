use super::*;

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gw-spool-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn settings_parse_with_defaults_and_units() {
    let s: SpoolSettings = toml::from_str("").unwrap();
    assert_eq!(s.max_bytes, ByteSize(512 << 20));
    assert_eq!(s.max_age, Duration::from_secs(7 * 86_400));
    assert_eq!(s.when_full, WhenFullSetting::DropOldest);
    assert!(s.folder("gw-7").ends_with("gateway-spool/gw-7"));
    let s: SpoolSettings = toml::from_str(
        "dir = \"/var/lib/gateway/spool\"\nmax_bytes = \"1MiB\"\nmax_age = \"0s\"\nwhen_full = \"block\"",
    )
    .unwrap();
    let cfg = s.spool_config();
    assert_eq!((cfg.max_bytes, cfg.max_age, cfg.when_full), (1 << 20, None, WhenFull::Block));
    assert_eq!(cfg.segment_bytes, 128 * 1024);
    assert_eq!(s.folder("x"), PathBuf::from("/var/lib/gateway/spool"));
    assert!(toml::from_str::<SpoolSettings>("when_full = \"drop_newest\"").is_err());
    assert!(toml::from_str::<SpoolSettings>("max_bytes = \"12 parsecs\"").is_err());
}

#[test]
fn appends_are_written_out_once_the_oldest_has_waited_flush_every() {
    let dir = temp("flush");
    let mut g = Guarded {
        spool: Spool::open(&dir, SpoolConfig::default()).unwrap(),
        unsynced_since: None,
        unwritten_since: None,
    };
    let t0 = Instant::now();
    for (i, at) in [t0, t0 + FLUSH_EVERY / 2].into_iter().enumerate() {
        g.spool.append(format!("r{i}").as_bytes()).unwrap();
        g.flush_if_due(at);
    }
    assert_eq!(g.spool.unwritten(), 2, "held together");
    g.spool.append(b"r2").unwrap();
    g.flush_if_due(t0 + FLUSH_EVERY);
    assert_eq!(g.spool.unwritten(), 0, "written in one go");
    g.spool.append(b"r3").unwrap();
    g.unsynced_since = Some(t0);
    let (pending, since) = g.begin_sync().unwrap().expect("something to sync");
    assert_eq!((g.spool.unwritten(), g.unwritten_since, g.unsynced_since, since), (0, None, None, t0));
    pending.run().unwrap();
    assert!(g.begin_sync().unwrap().is_none(), "nothing appended since");
    drop(g);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn one_spool_per_folder_and_a_lock_file_left_behind_is_taken_over() {
    let dir = temp("lock");
    let a = SpoolHandle::open(&dir, SpoolConfig::default()).unwrap();
    let err = SpoolHandle::open(&dir, SpoolConfig::default()).err().unwrap();
    assert!(matches!(err, OpenError::InUse { .. }), "{err}");
    assert!(err.to_string().contains(&dir.display().to_string()), "{err}");
    drop(a);
    // The file of a process that is gone: no lock on it.
    std::fs::write(dir.join("lock"), "4000000000\n").unwrap();
    let b = SpoolHandle::open(&dir, SpoolConfig::default()).unwrap();
    let mut stop = watch::channel(false).1;
    assert_eq!(b.append(b"one".to_vec(), &mut stop).await.unwrap(), 1);
    drop(b);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn block_waits_for_room_and_gives_up_on_stop() {
    let dir = temp("block");
    // Records of 76 bytes (16 of header), one segment each: two fit in 200 bytes.
    let cfg =
        SpoolConfig { max_bytes: 200, when_full: WhenFull::Block, segment_bytes: 50, ..Default::default() };
    let spool = SpoolHandle::open(&dir, cfg).unwrap();
    let (stop_tx, mut stop) = watch::channel(false);
    let first = spool.append(vec![b'x'; 60], &mut stop).await.unwrap();
    spool.append(vec![b'x'; 60], &mut stop).await.unwrap();
    let waiting = {
        let spool = spool.clone();
        let mut stop = stop.clone();
        tokio::spawn(async move { spool.append(vec![b'y'; 60], &mut stop).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiting.is_finished(), "full: the appender waits");
    spool.ack_through(first).await.unwrap();
    let third = waiting.await.unwrap().unwrap();
    assert_eq!(third, 3, "room made by the acknowledgement");
    assert_eq!(spool.pending(), 2);
    assert_eq!(spool.counters().dropped_full, 0, "block never drops");
    stop_tx.send(true).unwrap();
    assert!(matches!(spool.append(vec![b'z'; 60], &mut stop).await, Err(SpoolError::Full { .. })));
    drop(spool);
    let _ = std::fs::remove_dir_all(&dir);
}
