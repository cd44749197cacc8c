//! The example configs in `config/` and the configuration errors reported by
//! `--check-config`: every error names the key and says what to do, exits 64, and never
//! echoes a secret.
//!
//! Nothing here mutates the process environment: the library gets an env lookup closure,
//! and the binary gets its environment through `Command::env`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::ErrorKind;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{self, AtomicUsize};
use std::time::{Duration, Instant};

use kafka_webhook_sidecar::config::interpolate::{interpolate, InterpolationError};
use kafka_webhook_sidecar::config::{Config, ConfigError, FailurePolicy, Format, Ordering};
use serde_yaml::Value;

#[path = "common/pki.rs"]
mod pki;

const BIN: &str = env!("CARGO_BIN_EXE_kafka-webhook-sidecar");
const EXIT_CONFIG: i32 = 64;

/// The variables the example configs use (`APP_TOKEN` is deliberately unset: it has a
/// default). `KAFKA_SASL_PASSWORD` is needed because substitution also runs inside
/// comments, and complete.yaml shows it in a commented example.
const EXAMPLE_ENV: &[(&str, &str)] = &[
    (
        "KAFKA_BOOTSTRAP_SERVERS",
        "kafka-0.kafka:9092,kafka-1.kafka:9092",
    ),
    ("KAFKA_SASL_PASSWORD", "not-a-real-password"),
    // config/signing.yaml (a Standard Webhooks secret: whsec_ + base64 of 24 bytes).
    ("WEBHOOK_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
    ("OAUTH_CLIENT_SECRET", "not-a-real-client-secret"),
];

fn lookup(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
    move |name| {
        vars.iter()
            .find(|(var, _)| *var == name)
            .map(|(_, value)| value.to_string())
    }
}

fn config_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config")
}

fn read_example(name: &str) -> String {
    let path = config_dir().join(name);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()))
}

fn parse_example(name: &str) -> Config {
    Config::from_yaml(&read_example(name), lookup(EXAMPLE_ENV))
        .unwrap_or_else(|error| panic!("config/{name}: {error}"))
}

/// Every `config/*.yaml`, sorted.
fn example_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(config_dir())
        .expect("config/ exists")
        .map(|entry| entry.expect("readable config/ entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    for expected in [
        "minimal.yaml",
        "complete.yaml",
        "dead-letter.yaml",
        "cloudevents.yaml",
        "signing.yaml",
    ] {
        assert!(
            files.iter().any(|path| path.ends_with(expected)),
            "config/{expected} is missing"
        );
    }
    files
}

/// Runs the binary with exactly the given environment (plus what the loader may need).
fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(BIN);
    command.args(args).env_clear();
    for inherited in ["PATH", "LD_LIBRARY_PATH", "DYLD_LIBRARY_PATH", "SYSTEMROOT"] {
        if let Some(value) = std::env::var_os(inherited) {
            command.env(inherited, value);
        }
    }
    command.envs(env.iter().copied());
    command.output().expect("the binary runs")
}

/// A config file under the temp dir, removed on drop.
struct TempConfig(PathBuf);

impl TempConfig {
    fn new(label: &str, text: Option<&str>) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let slug: String = label
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let path = std::env::temp_dir().join(format!(
            "kws-config-test-{}-{}-{slug}.yaml",
            std::process::id(),
            COUNTER.fetch_add(1, atomic::Ordering::Relaxed)
        ));
        if let Some(text) = text {
            std::fs::write(&path, text).expect("write temp config");
        }
        TempConfig(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("temp path is UTF-8")
    }
}

