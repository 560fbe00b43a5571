//! Object stores (S3, Azure Blob, GCS) through Apache's `object_store` crate: `files` sources
//! whose `paths` are `s3://`, `az://` or `gs://` URLs, and `jsonl`/`csv` sinks that upload
//! their output to one.
//!
//! - [`Stores`]: one client per source or sink with an object URL, built once before any
//!   record moves (secrets resolved then, like every other secret of the run).
//! - [`list`]: discovery: list under each pattern's literal prefix (every page of the
//!   listing), keep the keys the glob matches, sorted; leave out the objects earlier runs took.
//! - [`read`]: a streamed GET as a `std::io::Read`, feeding the same splitter as local files.
//! - [`upload`]: a sink's staging file to its object, when the run completes.
//! - [`after`]: `after: {move_to, tag}`, objects tagged and moved once the run that read them
//!   completed.
//! - [`tagging`]: S3 object tagging and Azure blob index tags (`after: {tag}`), with the
//!   source's own client configuration.
//!
//! Invariants:
//! - No credential ever reaches a message, a log event or the plan: errors name the store
//!   (`s3://bucket`), the object and the operation, and classify the failure; the store's own
//!   error text (which may quote request details) is never shown.
//! - Each object is identified by its URL and ETag: an object is taken by exactly one run (the
//!   runs' frozen input lists in the state store are the record of what was taken), and an
//!   object overwritten with new content (new ETag) is a new object, read again in full.
//! - Streaming: an object is read in the chunks its GET body arrives in; never whole.
//! - Blocking callers (the reader and writer threads) drive the async client on one small
//!   tokio runtime owned here.

pub mod after;
pub mod list;
pub mod read;
pub mod tagging;
pub mod upload;

use std::sync::Arc;
use std::time::Duration;

use object_store::ObjectStore;
use sluice_compiler::plan::object_store::StorePlan;
use sluice_compiler::plan::{ComponentKind, Plan};

use crate::error::RunError;
use crate::findings;

/// A client for one bucket (or container), and the runtime that drives it.
#[derive(Clone)]
pub struct Remote {
    pub store: Arc<dyn ObjectStore>,
    /// `s3://bucket`: how messages name the store.
    pub base: String,
    /// Sources with `after: {tag}` (S3 and Azure): the tagger over the same client
    /// configuration.
    pub tagger: Option<Arc<tagging::Tagger>>,
    rt: Arc<tokio::runtime::Runtime>,
}

impl Remote {
    /// Runs `f` to completion on the store's runtime (from a thread that is not in one).
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }
}

/// The clients of a plan's object-store sources and sinks, by component index.
#[derive(Clone, Default)]
pub struct Stores {
    by_component: Vec<Option<Remote>>,
}

impl Stores {
    /// Builds a client for every source and sink of `plan` with an object URL; none (and no
    /// runtime) for a plan without any.
    pub fn new(plan: &Plan) -> Result<Stores, RunError> {
        let mut by_component = vec![None; plan.components.len()];
        let mut rt: Option<Arc<tokio::runtime::Runtime>> = None;
        for (i, comp) in plan.components.iter().enumerate() {
            let store = match &comp.kind {
                ComponentKind::Source(s) => s.store.as_deref(),
                ComponentKind::Sink(s) => s.object.as_ref().map(|o| &o.store),
                _ => None,
            };
            let Some(store) = store else { continue };
            let rt = match &rt {
                Some(rt) => Arc::clone(rt),
                None => {
                    let made = Arc::new(
                        tokio::runtime::Builder::new_multi_thread()
                            .worker_threads(1)
                            .thread_name("sluice-object-store")
                            .enable_all()
                            .build()
                            .map_err(|e| {
                                RunError::new(findings::INTERNAL, format!("cannot start the object-store client: {e}"))
                            })?,
                    );
                    rt = Some(Arc::clone(&made));
                    made
                }
            };
            let (client, tagger) = build(store, &comp.name)?;
            let tagger = tagger.map(Arc::new);
            let base = format!("{}://{}", store.scheme, store.bucket);
            by_component[i] = Some(Remote { store: client, base, tagger, rt });
        }
        Ok(Stores { by_component })
    }

