//! The `kafka` tests' broker and client: tansu 0.6.0, built once by `scripts/setup-tansu` into
//! a cache and started on 127.0.0.1 on a free port, one broker per test (memory storage, or a
//! SQLite file where SCRAM users must be kept); the example messages keyed and with headers;
//! an independent client (rdkafka) that produces them and reads topics back; the quick start
//! pipeline fed by a `kafka` source. No broker is a failure, never a skip.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use super::checkpoints::PER_COPY;
use super::{free_port, messages, root, text};

/// tansu on 127.0.0.1, stopped when dropped.
pub struct Tansu {
    child: Child,
    pub bin: PathBuf,
    pub port: u16,
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The path of the tansu binary scripts/setup-tansu provides (built once into a cache).
pub fn tansu_bin() -> PathBuf {
    let out = Command::new(root().join("scripts/setup-tansu")).output().expect("scripts/setup-tansu runs");
    assert!(out.status.success(), "scripts/setup-tansu could not provide tansu: {}", text(&out.stderr));
    PathBuf::from(text(&out.stdout).trim())
}

/// Where a broker keeps topics, records, offsets and users.
#[derive(Clone, Copy)]
pub enum Storage<'a> {
    /// In memory (`memory://tansu/`): gone when the broker stops, and SCRAM users are not kept
    /// at all (tansu 0.6.0's memory storage accepts them and forgets them).
    Memory,
    /// `tansu.db` (SQLite) in this folder: kept across restarts, SCRAM users included.
    Sqlite(&'a Path),
}

impl Tansu {
    /// A broker with memory storage and no authentication, advertising its own address.
    pub fn start() -> Tansu {
        let port = free_port();
        Tansu::start_with(port, Storage::Memory, &format!("tcp://127.0.0.1:{port}"), false)
    }