impl Drop for TempConfig {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Key paths (`delivery.retry.max_backoff`) of every mapping key in `value`.
fn key_paths(value: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    if let Value::Mapping(map) = value {
        for (key, child) in map {
            let key = key.as_str().expect("string keys");
            let path = if prefix.is_empty() {
                key.to_string()
            } else {
                format!("{prefix}.{key}")
            };
            out.insert(path.clone());
            key_paths(child, &path, out);
        }
    }
}

/// Leaf values by key path; sequences are leaves.
fn leaves(value: &Value, prefix: &str, out: &mut BTreeMap<String, Value>) {
    match value {
        Value::Mapping(map) if !map.is_empty() => {
            for (key, child) in map {
                let key = key.as_str().expect("string keys");
                let path = if prefix.is_empty() {
                    key.to_string()
                } else {
                    format!("{prefix}.{key}")
                };
                leaves(child, &path, out);
            }
        }
        _ => {
            out.insert(prefix.to_string(), value.clone());
        }
    }
}

// ---------------------------------------------------------------------------------------
// The example configs.

#[test]
fn every_example_parses_and_validates() {
    for path in example_files() {
        let text = std::fs::read_to_string(&path).unwrap();
        if let Err(error) = Config::from_yaml(&text, lookup(EXAMPLE_ENV)) {
            panic!("{}: {error}", path.display());
        }
    }
}

/// The files an example config refers to (TLS certificates and key, a token file), made
/// under the temp dir, and the example's text pointing at them instead: `--check-config`
/// reads them. Text without such files comes back unchanged.
fn with_real_files(text: &str) -> String {
    let config = Config::from_yaml(text, lookup(EXAMPLE_ENV)).expect("example parses");
    let ca = pki::Ca::new("example CA");
    let client = ca.client("example-client");
    let tls = &config.delivery.tls;
    let auth = &config.delivery.auth;
    let files = [
        (&tls.ca_file, ca.pem.as_str()),
        (&tls.cert_file, client.cert_pem.as_str()),
        (&tls.key_file, client.key_pem.as_str()),
        (&auth.bearer_token_file, "example-token"),
    ];
    let mut text = text.to_string();
    for (path, content) in files {
        if let Some(path) = path {
            text = text.replace(path.as_str(), &pki::temp_file("example-file", content));
        }
    }
    text
}

#[test]
fn every_example_passes_check_config_in_the_binary() {
    for path in example_files() {
        let example = std::fs::read_to_string(&path).unwrap();
        let text = with_real_files(&example);
        let file = (text != example).then(|| TempConfig::new("example", Some(&text)));
        let path = match &file {
            Some(file) => file.path().to_string(),
            None => path.to_str().unwrap().to_string(),
        };
        let path = path.as_str();
        let output = run(&["--config", path, "--check-config"], EXAMPLE_ENV);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{path}: stdout {stdout:?} stderr {stderr:?}"
        );
        assert!(
            stdout.contains(path) && stdout.contains("is valid"),
            "{path}: stdout {stdout:?}"
        );
    }
}

#[test]
fn examples_take_their_variables_from_the_lookup_only() {
    // Whatever the process environment holds, an empty lookup leaves the variable unset.
    let error = Config::from_yaml(&read_example("minimal.yaml"), |_| None).unwrap_err();
    assert_eq!(
        error,
        ConfigError::Interpolation(InterpolationError::Unset {
            line: 4,
            name: "KAFKA_BOOTSTRAP_SERVERS".into()
        })
    );
    let config = parse_example("minimal.yaml");
    assert_eq!(
        config.kafka.bootstrap_servers,
        "kafka-0.kafka:9092,kafka-1.kafka:9092"
    );
}

#[test]
fn minimal_has_only_required_keys() {
    let text = read_example("minimal.yaml");
    let raw: Value = serde_yaml::from_str(&text).unwrap();
    let mut paths = BTreeMap::new();
    leaves(&raw, "", &mut paths);
    let paths: Vec<&str> = paths.keys().map(String::as_str).collect();
    assert_eq!(
        paths,
        [
            "delivery.url",
            "kafka.bootstrap_servers",
            "kafka.group_id",
            "kafka.topics"
        ]
    );
    // Each of them is needed: without it the config does not load.
    for path in paths {
        let (section, key) = path.split_once('.').unwrap();
        let mut reduced = raw.clone();
        reduced[section].as_mapping_mut().unwrap().remove(key);
        let reduced = serde_yaml::to_string(&reduced).unwrap();
        assert!(
            Config::from_yaml(&reduced, lookup(EXAMPLE_ENV)).is_err(),
            "minimal.yaml loads without {path}"
        );
    }
}

/// complete.yaml must name every key the config structs have: a key added to a struct and
/// not to complete.yaml fails here.
#[test]
fn complete_sets_every_key() {
    let text = read_example("complete.yaml");
    let config = parse_example("complete.yaml");
    let mut struct_keys = BTreeSet::new();
    key_paths(
        &serde_yaml::to_value(&config).unwrap(),
        "",
        &mut struct_keys,
    );

    let substituted = interpolate(&text, lookup(EXAMPLE_ENV)).unwrap();
    let written: Value = serde_yaml::from_str(&substituted).unwrap();
    let mut written_keys = BTreeSet::new();
    key_paths(&written, "", &mut written_keys);

    let missing: Vec<&String> = struct_keys.difference(&written_keys).collect();
    assert!(
        missing.is_empty(),
        "config/complete.yaml lacks {missing:?}; add each with its default and a comment"
    );
    // Sanity check of the walk itself.
    for key in [
        "kafka.properties",
        "delivery.retry.retryable_statuses",
        "delivery.dead_letter_topic",
        "shutdown.termination_grace_period",
        "admin.listen",
        "log.level",
    ] {
        assert!(struct_keys.contains(key), "{key} not found by the walk");
    }
}

