//! The capture sink: upstream exchanges sampled for capture are written as JSON lines to
//! `{capture.path}/keygate-capture.jsonl`, rotated by size (`.1` is the newest rotated file).
//!
//! Records are queued to one writer thread per directory (a full queue drops the record and
//! counts it in `keygate_capture_dropped_total`; a request never waits for the disk). Before a
//! line is written, every secret value keygate knows (the admin key, every upstream key in the
//! secret cache) is replaced by `[REDACTED]`, on top of what the capture client already redacted
//! (credential headers, the call's own key).

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use keygate_plugin_api::{scrub, CaptureRecord, CaptureSink, ExposeSecret, SecretString};

use crate::config::CaptureConfig;
use crate::secrets::Secrets;

/// The capture file's name inside `capture.path`.
pub const FILE_NAME: &str = "keygate-capture.jsonl";
/// Records waiting for the writer before new ones are dropped.
const QUEUE: usize = 4096;

enum Message {
    Record(Box<CaptureRecord>),
    Flush(SyncSender<()>),
}

/// Secret values to take out of every line.
#[derive(Default)]
struct Known {
    secrets: Weak<Secrets>,
    admin_key: Option<SecretString>,
}

/// Writes captured exchanges to rotated JSON lines files.
pub struct FileSink {
    path: PathBuf,
    queue: SyncSender<Message>,
    known: Arc<Mutex<Known>>,
}

impl std::fmt::Debug for FileSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSink")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// The sink of `config.path`: the one already open (kept across reloads, so one thread owns a
/// directory), or a new one. The directory is created if missing.
pub fn sink_for(config: &CaptureConfig) -> io::Result<Arc<FileSink>> {
    static OPEN: OnceLock<Mutex<HashMap<PathBuf, Weak<FileSink>>>> = OnceLock::new();
    let open = OPEN.get_or_init(Default::default);
    let mut open = open
        .lock()
        .map_err(|_| io::Error::other("capture registry poisoned"))?;
    open.retain(|_, sink| sink.strong_count() > 0);
    if let Some(sink) = open.get(&config.path).and_then(Weak::upgrade) {
        return Ok(sink);
    }
    let sink = Arc::new(FileSink::open(config)?);
    open.insert(config.path.clone(), Arc::downgrade(&sink));
    Ok(sink)
}

impl FileSink {
    fn open(config: &CaptureConfig) -> io::Result<Self> {
        fs::create_dir_all(&config.path)?;
        let writer = Writer::open(
            config.path.join(FILE_NAME),
            config.max_file_bytes.max(1),
            config.max_files,
        )?;
        let (queue, rx) = mpsc::sync_channel(QUEUE);
        let known = Arc::new(Mutex::new(Known::default()));
        let thread_known = known.clone();
        std::thread::Builder::new()
            .name("keygate-capture".into())
            .spawn(move || writer.run(rx, &thread_known))?;
        Ok(Self {
            path: config.path.clone(),
            queue,
            known,
        })
    }

    /// Sets the secrets taken out of every line: the live state's cache and the admin key.
    pub fn know(&self, secrets: &Arc<Secrets>, admin_key: Option<&str>) {
        if let Ok(mut known) = self.known.lock() {
            known.secrets = Arc::downgrade(secrets);
            known.admin_key = admin_key
                .filter(|k| !k.is_empty())
                .map(|k| SecretString::from(k.to_owned()));
        }
    }

    /// Waits (up to `timeout`) until everything queued so far is written.
    pub fn flush(&self, timeout: Duration) {
        let (done, wait) = mpsc::sync_channel(1);
        if self.queue.send(Message::Flush(done)).is_ok() {
            let _ = wait.recv_timeout(timeout);
        }
    }
}