    /// A broker on `port` with `storage`, advertising `advertised` (`tcp://host:port`: where
    /// metadata sends clients, a TLS terminator say), requiring SASL when `authentication`.
    pub fn start_with(port: u16, storage: Storage, advertised: &str, authentication: bool) -> Tansu {
        let bin = tansu_bin();
        let url = format!("tcp://127.0.0.1:{port}");
        let mut command = Command::new(&bin);
        let engine = match storage {
            Storage::Memory => "memory://tansu/",
            Storage::Sqlite(dir) => {
                // tansu opens `sqlite://NAME` relative to its working directory.
                command.current_dir(dir);
                "sqlite://tansu.db"
            }
        };
        command
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", advertised])
            .args(["--storage-engine", engine, "--cluster-id", "sluice-test"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if authentication {
            command.arg("--authentication");
        }
        let child = command.spawn().expect("tansu starts");
        let tansu = Tansu { child, bin, port };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "tansu did not listen on port {port} within 60 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        tansu
    }

    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `tansu ARGS --broker tcp://127.0.0.1:PORT`, which must succeed (the broker must not
    /// require SASL: tansu's own commands do not authenticate).
    fn command(&self, what: &str, args: &[&str]) {
        let out = Command::new(&self.bin)
            .args(args)
            .args(["--broker", &format!("tcp://127.0.0.1:{}", self.port)])
            .output()
            .unwrap();
        assert!(out.status.success(), "tansu {what}: {}", text(&out.stderr));
    }

    pub fn create_topic(&self, name: &str, partitions: u32) {
        self.command(
            &format!("topic create {name}"),
            &["topic", "create", name, "--partitions", &partitions.to_string()],
        );
    }

    /// Gives `user` the SCRAM credential for `password` with `mechanism` (`scram256`,
    /// `scram512`): kept only by [`Storage::Sqlite`].
    pub fn create_user(&self, user: &str, password: &str, mechanism: &str) {
        self.command(
            &format!("user create {user} --mechanism {mechanism}"),
            &["user", "create", user, password, "--mechanism", mechanism],
        );
    }
}

/// One input message: key, value (`None`: a tombstone), headers.
pub struct Msg {
    pub key: String,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, String)>,
}

/// The example messages (the checkpoint tests' input: 66 per copy, 39 delivered, 6 to the DLQ,
/// 21 filtered by the quick start), `copies` times, each with a unique control id (MSH-10
/// `K<n>`), keyed by its patient id (PID-3.1), with a trace header.
pub fn example_messages(copies: usize) -> Vec<Msg> {
    let mut one = Vec::new();
    for file in ["feed-2024-01-15.hl7", "rejects.hl7"] {
        one.extend(messages(&root().join("examples/hl7").join(file)));
    }
    assert_eq!(one.len() as u64, PER_COPY.0);
    let mut out = Vec::new();
    for copy in 0..copies {
        for (i, m) in one.iter().enumerate() {
            let n = copy * one.len() + i;
            let text = String::from_utf8_lossy(m).into_owned();
            let segments: Vec<String> = text
                .split('\r')
                .map(|s| {
                    if s.starts_with("MSH|") {
                        let mut f: Vec<&str> = s.split('|').collect();
                        let id = format!("K{n}");
                        if f.len() > 9 {
                            f[9] = &id;
                            return f.join("|");
                        }
                    }
                    s.to_string()
                })
                .collect();
            let key = text
                .split('\r')
                .find(|s| s.starts_with("PID|"))
                .and_then(|p| p.split('|').nth(3))
                .map(|cx| cx.split('^').next().unwrap_or_default().to_string())
                .unwrap_or_else(|| "none".to_string());
            out.push(Msg {
                key,
                value: Some(segments.join("\r").into_bytes()),
                headers: vec![("trace-id".into(), format!("t-{n}")), ("origin".into(), "ward-7".into())],
            });
        }
    }
    out
}

pub fn produce(brokers: &str, topic: &str, msgs: &[Msg]) {
    produce_with(&client(brokers), topic, msgs);
}

/// The test client's settings for `brokers` (plaintext); add security settings to it.
pub fn client(brokers: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", brokers);
    config
}

/// Produces `msgs` to `topic` with the client `config` ([`client`]).
pub fn produce_with(config: &ClientConfig, topic: &str, msgs: &[Msg]) {
    let producer: BaseProducer = config
        .clone()
        .set("enable.idempotence", "true")
        // One message per record batch: tansu 0.6.0's memory storage answers a fetch that
        // starts inside a batch with nothing (a consumer resuming from a committed offset
        // there would wait forever; Apache Kafka returns the batch). See docs/user-guide.md.
        .set("batch.num.messages", "1")
        .set("linger.ms", "0")
        .create()
        .expect("producer");
    for m in msgs {
        let mut headers = OwnedHeaders::new();
        for (k, v) in &m.headers {
            headers = headers.insert(Header { key: k, value: Some(v.as_bytes()) });
        }
        let mut record = BaseRecord::<str, [u8]>::to(topic).key(m.key.as_str()).headers(headers);
        if let Some(v) = &m.value {
            record = record.payload(v.as_slice());
        }
        let mut record = Some(record);
        while let Some(r) = record.take() {
            if let Err((_, r)) = producer.send(r) {
                producer.poll(Duration::from_millis(50));
                record = Some(r);
            }
        }
    }
    producer.flush(Duration::from_secs(60)).expect("the broker acknowledged the input");
}

/// A message read back: key, value, headers.
pub type Read = (Option<String>, String, Vec<(String, String)>);

/// Every message of `topic` (all partitions, from the start).
pub fn read_topic(brokers: &str, topic: &str, expect: usize) -> Vec<Read> {
    read_topic_with(&client(brokers), topic, expect)
}

/// Every message of `topic` (all partitions, from the start) read with the client `config`.
pub fn read_topic_with(config: &ClientConfig, topic: &str, expect: usize) -> Vec<Read> {
    let consumer: BaseConsumer = config
        .clone()
        .set("group.id", format!("reader-{topic}"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    // Read until `expect` messages came and a few seconds pass without another.
    let mut quiet_since = Instant::now();
    while Instant::now() < deadline && (out.len() < expect || quiet_since.elapsed() < Duration::from_secs(3)) {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                quiet_since = Instant::now();
                let headers = m
                    .headers()
                    .map(|h| {
                        h.iter().map(|h| (h.key.to_string(), text(h.value.unwrap_or_default()))).collect::<Vec<_>>()
                    })
                    .unwrap_or_default();
                out.push((m.key().map(text), text(m.payload().unwrap_or_default()), headers));
            }
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            None => {}
        }
    }
    out
}

/// Writes `pipelines/kafka.yaml` into `dir`: the quick start fed by a `kafka` source, with
/// `sinks` (YAML under `sinks:`) and its outputs under `out/`.
pub fn kafka_pipeline(dir: &Path, brokers: &str, topic: &str, group: &str, sinks: &str) -> PathBuf {
    let source = format!(
        "    type: kafka\n    brokers: {brokers}\n    topics: [{topic}]\n    group: {group}\n    session_timeout: 6s\n"
    );
    super::quickstart_fed_by(dir, "kafka", &source, sinks)
}