/// complete.yaml writes each default: it loads to the same values as minimal.yaml (whose
/// required keys it shares), except for its example Authorization header.
#[test]
fn complete_writes_the_defaults() {
    let complete = serde_yaml::to_value(parse_example("complete.yaml")).unwrap();
    let mut expected = serde_yaml::to_value(parse_example("minimal.yaml")).unwrap();
    let mut headers = serde_yaml::Mapping::new();
    // APP_TOKEN is unset, so `Bearer ${APP_TOKEN:-}` gives "Bearer ".
    headers.insert("Authorization".into(), "Bearer ".into());
    expected["delivery"]
        .as_mapping_mut()
        .unwrap()
        .insert("headers".into(), Value::Mapping(headers));

    let mut want = BTreeMap::new();
    leaves(&expected, "", &mut want);
    let mut got = BTreeMap::new();
    leaves(&complete, "", &mut got);
    let differences: Vec<String> = want
        .keys()
        .chain(got.keys())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter(|key| want.get(*key) != got.get(*key))
        .map(|key| {
            format!(
                "{key}: default {:?}, complete.yaml {:?}",
                want.get(key),
                got.get(key)
            )
        })
        .collect();
    assert!(
        differences.is_empty(),
        "config/complete.yaml differs from the defaults:\n{}",
        differences.join("\n")
    );
    // The retryable statuses are written exactly as the defaults render them.
    assert!(read_example("complete.yaml")
        .contains(r#"retryable_statuses: [408, 425, 429, 500, "502-599"]"#));
}

/// Every key line of complete.yaml has a comment line right above it.
#[test]
fn complete_comments_every_key() {
    let text = read_example("complete.yaml");
    let lines: Vec<&str> = text.lines().collect();
    let mut uncommented = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let is_key = !trimmed.is_empty() && !trimmed.starts_with('#') && trimmed.contains(':');
        let commented = index > 0 && lines[index - 1].trim_start().starts_with('#');
        if is_key && !commented {
            uncommented.push(format!("line {}: {line}", index + 1));
        }
    }
    assert!(
        uncommented.is_empty(),
        "keys without a comment in config/complete.yaml:\n{}",
        uncommented.join("\n")
    );
}

#[test]
fn dead_letter_example() {
    let config = parse_example("dead-letter.yaml");
    let delivery = &config.delivery;
    assert_eq!(delivery.ordering, Ordering::Key);
    assert!(delivery.max_in_flight > 1);
    assert_eq!(
        config.settings().unwrap().delivery.in_flight_cap,
        delivery.max_in_flight
    );
    assert_eq!(delivery.retry.max_attempts, 5);
    assert_eq!(delivery.on_failure, FailurePolicy::DeadLetter);
    let topic = delivery
        .dead_letter_topic
        .as_ref()
        .expect("dead_letter_topic");
    assert!(!config.kafka.topics.contains(topic));

    // Pointing it at the consumed topic is refused, naming the key.
    let looped = read_example("dead-letter.yaml").replace(
        "dead_letter_topic: orders.dead-letter",
        "dead_letter_topic: orders",
    );
    match Config::from_yaml(&looped, lookup(EXAMPLE_ENV)) {
        Err(ConfigError::Invalid { key, .. }) => assert_eq!(key, "delivery.dead_letter_topic"),
        other => panic!("expected delivery.dead_letter_topic to be refused, got {other:?}"),
    }
}

#[test]
fn cloudevents_example() {
    let config = parse_example("cloudevents.yaml");
    assert_eq!(config.delivery.format, Format::CloudeventsStructured);
    let settings = config.settings().unwrap();
    assert_eq!(
        settings.delivery.format.cloudevents.event_type,
        "com.example.order.changed"
    );
    assert!(settings.delivery.format.signing.is_empty());
}

#[test]
fn signing_example() {
    let config = parse_example("signing.yaml");
    let settings = config.settings().unwrap();
    assert_eq!(settings.delivery.format.signing.len(), 1);
    assert_eq!(settings.delivery.format.format, Format::Raw);
    // The secret comes from the environment: without it the example does not load.
    let error = Config::from_yaml(&read_example("signing.yaml"), |name| {
        (name == "KAFKA_BOOTSTRAP_SERVERS").then(|| "k:9092".to_string())
    })
    .unwrap_err();
    assert!(error.to_string().contains("WEBHOOK_SECRET"), "{error}");
    // Neither Debug of the config nor of the settings shows it.
    let secret = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    assert!(!format!("{config:?}").contains(secret));
    assert!(!format!("{settings:?}").contains(secret));
}

// ---------------------------------------------------------------------------------------
// Errors through the binary.

/// A valid config whose last section is `delivery`, so appended indented lines land there.
const BASE: &str = "\
kafka:
  bootstrap_servers: 127.0.0.1:9092
  group_id: orders-webhook
  topics: [orders]
delivery:
  url: http://127.0.0.1:8080/events
";

/// BASE with `lines` added to `delivery` (indented two spaces) or, unindented, as sections.
fn with(lines: &str) -> String {
    format!("{BASE}{lines}")
}

/// BASE with `lines` added to `kafka`.
fn with_kafka(lines: &str) -> String {
    BASE.replace(
        "  topics: [orders]\n",
        &format!("  topics: [orders]\n{lines}"),
    )
}

/// BASE with an https:// URL and `lines` added to `delivery`.
fn https_with(lines: &str) -> String {
    with(lines).replace("http://127.0.0.1:8080", "https://127.0.0.1:8443")
}

/// BASE with one piece of text replaced.
fn replacing(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "{from:?} is not in BASE");
    BASE.replace(from, to)
}