impl CaptureSink for FileSink {
    fn record(&self, record: CaptureRecord) {
        match self.queue.try_send(Message::Record(Box::new(record))) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                metrics::counter!("keygate_capture_dropped_total").increment(1);
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

/// The writer thread's file.
struct Writer {
    path: PathBuf,
    file: BufWriter<File>,
    size: u64,
    max_bytes: u64,
    max_files: usize,
}

impl Writer {
    fn open(path: PathBuf, max_bytes: u64, max_files: usize) -> io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let size = file.metadata()?.len();
        Ok(Self {
            path,
            file: BufWriter::new(file),
            size,
            max_bytes,
            max_files,
        })
    }

    fn run(mut self, rx: Receiver<Message>, known: &Mutex<Known>) {
        while let Ok(message) = rx.recv() {
            let mut next = Some(message);
            // Write everything already queued, then flush once.
            while let Some(message) = next.take() {
                match message {
                    Message::Record(record) => {
                        if let Err(err) = self.write(&record, known) {
                            tracing::warn!(path = %self.path.display(), error = %err, "cannot write a capture record");
                        }
                    }
                    Message::Flush(done) => {
                        let _ = self.file.flush();
                        let _ = done.send(());
                    }
                }
                next = rx.try_recv().ok();
            }
            let _ = self.file.flush();
        }
        let _ = self.file.flush();
    }

    fn write(&mut self, record: &CaptureRecord, known: &Mutex<Known>) -> io::Result<()> {
        let mut line = serde_json::to_string(record).map_err(io::Error::other)?;
        line = redact_known(line, known);
        line.push('\n');
        let len = line.len() as u64;
        if self.size > 0 && self.size + len > self.max_bytes {
            self.rotate()?;
        }
        self.file.write_all(line.as_bytes())?;
        self.size += len;
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file.flush()?;
        if self.max_files == 0 {
            fs::remove_file(&self.path)?;
        } else {
            let _ = fs::remove_file(numbered(&self.path, self.max_files));
            for n in (1..self.max_files).rev() {
                let from = numbered(&self.path, n);
                if from.exists() {
                    fs::rename(&from, numbered(&self.path, n + 1))?;
                }
            }
            fs::rename(&self.path, numbered(&self.path, 1))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.file = BufWriter::new(file);
        self.size = 0;
        Ok(())
    }
}

fn numbered(path: &Path, n: usize) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

fn redact_known(mut line: String, known: &Mutex<Known>) -> String {
    let Ok(known) = known.lock() else {
        return line;
    };
    if let Some(admin) = &known.admin_key {
        line = scrub(&line, admin.expose_secret());
    }
    if let Some(secrets) = known.secrets.upgrade() {
        for value in secrets.known_values() {
            line = scrub(&line, value.expose_secret());
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use keygate_plugin_api::CapturedMessage;

    use super::*;

    fn record(body: &str) -> CaptureRecord {
        CaptureRecord {
            id: "1".into(),
            started_unix_ms: 0,
            duration_ms: 1,
            backend: "openai".into(),
            model: "m".into(),
            key_name: Some("secret:K".into()),
            request: CapturedMessage {
                method: Some("POST".into()),
                url: Some("http://x/v1/chat/completions".into()),
                status: None,
                headers: Default::default(),
                body: body.into(),
                body_truncated_from: None,
            },
            response: None,
            complete: true,
            error: None,
        }
    }

    #[test]
    fn files_rotate_by_size_and_keep_max_files() {
        let dir = std::env::temp_dir().join(format!("kg-capture-{}", rand::random::<u64>()));
        let config = CaptureConfig {
            path: dir.clone(),
            sample: 1.0,
            max_file_bytes: 600,
            max_files: 2,
        };
        let sink = sink_for(&config).unwrap();
        assert!(Arc::ptr_eq(&sink, &sink_for(&config).unwrap()));
        for i in 0..20 {
            sink.record(record(&format!("request {i} {}", "x".repeat(100))));
        }
        sink.flush(Duration::from_secs(5));
        let current = fs::read_to_string(dir.join(FILE_NAME)).unwrap();
        assert!(current.contains("request 19"), "{current}");
        assert!(dir.join(format!("{FILE_NAME}.1")).exists());
        assert!(dir.join(format!("{FILE_NAME}.2")).exists());
        assert!(!dir.join(format!("{FILE_NAME}.3")).exists());
        for line in current.lines() {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(value["backend"], "openai");
        }
        drop(sink);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_admin_key_is_taken_out_of_every_line() {
        let dir = std::env::temp_dir().join(format!("kg-capture-{}", rand::random::<u64>()));
        let config = CaptureConfig {
            path: dir.clone(),
            sample: 1.0,
            max_file_bytes: 1 << 20,
            max_files: 1,
        };
        let sink = sink_for(&config).unwrap();
        let secrets = Secrets::new(
            Vec::new(),
            Arc::new(crate::config::ProcessEnv),
            &Default::default(),
        );
        sink.know(&secrets, Some("sk-admin-very-secret"));
        sink.record(record("echo sk-admin-very-secret back"));
        sink.flush(Duration::from_secs(5));
        let text = fs::read_to_string(dir.join(FILE_NAME)).unwrap();
        assert!(!text.contains("sk-admin-very-secret"), "{text}");
        assert!(text.contains("echo [REDACTED] back"), "{text}");
        drop(sink);
        fs::remove_dir_all(dir).unwrap();
    }
}
