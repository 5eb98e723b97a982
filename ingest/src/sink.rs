//! Where batches of line protocol go: an InfluxDB v2 write endpoint, or rotated files.
//!
//! `write` returns only once the batch is durable there (the server answered 204, or the file
//! is synced), because the caller acknowledges the MQTT messages right after. Each attempt's
//! duration goes into the histogram given with `timed_by` (`ingest_write_duration_seconds`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use influxdb2::api::write::TimestampPrecision;
use influxdb2::{Client, ClientBuilder, RequestError};

use crate::config::{FilesConfig, TsdbConfig};
use crate::metrics::WriteDuration;

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// We could not talk to the server, or it is unwell (5xx, 429): try again.
    #[error("TSDB unavailable: {0}")]
    Unavailable(String),
    /// The server refused the batch itself (4xx): retrying the same bytes will not help.
    #[error("TSDB rejected the batch: {0}")]
    Rejected(String),
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
}

impl SinkError {
    pub fn is_retryable(&self) -> bool {
        !matches!(self, SinkError::Rejected(_))
    }
}

/// Where readings are written.
pub enum Sink {
    Tsdb(Box<TsdbWriter>),
    /// Rotated line-protocol files (the embedded default).
    Files,
}

pub struct TsdbWriter {
    client: Client,
    org: String,
    bucket: String,
    gzip: bool,
    write_duration: WriteDuration,
}

impl TsdbWriter {
    pub fn new(cfg: &TsdbConfig) -> Result<TsdbWriter, String> {
        url_check(&cfg.url)?;
        let mut http = reqwest::Client::builder().timeout(cfg.timeout);
        if cfg.gzip {
            // influxdb2's line-protocol write sends the body as given; this client only writes,
            // so every request it makes carries a gzipped body.
            let mut headers = reqwest::header::HeaderMap::new();
            headers
                .insert(reqwest::header::CONTENT_ENCODING, reqwest::header::HeaderValue::from_static("gzip"));
            http = http.default_headers(headers);
        }
        let client = ClientBuilder::with_builder(http, &cfg.url, &cfg.org, &cfg.token)
            .build()
            .map_err(|e| format!("tsdb client: {e}"))?;
        let (org, bucket) = (cfg.org.clone(), cfg.bucket.clone());
        Ok(TsdbWriter { client, org, bucket, gzip: cfg.gzip, write_duration: WriteDuration::default() })
    }

    /// Observes every write's duration, failed ones included, into `histogram`.
    pub fn timed_by(self, histogram: WriteDuration) -> Self {
        TsdbWriter { write_duration: histogram, ..self }
    }

    pub async fn write(&self, body: &str) -> Result<(), SinkError> {
        let bytes = if self.gzip { gzip(body.as_bytes()) } else { body.as_bytes().to_vec() };
        let started = Instant::now();
        let result = self
            .client
            .write_line_protocol_with_precision(
                &self.org,
                &self.bucket,
                bytes,
                TimestampPrecision::Milliseconds,
            )
            .await;
        self.write_duration.observe(started.elapsed());
        match result {
            Ok(()) => Ok(()),
            // 5xx and 429: the server is unwell or busy. 401 and 403: a token problem an operator
            // fixes; the batch itself is fine, so keep it and retry rather than refuse it.
            Err(RequestError::Http { status, text })
                if status.is_server_error() || matches!(status.as_u16(), 401 | 403 | 429) =>
            {
                Err(SinkError::Unavailable(format!("{status}: {text}")))
            }
            Err(RequestError::Http { status, text }) => Err(SinkError::Rejected(format!("{status}: {text}"))),
            Err(e) => Err(SinkError::Unavailable(e.to_string())),
        }
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use flate2::write::GzEncoder;
    let mut encoder = GzEncoder::new(Vec::with_capacity(bytes.len() / 4), flate2::Compression::fast());
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(bytes);
    encoder.finish().unwrap_or_default()
}

/// `influxdb2::Client` panics on a URL it cannot parse; check first.
fn url_check(url: &str) -> Result<(), String> {
    let rest = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://"));
    match rest {
        Some(r) if !r.is_empty() && !r.starts_with('/') => Ok(()),
        _ => Err(format!("tsdb.url `{}` is not an http(s) URL with a host", crate::redact::redact(url))),
    }
}

/// Rotated line-protocol files: `readings-<UTC time>.lp`, a new one past `rotate_bytes` or
/// `rotate_every`.
pub struct LineFiles {
    cfg: FilesConfig,
    current: Option<(PathBuf, std::fs::File, SystemTime, u64)>,
    write_duration: WriteDuration,
}

impl LineFiles {
    pub fn new(cfg: &FilesConfig) -> Result<LineFiles, SinkError> {
        std::fs::create_dir_all(&cfg.dir).map_err(|source| io(&cfg.dir, source))?;
        Ok(LineFiles { cfg: cfg.clone(), current: None, write_duration: WriteDuration::default() })
    }

    /// Observes every write's duration, failed ones included, into `histogram`.
    pub fn timed_by(self, histogram: WriteDuration) -> Self {
        LineFiles { write_duration: histogram, ..self }
    }

    pub fn dir(&self) -> &Path {
        &self.cfg.dir
    }

    pub fn current_path(&self) -> Option<&Path> {
        self.current.as_ref().map(|(p, ..)| p.as_path())
    }