    /// The client of component `i`, if it reads or writes an object store.
    pub fn get(&self, i: usize) -> Option<&Remote> {
        self.by_component.get(i).and_then(Option::as_ref)
    }
}

/// reqwest's TLS (rustls without a bundled provider) uses the process's default provider:
/// ring, already in the tree. Installed once; an earlier install (by anyone) is kept.
fn install_tls_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Retries of one request inside the client (connection errors, 5xx, throttling): a few, and
/// bounded in time, so an unreachable store stops the run within seconds, not minutes.
fn retry_config() -> object_store::RetryConfig {
    object_store::RetryConfig {
        backoff: object_store::BackoffConfig::default(),
        max_retries: 3,
        retry_timeout: Duration::from_secs(30),
    }
}

fn secret(reference: &Option<String>, what: &str) -> Result<Option<String>, RunError> {
    let Some(r) = reference else { return Ok(None) };
    let value = crate::secrets::resolve(r, what)?;
    String::from_utf8(value.expose().to_vec())
        .map(Some)
        .map_err(|_| RunError::new(findings::SECRET_MISSING, format!("{what}: the secret's value is not UTF-8 text")))
}

/// The client of `plan`'s store and, for a source with `after: {tag}`, its tagger over the same
/// configuration.
fn build(plan: &StorePlan, component: &str) -> Result<(Arc<dyn ObjectStore>, Option<tagging::Tagger>), RunError> {
    install_tls_provider();
    let what = |key: &str| format!("`{key}` of the store of `{component}`");
    let http = plan.endpoint.as_deref().is_some_and(|e| e.starts_with("http://"));
    let options = object_store::ClientOptions::new()
        .with_allow_http(http)
        .with_connect_timeout(Duration::from_secs(10))
        .with_timeout(Duration::from_secs(120));
    let base = format!("{}://{}", plan.scheme, plan.bucket);
    let config_error = |e: object_store::Error| {
        RunError::new(
            findings::OBJECT_STORE_CONFIG,
            format!("`{component}`: cannot set up the client of `{base}`: {}", kind_of(&e)),
        )
        .with_help("check the `store` block (region, endpoint, account) and that its secret references resolve")
    };
    let tagger_error = |why: String| {
        RunError::new(findings::OBJECT_STORE_CONFIG, format!("`{component}`: {why}"))
            .with_help("`after.tag` needs the store's credentials; see `docs/spec-reference.md` (after)")
    };
    let tags = !plan.tags.is_empty();
    let built: Arc<dyn ObjectStore> = match plan.scheme.as_str() {
        "s3" => {
            let mut b = object_store::aws::AmazonS3Builder::from_env()
                .with_bucket_name(&plan.bucket)
                .with_client_options(options)
                .with_retry(retry_config());
            b = b.with_region(plan.region.clone().unwrap_or_else(|| "us-east-1".into()));
            if let Some(e) = &plan.endpoint {
                b = b.with_endpoint(e).with_allow_http(http);
            }
            if let Some(k) = secret(&plan.access_key_id, &what("access_key_id"))? {
                b = b.with_access_key_id(k);
            }
            if let Some(k) = secret(&plan.secret_access_key, &what("secret_access_key"))? {
                b = b.with_secret_access_key(k);
            }
            let s3 = b.build().map_err(config_error)?;
            let tagger = match tags {
                true => Some(tagging::Tagger::S3(tagging::s3::S3Tagger::new(s3.clone()).map_err(tagger_error)?)),
                false => None,
            };
            return Ok((Arc::new(s3), tagger));
        }
        "az" => {
            let mut b = object_store::azure::MicrosoftAzureBuilder::from_env()
                .with_container_name(&plan.bucket)
                .with_client_options(options)
                .with_retry(retry_config());
            if let Some(a) = &plan.account {
                b = b.with_account(a);
            }
            if let Some(e) = &plan.endpoint {
                b = b.with_endpoint(e.clone()).with_allow_http(http);
            }
            if let Some(k) = secret(&plan.access_key, &what("access_key"))? {
                b = b.with_access_key(k);
            }
            let azure = b.clone().build().map_err(config_error)?;
            let tagger = match tags {
                true => Some(tagging::Tagger::Azure(
                    tagging::azure::AzureTagger::new(&b, &plan.bucket).map_err(tagger_error)?,
                )),
                false => None,
            };
            return Ok((Arc::new(azure), tagger));
        }
        _ => {
            let mut b = object_store::gcp::GoogleCloudStorageBuilder::from_env()
                .with_bucket_name(&plan.bucket)
                .with_client_options(options)
                .with_retry(retry_config());
            if let Some(k) = secret(&plan.service_account_key, &what("service_account_key"))? {
                b = b.with_service_account_key(k);
            }
            Arc::new(b.build().map_err(config_error)?)
        }
    };
    Ok((built, None))
}