struct Case {
    name: &'static str,
    /// `None`: the file does not exist.
    yaml: Option<String>,
    env: &'static [(&'static str, &'static str)],
    code: i32,
    stderr: &'static [&'static str],
    stdout: &'static [&'static str],
    /// Secrets and other text that must not appear in stdout or stderr.
    absent: &'static [&'static str],
}

impl Case {
    fn error(name: &'static str, yaml: String, stderr: &'static [&'static str]) -> Case {
        Case {
            name,
            yaml: Some(yaml),
            env: &[],
            code: EXIT_CONFIG,
            stderr,
            stdout: &[],
            absent: &[],
        }
    }

    fn valid(name: &'static str, yaml: String) -> Case {
        Case {
            name,
            yaml: Some(yaml),
            env: &[],
            code: 0,
            stderr: &[],
            stdout: &["is valid"],
            absent: &[],
        }
    }

    fn env(self, env: &'static [(&'static str, &'static str)]) -> Case {
        Case { env, ..self }
    }

    fn absent(self, absent: &'static [&'static str]) -> Case {
        Case { absent, ..self }
    }
}

fn cases() -> Vec<Case> {
    vec![
        Case::valid("valid config", BASE.to_string()),
        Case::error(
            "not YAML at all",
            "kafka: {bootstrap_servers: \"unterminated\n".to_string(),
            &["unexpected end of stream", "line 2", "quoted scalar"],
        ),
        Case::error(
            "tab indentation",
            "kafka:\n\tbootstrap_servers: x\n".to_string(),
            // No line number in this one (see the report).
            &["cannot start any token"],
        ),
        Case::error("empty file", String::new(), &["missing field `kafka`"]),
        Case::error(
            "unknown top-level key",
            with("kafak:\n  group_id: x\n"),
            &[
                "unknown field `kafak`",
                "expected one of",
                "`kafka`",
                "line 7",
            ],
        ),
        Case::error(
            "unknown nested key delivery.retries",
            with("  retries: 3\n"),
            &["delivery", "unknown field `retries`", "`retry`", "line 7"],
        ),
        Case::error(
            "missing delivery.url",
            replacing("  url: http://127.0.0.1:8080/events\n", "  method: POST\n"),
            &["delivery", "missing field `url`"],
        ),
        Case::error(
            "empty url",
            replacing("http://127.0.0.1:8080/events", "\"\""),
            &[
                "`delivery.url`",
                "is missing",
                "http://127.0.0.1:8080/events",
            ],
        ),
        Case::error(
            "url with ftp scheme",
            replacing("http://127.0.0.1:8080/events", "ftp://127.0.0.1/events"),
            &["`delivery.url`", "must start with http:// or https://"],
        ),
        Case::error(
            "url with credentials",
            replacing("http://127.0.0.1:8080/events", "http://user:pass@host/"),
            &[
                "`delivery.url`",
                "must not carry credentials",
                "delivery.headers",
            ],
        )
        .absent(&["pass"]),
        Case::error(
            "url with credentials from the environment",
            replacing(
                "http://127.0.0.1:8080/events",
                "http://user:${WEBHOOK_PASSWORD}@host/",
            ),
            &["`delivery.url`", "must not carry credentials"],
        )
        .env(&[("WEBHOOK_PASSWORD", "hunter2")])
        .absent(&["hunter2"]),
        Case::error(
            "url that is not a URL",
            replacing("http://127.0.0.1:8080/events", "\"http://exa mple/\""),
            &[
                "`delivery.url`",
                "not a valid URL",
                "http://127.0.0.1:8080/events",
            ],
        ),
        Case::error(
            "unset variable",
            replacing("http://127.0.0.1:8080/events", "${NOPE}"),
            &["`NOPE`", "line 6", "is not set", "${NOPE:-default}"],
        ),
        Case::valid(
            "unset variable with a default",
            replacing(
                "http://127.0.0.1:8080/events",
                "${NOPE:-http://127.0.0.1:8080/events}",
            ),
        ),
        Case::valid(
            "variable from the environment",
            replacing("http://127.0.0.1:8080/events", "${WEBHOOK_URL}"),
        )
        .env(&[("WEBHOOK_URL", "https://hooks.example.com/orders")]),
        Case::error(
            "unclosed variable",
            replacing("http://127.0.0.1:8080/events", "${WEBHOOK_URL"),
            &["line 6", "not closed", "$$"],
        ),
        Case::error(
            "max_backoff below initial_backoff",
            with("  retry:\n    initial_backoff: 5s\n    max_backoff: 1s\n"),
            &[
                "`delivery.retry.max_backoff`",
                "(1s)",
                "initial_backoff (5s)",
                "raise max_backoff or lower initial_backoff",
            ],
        ),
        Case::error(
            "drain_timeout equal to termination_grace_period",
            with("shutdown:\n  drain_timeout: 30s\n  termination_grace_period: 30s\n"),
            &[
                "`shutdown.drain_timeout`",
                "(30s) must be shorter than shutdown.termination_grace_period (30s)",
                "terminationGracePeriodSeconds",
            ],
        ),
        Case::error(
            "max_in_flight 0",
            with("  ordering: none\n  max_in_flight: 0\n"),
            &["`delivery.max_in_flight`", "between 1 and 10000"],
        ),
        Case::error(
            "dead_letter without dead_letter_topic",
            with("  on_failure: dead_letter\n"),
            &[
                "`delivery.dead_letter_topic`",
                "is required when on_failure is dead_letter",
            ],
        ),
        Case::error(
            "dead_letter_topic is a consumed topic",
            with("  on_failure: dead_letter\n  dead_letter_topic: orders\n"),
            &[
                "`delivery.dead_letter_topic`",
                "consumed topic",
                "loop back",
            ],
        ),
        Case::error(
            "fetch_linger above 1s",
            with_kafka("  fetch_linger: 2s\n"),
            &["`kafka.fetch_linger`", "at most 1s", "added to the latency"],
        ),
        Case::valid("fetch_linger of a few ms", with_kafka("  fetch_linger: 5ms\n")),
        Case::error(
            "duration without unit",
            with_kafka("  session_timeout: 10\n"),
            // Names the section only, not `session_timeout` (see the report).
            &["kafka", "`10` has no unit", "`10s`"],
        ),
        Case::error(
            "duration with unknown unit",
            with("  timeout: 10 parsecs\n"),
            &["delivery", "unknown unit `parsecs`", "ms, s, m or h"],
        ),
        Case::error(
            "bad ordering",
            with("  ordering: fifo\n"),
            &[
                "delivery.ordering",
                "unknown variant `fifo`",
                "`partition`, `key`, `none`",
            ],
        ),
        Case::error(
            "bad on_failure",
            with("  on_failure: dead-letter\n"),
            &[
                "delivery.on_failure",
                "unknown variant `dead-letter`",
                "`dead_letter`",
            ],
        ),
        Case::error(
            "retryable 2xx range",
            with("  retry:\n    retryable_statuses: [\"200-299\"]\n"),
            &[
                "`delivery.retry.retryable_statuses`",
                "200-299 includes 2xx",
            ],
        ),
        Case::error(
            "retryable status 700",
            with("  retry:\n    retryable_statuses: [\"700\"]\n"),
            &["delivery.retry.retryable_statuses", "700", "100-599"],
        ),
        Case::error(
            "retryable status that is no status",
            with("  retry:\n    retryable_statuses: [1.5]\n"),
            // Names the key, but not what is wrong (see the report).
            &["delivery.retry.retryable_statuses"],
        ),
        Case::error(
            "batch of zero records",
            with("  batch:\n    max_records: 0\n"),
            &["`delivery.batch.max_records`", "between 1 and 10000"],
        ),
        Case::error(
            "batch max_bytes below 1 KiB",
            with("  batch:\n    max_bytes: 100\n"),
            &["`delivery.batch.max_bytes`", "between 1024"],
        ),
        Case::error(
            "ndjson batch with CloudEvents",
            with("  format: cloudevents-structured\n  batch:\n    encoding: ndjson\n"),
            &["`delivery.batch.encoding`", "CloudEvents JSON batch"],
        ),
        Case::error(
            "unknown batch key",
            with("  batch:\n    size: 10\n"),
            &["delivery.batch", "unknown field `size`"],
        ),
        Case::error(
            "empty topics",
            replacing("[orders]", "[]"),
            &["`kafka.topics`", "is empty", "at least one topic"],
        ),
        Case::error(
            "invalid topic name",
            replacing("[orders]", "[\"orders!\"]"),
            &["`kafka.topics`", "`orders!`", "not a valid topic name"],
        ),
        Case::error(
            "reserved librdkafka property",
            with_kafka("  properties:\n    enable.auto.commit: \"true\"\n"),
            &[
                "`kafka.properties.enable.auto.commit`",
                "managed by the sidecar",
                "remove it",
            ],
        ),
        Case::valid(
            "unquoted numeric librdkafka property",
            with_kafka("  properties:\n    fetch.min.bytes: 1\n"),
        ),
        Case::error(
            "bad admin.listen",
            with("admin:\n  listen: 9464\n"),
            &["`admin.listen`", "0.0.0.0:9464"],
        ),
        Case::error(
            "bad log.level",
            with("log:\n  level: kafka_webhook_sidecar=loud\n"),
            &["`log.level`", "error, warn, info, debug, trace"],
        ),
        Case::error(
            "bad log.format",
            with("log:\n  format: yaml\n"),
            &["log.format", "unknown variant `yaml`", "`json` or `text`"],
        ),
        Case::error(
            "bad HTTP method",
            with("  method: \"P O S T\"\n"),
            &["`delivery.method`", "use POST"],
        ),
        Case::error(
            "bad header name",
            with("  headers:\n    \"Bad Header\": x\n"),
            &[
                "`delivery.headers.Bad Header`",
                "not a valid HTTP header name",
            ],
        ),
        Case::error(
            "secret header value with a newline",
            // `\n` in a double-quoted YAML string is a newline.
            with("  headers:\n    Authorization: \"Bearer ${APP_TOKEN}\"\n"),
            &[
                "`delivery.headers.Authorization`",
                "not allowed in an HTTP header",
            ],
        )
        .env(&[("APP_TOKEN", "s3cr3t\\nx")])
        .absent(&["s3cr3t"]),
        Case::error(
            "secret header value breaking the YAML",
            with("  headers:\n    Authorization: Bearer ${APP_TOKEN}\n"),
            &["line"],
        )
        .env(&[("APP_TOKEN", "s3cr3t\nx")])
        .absent(&["s3cr3t"]),
        Case::valid(
            "cloudevents-binary format with two signing secrets",
            with("  format: cloudevents-binary\n  signing:\n    secrets: [\"${S1}\", \"${S2}\"]\n"),
        )
        .env(&[
            ("S1", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            ("S2", "whsec_QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo="),
        ]),
        Case::error(
            "bad format",
            with("  format: cloudevents\n"),
            &[
                "delivery.format",
                "unknown variant `cloudevents`",
                "`raw`, `cloudevents-binary`, `cloudevents-structured`",
            ],
        ),
        Case::error(
            "malformed signing secret",
            with("  signing:\n    secrets: [\"${S1}\", \"${S2}\"]\n"),
            &[
                "`delivery.signing.secrets[1]`",
                "not a Standard Webhooks secret",
                "whsec_",
            ],
        )
        .env(&[
            ("S1", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            ("S2", "whsec_dG9vLXNob3J0LXMzY3IzdA=="),
        ])
        .absent(&["dG9vLXNob3J0LXMzY3IzdA", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]),
        Case::error(
            "signing secret without the whsec_ prefix",
            with("  signing:\n    secrets: [\"${S1}\"]\n"),
            &["`delivery.signing.secrets[0]`", "whsec_"],
        )
        .env(&[("S1", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")])
        .absent(&["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]),
        Case::error(
            "missing signing secrets file",
            with("  signing:\n    secrets_file: /nonexistent/kws/secrets\n"),
            &[
                "`delivery.signing.secrets_file`",
                "cannot read /nonexistent/kws/secrets",
            ],
        ),
        Case::error(
            "static Content-Type with structured CloudEvents",
            with("  format: cloudevents-structured\n  headers:\n    Content-Type: text/plain\n"),
            &[
                "`delivery.headers.Content-Type`",
                "CloudEvents content type",
            ],
        ),
        Case::error(
            "static webhook-signature header while signing",
            with("  headers:\n    webhook-signature: x\n  signing:\n    secrets: [\"${S1}\"]\n"),
            &["`delivery.headers.webhook-signature`", "delivery.signing"],
        )
        .env(&[("S1", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")])
        .absent(&["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]),
        Case::error(
            "empty CloudEvents type",
            with("  cloudevents:\n    type: \"\"\n"),
            &["`delivery.cloudevents.type`", "non-empty"],
        ),
        Case::valid(
            "unix socket",
            with("  unix_socket: /var/run/app/webhook.sock\n"),
        ),
        Case::error(
            "unix socket with https",
            https_with("  unix_socket: /var/run/app/webhook.sock\n"),
            &["`delivery.url`", "must be http:// with delivery.unix_socket"],
        ),
        Case::error(
            "unix socket relative",
            with("  unix_socket: app/webhook.sock\n"),
            &["`delivery.unix_socket`", "must be an absolute path"],
        ),
        Case::error(
            "unix socket empty",
            with("  unix_socket: \"  \"\n"),
            &["`delivery.unix_socket`", "is empty"],
        ),
        Case::error(
            "unix socket too long",
            with(&format!("  unix_socket: /{}.sock\n", "s".repeat(110))),
            &["`delivery.unix_socket`", "longer than a Unix socket address allows"],
        ),
        Case::error(
            "tls on a plain http endpoint",
            with("  tls:\n    ca_file: /etc/kws/ca.crt\n"),
            &["`delivery.tls`", "applies to https:// only"],
        ),
        Case::error(
            "client certificate without key",
            https_with("  tls:\n    cert_file: /etc/kws/tls.crt\n"),
            &["`delivery.tls.key_file`", "is required with delivery.tls.cert_file"],
        ),
        Case::error(
            "bad server_name",
            https_with("  tls:\n    server_name: \"not a host!\"\n"),
            &["`delivery.tls.server_name`", "not a DNS name"],
        ),
        Case::error(
            "unreadable ca_file",
            https_with("  tls:\n    ca_file: /nonexistent/kws/ca.crt\n"),
            &[
                "`delivery.tls.ca_file`",
                "cannot read /nonexistent/kws/ca.crt",
                "fix the path",
            ],
        ),
        Case::error(
            "missing bearer token file",
            with("  auth:\n    bearer_token_file: /nonexistent/kws/token\n"),
            &["`delivery.auth.bearer_token_file`", "cannot read"],
        ),
        Case::error(
            "bearer token file and an Authorization header",
            with("  headers:\n    Authorization: Bearer s3cr3t\n  auth:\n    bearer_token_file: /nonexistent/kws/token\n"),
            &["`delivery.auth.bearer_token_file`", "delivery.headers.Authorization"],
        )
        .absent(&["s3cr3t"]),
        Case::error(
            "oauth2 token_url over plain http",
            with("  auth:\n    oauth2:\n      token_url: http://auth.example.com/token\n      client_id: orders\n      client_secret: ${OAUTH_CLIENT_SECRET}\n"),
            &["`delivery.auth.oauth2.token_url`", "must be https://", "loopback"],
        )
        .env(&[("OAUTH_CLIENT_SECRET", "cl1ent-s3cret")])
        .absent(&["cl1ent-s3cret"]),
        Case::error(
            "oauth2 without client_secret",
            with("  auth:\n    oauth2:\n      token_url: https://auth.example.com/token\n      client_id: orders\n"),
            &["delivery.auth", "missing field `client_secret`"],
        ),
        Case::error(
            "oauth2 and a bearer token file",
            with("  auth:\n    bearer_token_file: /nonexistent/kws/token\n    oauth2:\n      token_url: https://auth.example.com/token\n      client_id: orders\n      client_secret: cl1ent-s3cret\n"),
            &["`delivery.auth.oauth2`", "conflicts with delivery.auth.bearer_token_file"],
        )
        .absent(&["cl1ent-s3cret"]),
        Case::error(
            "route rule with a CEL syntax error",
            with("routes:\n  - name: orders\n    rules:\n      - match: 'ce.type == '\n        path: /created\n"),
            &["`routes[orders].rules[0].match`", "CEL syntax error at line 1, column 12"],
        ),
        Case::error(
            "route filter naming an unknown variable",
            with("routes:\n  - name: orders\n    filter: 'header[\"env\"] != \"test\"'\n"),
            &["`routes[orders].filter`", "`header`", "use one of topic, partition"],
        ),
        Case::error(
            "route delivery with a bad value",
            with("routes:\n  - name: audit\n    delivery:\n      url: ftp://audit/in\n"),
            &["`routes[audit].delivery.url`"],
        ),
        Case::error(
            "topic read by no route",
            with_kafka("").replace("topics: [orders]", "topics: [orders, users]")
                + "routes:\n  - name: orders\n    topics: [orders]\n",
            &["no route reads kafka.topics `users`"],
        ),
        Case {
            name: "missing config file",
            yaml: None,
            env: &[],
            code: EXIT_CONFIG,
            stderr: &["cannot read config file", "kws-config-test-"],
            stdout: &[],
            absent: &[],
        },
    ]
}

#[test]
fn config_errors_table() {
    let mut failures = Vec::new();
    for case in cases() {
        let file = TempConfig::new(case.name, case.yaml.as_deref());
        let output = run(&["--config", file.path(), "--check-config"], case.env);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let mut problems = Vec::new();
        if output.status.code() != Some(case.code) {
            problems.push(format!(
                "exit {:?}, expected {}",
                output.status.code(),
                case.code
            ));
        }
        for needle in case.stderr {
            if !stderr.contains(needle) {
                problems.push(format!("stderr lacks {needle:?}"));
            }
        }
        for needle in case.stdout {
            if !stdout.contains(needle) {
                problems.push(format!("stdout lacks {needle:?}"));
            }
        }
        for needle in case.absent {
            if stderr.contains(needle) || stdout.contains(needle) {
                problems.push(format!("output contains {needle:?}"));
            }
        }
        if case.code == EXIT_CONFIG {
            if !stderr.starts_with("error: ") || !stdout.is_empty() {
                problems.push("expected only an `error: …` on stderr".to_string());
            }
            // The file is named on a read error only; a parse error is about the file given.
            if case.yaml.is_none() && !stderr.contains(file.path()) {
                problems.push("stderr does not name the path".to_string());
            }
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{}: {}\n  stdout: {stdout:?}\n  stderr: {stderr:?}",
                case.name,
                problems.join("; ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// `--check-config` validates only: it neither contacts the brokers or the endpoint nor
/// binds the admin port.
#[test]
fn check_config_does_not_connect() {
    // Port 1: nothing listens, so a connection attempt would hang or fail.
    let closed = Config::new("127.0.0.1:1", "g", &["orders"], "http://127.0.0.1:1/").to_yaml();
    // Listeners that would see any connection, and an admin address already taken.
    let broker = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut watched = Config::new(
        &broker.local_addr().unwrap().to_string(),
        "g",
        &["orders"],
        &format!("http://{}/", endpoint.local_addr().unwrap()),
    );
    watched.admin.listen = taken.local_addr().unwrap().to_string();
    let watched = watched.to_yaml();
    for (label, text) in [("closed ports", closed), ("listeners", watched)] {
        let file = TempConfig::new(label, Some(&text));
        let started = Instant::now();
        let output = run(&["--config", file.path(), "--check-config"], &[]);
        let elapsed = started.elapsed();
        assert_eq!(
            output.status.code(),
            Some(0),
            "{label}: stderr {:?}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            elapsed < Duration::from_secs(10),
            "{label}: --check-config took {elapsed:?}"
        );
    }
    for (name, listener) in [("broker", &broker), ("endpoint", &endpoint)] {
        listener.set_nonblocking(true).unwrap();
        match listener.accept() {
            Err(error) if error.kind() == ErrorKind::WouldBlock => {}
            other => panic!("--check-config connected to the {name}: {other:?}"),
        }
    }
}

/// `--check-config` reads the TLS and token files: content that cannot be used is refused
/// with exit 64, naming the key, without quoting the file (a key or token is a secret).
#[test]
fn check_config_reads_the_tls_and_token_files() {
    let ca = pki::Ca::new("check CA");
    let client = ca.client("check-client");
    let other = ca.client("other-client");
    let ca_file = pki::temp_file("ca", &ca.pem);
    let cert_file = pki::temp_file("cert", &client.cert_pem);
    let key_file = pki::temp_file("key", &client.key_pem);
    let other_key = pki::temp_file("other-key", &other.key_pem);
    let not_pem = pki::temp_file("not-pem", "hello, not a certificate\n");
    let token = pki::temp_file("token", "tok-5e1f\n");
    let blank_token = pki::temp_file("blank-token", " \n");
    let key_secret = other.key_pem.lines().nth(1).unwrap().to_string();
    let tls = |ca: &str, cert: &str, key: &str| {
        https_with(&format!(
            "  tls:\n    ca_file: {ca}\n    cert_file: {cert}\n    key_file: {key}\n"
        ))
    };
    let bearer = |file: &str| with(&format!("  auth:\n    bearer_token_file: {file}\n"));
    // (name, config, expected error: key and message; None = valid)
    type FileCase<'a> = (&'a str, String, Option<(&'a str, &'a str)>);
    let cases: Vec<FileCase> = vec![
        (
            "valid mTLS files",
            tls(&ca_file, &cert_file, &key_file),
            None,
        ),
        ("valid token file", bearer(&token), None),
        (
            "CA file without certificates",
            tls(&not_pem, &cert_file, &key_file),
            Some(("`delivery.tls.ca_file`", "no PEM certificate")),
        ),
        (
            "key file holding a certificate",
            tls(&ca_file, &cert_file, &cert_file),
            Some(("`delivery.tls.key_file`", "no PEM private key")),
        ),
        (
            "key of another certificate",
            tls(&ca_file, &cert_file, &other_key),
            Some(("`delivery.tls.key_file`", "does not match the certificate")),
        ),
        (
            "blank token file",
            bearer(&blank_token),
            Some(("`delivery.auth.bearer_token_file`", "is empty")),
        ),
    ];
    for (name, yaml, expected) in cases {
        let file = TempConfig::new(name, Some(&yaml));
        let output = run(&["--config", file.path(), "--check-config"], &[]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stdout = String::from_utf8_lossy(&output.stdout);
        match expected {
            None => assert_eq!(output.status.code(), Some(0), "{name}: {stderr}"),
            Some((key, message)) => {
                assert_eq!(output.status.code(), Some(EXIT_CONFIG), "{name}: {stderr}");
                assert!(
                    stderr.contains(key) && stderr.contains(message),
                    "{name}: {stderr}"
                );
            }
        }
        for secret in [key_secret.as_str(), "tok-5e1f"] {
            assert!(
                !stderr.contains(secret) && !stdout.contains(secret),
                "{name}: a secret in the output"
            );
        }
    }
}