    pub fn write(&mut self, body: &str, now: SystemTime) -> Result<(), SinkError> {
        let started = Instant::now();
        let result = self.append(body, now);
        self.write_duration.observe(started.elapsed());
        result
    }

    fn append(&mut self, body: &str, now: SystemTime) -> Result<(), SinkError> {
        let rotate = match &self.current {
            None => true,
            Some((_, _, opened, bytes)) => {
                *bytes >= self.cfg.rotate_bytes
                    || now.duration_since(*opened).unwrap_or(Duration::ZERO) >= self.cfg.rotate_every
            }
        };
        if rotate {
            let stamp = humantime::format_rfc3339_millis(now).to_string().replace(':', "-");
            let path = self.cfg.dir.join(format!("readings-{stamp}.lp"));
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|e| io(&path, e))?;
            self.current = Some((path, file, now, 0));
        }
        let Some((path, file, _, bytes)) = self.current.as_mut() else { unreachable!("opened above") };
        file.write_all(body.as_bytes()).map_err(|e| io(path, e))?;
        file.sync_data().map_err(|e| io(path, e))?;
        *bytes += body.len() as u64;
        Ok(())
    }

    /// Keeps a batch the TSDB refused, so nothing acknowledged is lost.
    pub fn keep_rejected(&self, body: &str, why: &str) -> Result<PathBuf, SinkError> {
        let path = self.cfg.dir.join("rejected.lp");
        let mut file =
            std::fs::OpenOptions::new().create(true).append(true).open(&path).map_err(|e| io(&path, e))?;
        let comment = why.replace('\n', " ");
        write!(file, "# rejected: {comment}\n{body}").map_err(|e| io(&path, e))?;
        file.sync_data().map_err(|e| io(&path, e))?;
        Ok(path)
    }
}

fn io(path: &Path, source: std::io::Error) -> SinkError {
    SinkError::Io { path: path.display().to_string(), source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_rotate_by_size_and_age() {
        let dir = std::env::temp_dir().join(format!("ingest-files-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let cfg = FilesConfig { dir: dir.clone(), rotate_bytes: 10, rotate_every: Duration::from_secs(60) };
        let mut files = LineFiles::new(&cfg).unwrap();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        files.write("a 1\n", t0).unwrap();
        files.write("b 2\n", t0 + Duration::from_millis(1)).unwrap();
        let first = files.current_path().unwrap().to_path_buf();
        files.write("c 3\n", t0 + Duration::from_millis(2)).unwrap();
        assert_eq!(files.current_path().unwrap(), first, "8 bytes < 10: same file");
        files.write("d 4\n", t0 + Duration::from_millis(3)).unwrap();
        assert_ne!(files.current_path().unwrap(), first, "12 bytes: rotated");
        let second = files.current_path().unwrap().to_path_buf();
        files.write("e 5\n", t0 + Duration::from_secs(61)).unwrap();
        assert_ne!(files.current_path().unwrap(), second, "older than a minute: rotated");
        assert_eq!(std::fs::read_to_string(&first).unwrap(), "a 1\nb 2\nc 3\n");
        assert!(first
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("readings-2027-01-15T08-00-00.000Z"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn each_file_write_is_observed_in_the_write_duration_histogram() {
        let dir = tempfile::tempdir().unwrap();
        let cfg =
            FilesConfig { dir: dir.path().to_path_buf(), rotate_bytes: 1 << 20, rotate_every: Duration::MAX };
        let metrics = crate::metrics::Metrics::default();
        let mut files = LineFiles::new(&cfg).unwrap().timed_by(metrics.write_duration.clone());
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        files.write("a 1\n", t0).unwrap();
        files.write("b 2\n", t0).unwrap();
        let text = metrics.render(0);
        assert!(text.contains("\ningest_write_duration_seconds_count 2\n"), "{text}");
        let inf = "\ningest_write_duration_seconds_bucket{le=\"+Inf\"} 2\n";
        assert!(text.contains(inf), "{text}");
        let bounds: Vec<f64> = (text.lines())
            .filter_map(|l| l.strip_prefix("ingest_write_duration_seconds_bucket{le=\""))
            .filter_map(|l| l.split('"').next()?.parse().ok())
            .filter(|b: &f64| b.is_finite())
            .collect();
        assert_eq!(bounds, crate::metrics::WRITE_DURATION_BUCKETS, "{text}");
    }

    #[test]
    fn gzip_round_trips() {
        use std::io::Read;
        let body = "boiler,device=b1 p=1.0 1\n".repeat(100);
        let packed = gzip(body.as_bytes());
        assert!(packed.len() < body.len() / 5);
        let mut back = String::new();
        flate2::read::GzDecoder::new(&packed[..]).read_to_string(&mut back).unwrap();
        assert_eq!(back, body);
    }

    #[test]
    fn bad_urls_are_refused_before_the_client_can_panic() {
        for url in ["not a url", "localhost:8086", "http://"] {
            let cfg = TsdbConfig {
                url: url.into(),
                org: String::new(),
                bucket: "b".into(),
                token: String::new(),
                timeout: Duration::from_secs(1),
                gzip: true,
            };
            assert!(TsdbWriter::new(&cfg).is_err(), "{url}");
        }
    }
}