/// What kind of failure an `object_store` error is, in words that hold no request details.
fn kind_of(e: &object_store::Error) -> String {
    use object_store::Error as E;
    match e {
        E::NotFound { .. } => "not found".into(),
        E::PermissionDenied { .. } => "permission denied".into(),
        E::Unauthenticated { .. } => "the credentials were not accepted".into(),
        E::Precondition { .. } => "the object changed (its ETag no longer matches)".into(),
        E::NotSupported { .. } | E::NotImplemented { .. } => "not supported by this store".into(),
        E::UnknownConfigurationKey { key, .. } => format!("unknown configuration key `{key}`"),
        E::InvalidPath { .. } => "an invalid object path".into(),
        E::Generic { .. } => match (http_status(e), io_kind(e)) {
            (Some(401 | 403), _) => format!("access denied (HTTP {})", http_status(e).unwrap_or(403)),
            (Some(404), _) => "not found (HTTP 404)".into(),
            (Some(status), _) => format!("request failed (HTTP {status})"),
            (None, Some(k)) => format!("request failed ({k})"),
            (None, None) => "request failed".into(),
        },
        _ => "request failed".into(),
    }
}

/// The HTTP status a store answered with, when an error of a listing carries one. The client
/// wraps listing errors as `Generic`, and its retry error type is private: its text ("...
/// status code: 403 Forbidden ...") is read here, only to classify, and never shown.
fn http_status(e: &(dyn std::error::Error + 'static)) -> Option<u16> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        let text = err.to_string();
        if let Some(at) = text.find("status code: ") {
            let digits: String = text[at + 13..].chars().take_while(char::is_ascii_digit).collect();
            if let Ok(status) = digits.parse() {
                return Some(status);
            }
        }
        cur = err.source();
    }
    None
}

/// The kind of the first I/O error in `e`'s chain (connection refused, timed out...).
fn io_kind(e: &(dyn std::error::Error + 'static)) -> Option<std::io::ErrorKind> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        cur = err.source();
    }
    None
}

/// The run error of a failed store operation: access refused (RT136) or unreachable (RT135),
/// or, for a sink, RT620. `what` says what was being done (`list`, `read`), `target` names the
/// store or object.
pub fn run_error(e: &object_store::Error, what: &str, target: &str, sink: bool) -> RunError {
    use object_store::Error as E;
    let kind = kind_of(e);
    if sink {
        return RunError::new(findings::OBJECT_UPLOAD_FAILED, format!("cannot {what} `{target}`: {kind}")).with_help(
            "the staging file is kept and the run is not marked completed: fix the store or its credentials, then \
             `sluice run --resume`",
        );
    }
    let denied = matches!(e, E::Generic { .. }) && matches!(http_status(e), Some(401 | 403));
    match e {
        _ if denied => RunError::new(findings::OBJECT_STORE_DENIED, format!("cannot {what} `{target}`: {kind}"))
            .with_help("check the secret references in the source's `store` block and the bucket's access policy"),
        E::PermissionDenied { .. } | E::Unauthenticated { .. } => {
            RunError::new(findings::OBJECT_STORE_DENIED, format!("cannot {what} `{target}`: {kind}"))
                .with_help("check the secret references in the source's `store` block and the bucket's access policy")
        }
        _ => RunError::new(findings::OBJECT_STORE_UNREACHABLE, format!("cannot {what} `{target}`: {kind}")).with_help(
            "check the store's `endpoint` (or region) and the network; with a state store, `sluice run --resume` \
             continues from the last checkpoint once the store is back",
        ),
    }
}
