//! TLS of `kafka` clients: the plan's `security` TLS files as librdkafka settings (checked
//! before the client exists, RT182), and a failed TLS connection to the brokers in words
//! (RT181) instead of a timeout that says only "unreachable".
//!
//! librdkafka does the handshake with OpenSSL: the brokers' chain is verified against
//! `ssl.ca.location` (the `ca_file`) or the system's CA certificates, and their name against
//! the broker address (`ssl.endpoint.identification.algorithm=https`, librdkafka's default).
//! OpenSSL's error says only "certificate verify failed"; to name the cause (an unknown CA or
//! a wrong host name), [`probe`] repeats the handshake once with rustls against the same
//! trust anchors and reads its verdict.
//!
//! Invariants:
//! - Verification is never turned off: this module sets trust anchors and an identity only;
//!   `enable.ssl.certificate.verification` and the endpoint identification keep their
//!   defaults (on).
//! - Errors name the component, the brokers and the files, never key material: the client key
//!   is handed to librdkafka as text (`ssl.key.pem`) from its secret reference and never shown.
//! - The probe is a diagnosis only: it runs after librdkafka failed, never decides whether a
//!   connection is trusted, and a probe that cannot run leaves the general cause.

use std::io::{Read as _, Write as _};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rustls::AlertDescription;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use sluice_compiler::plan::kafka::KafkaSecurityPlan;

use crate::error::RunError;
use crate::findings;
use crate::tls_cause::CertificateCause;

/// Where OpenSSL (and so librdkafka) finds the system's CA certificates on Debian-like
/// systems, unless `SSL_CERT_FILE` says otherwise.
const SYSTEM_CA_FILE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Sets the TLS files of `security` on `config`: the CA file, the client certificate and its
/// key (resolved from its reference). RT182 when a file cannot be read, holds no PEM
/// certificate, or the key is not a PEM private key.
pub(crate) fn configure(
    config: &mut ClientConfig,
    component: &str,
    security: &KafkaSecurityPlan,
) -> Result<(), RunError> {
    let err = |what: String| {
        RunError::new(findings::KAFKA_TLS_SETTINGS, format!("`{component}`: {what}")).with_help(
            "fix the file or secret named above (PEM: `-----BEGIN CERTIFICATE-----`, `-----BEGIN PRIVATE KEY-----`)",
        )
    };
    if let Some(ca) = &security.ca_file {
        crate::pem_files::certificates(ca, "CA file").map_err(err)?;
        config.set("ssl.ca.location", ca);
    }
    if let (Some(cert), Some(key_ref)) = (&security.client_cert, &security.client_key) {
        crate::pem_files::certificates(cert, "client certificate").map_err(err)?;
        let key = crate::secrets::resolve(key_ref, &format!("the TLS client key of `{component}`"))?;
        if PrivateKeyDer::from_pem_slice(key.expose()).is_err() {
            return Err(err(format!("the client key {key_ref} is not a PEM private key (or it is encrypted)")));
        }
        let text =
            std::str::from_utf8(key.expose()).map_err(|_| err(format!("the client key {key_ref} is not PEM text")))?;
        config.set("ssl.certificate.location", cert).set("ssl.key.pem", text);
    }
    Ok(())
}

/// What librdkafka said about a failed TLS connection, sorted by cause.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The brokers' certificate did not verify (chain or name: [`probe`] tells which).
    NotVerified,
    /// The broker ended the handshake over the client certificate (missing or refused).
    ClientCertificate,
    /// The port answered something other than TLS.
    NotTls,
    /// Another TLS error.
    Other,
}

/// The TLS failure in a reason librdkafka's error callback gives, if it is one.
pub(crate) fn failure(reason: &str) -> Option<Failure> {
    let r = reason.to_ascii_lowercase();
    if r.contains("certificate verify failed") || r.contains("failed to verify broker certificate") {
        return Some(Failure::NotVerified);
    }
    let alert = ["alert certificate required", "alert handshake failure", "alert bad certificate", "alert unknown ca"];
    if alert.iter().any(|a| r.contains(a)) || r.contains("client ssl authentication might be required") {
        return Some(Failure::ClientCertificate);
    }
    let not_tls = ["wrong version number", "packet length too long", "record layer", "plaintext broker listener"];
    if r.contains("ssl handshake failed") && not_tls.iter().any(|n| r.contains(n)) {
        return Some(Failure::NotTls);
    }
    (r.contains("ssl handshake failed") || r.contains("ssl transport error")).then_some(Failure::Other)
}

/// RT181 for `component`, whose client failed as `failure` said, with the cause in words.
pub(crate) fn handshake_error(
    component: &str,
    brokers: &[String],
    failure: Failure,
    security: Option<&KafkaSecurityPlan>,
) -> RunError {
    let client_cert = security.is_some_and(|s| s.client_cert.is_some());
    let (cause, help): (String, String) = match failure {
        Failure::NotVerified => {
            let ca = security.and_then(|s| s.ca_file.as_deref());
            let host = brokers.first().and_then(|b| host_of(b)).unwrap_or_default();
            match brokers.first().and_then(|b| probe(b, ca)) {
                Some(cause @ CertificateCause::UnknownCa) => (
                    cause.describe("broker", &host),
                    format!(
                        "set `security.ca_file` to the PEM file of the CA that signed the brokers' certificates{}",
                        if ca.is_some() { " (the one set does not)" } else { " (a private CA)" }
                    ),
                ),
                Some(cause @ CertificateCause::WrongName) => (
                    cause.describe("broker", &host),
                    "write the broker address with a name the certificate was issued for (one of its subject alternative names), or have the broker's certificate reissued with this name".into(),
                ),
                Some(cause) => (cause.describe("broker", &host), cause.common_help().into()),
                None => (
                    "the broker's certificate could not be verified (signed by a CA this client does not trust, or not issued for the broker's host name)".into(),
                    "set `security.ca_file` to the CA that signed the brokers' certificates, and write the broker addresses with the names the certificates hold".into(),
                ),
            }
        }
        Failure::ClientCertificate if client_cert => (
            "the broker refused the client certificate".into(),
            "use a client certificate signed by a CA the brokers trust (their `ssl.truststore`), valid and for client use"
                .into(),
        ),
        Failure::ClientCertificate => (
            "the broker ended the handshake: it requires a client certificate (mutual TLS)".into(),
            "set `security.client_cert` and `security.client_key` to a certificate the brokers' CA signed".into(),
        ),
        Failure::NotTls => (
            "the broker did not answer with TLS".into(),
            "check the port: `ssl` and `sasl_ssl` need the brokers' TLS listener, not a plaintext one".into(),
        ),
        Failure::Other => (
            "the TLS handshake failed".into(),
            "check the brokers' TLS settings (versions, ciphers, client certificates) and `security`".into(),
        ),
    };
    RunError::new(
        findings::KAFKA_TLS_HANDSHAKE,
        format!("`{component}`: TLS with the brokers {} failed: {cause}", brokers.join(", ")),
    )
    .with_help(help)
}

/// The host of a broker address (`host:port`, `[v6]:port`).
fn host_of(broker: &str) -> Option<String> {
    let (host, _) = broker.rsplit_once(':')?;
    Some(host.trim_start_matches('[').trim_end_matches(']').to_string())
}

/// Connects to `broker` once with rustls, trusting `ca_file` (or the system's CA file), and
/// says why its certificate is refused; `None` when it is not refused or the probe cannot
/// tell (no answer, no trust anchors to read).
fn probe(broker: &str, ca_file: Option<&str>) -> Option<CertificateCause> {
    let host = host_of(broker)?;
    let anchors = match ca_file {
        Some(path) => std::fs::read(path).ok()?,
        None => std::fs::read(std::env::var("SSL_CERT_FILE").unwrap_or_else(|_| SYSTEM_CA_FILE.to_string())).ok()?,
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&anchors).flatten() {
        let _ = roots.add(cert);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .ok()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from(host).ok()?;
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).ok()?;
    let addr = broker.to_socket_addrs().ok()?.next()?;
    let mut tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
    tcp.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    tcp.set_write_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut stream = rustls::Stream::new(&mut conn, &mut tcp);
    // Writing nothing drives the handshake to its end (or its error).
    let outcome = stream.write_all(&[]).and_then(|()| stream.flush()).and_then(|()| {
        let mut none = [0u8; 0];
        stream.read(&mut none).map(|_| ())
    });
    let err = outcome.err()?;
    let tls = err.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>())?;
    match tls {
        rustls::Error::InvalidCertificate(c) => Some(CertificateCause::of(c)),
        rustls::Error::AlertReceived(AlertDescription::UnknownCA) => Some(CertificateCause::UnknownCa),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn librdkafka_reasons_are_sorted_by_cause() {
        let verify = "ssl://127.0.0.1:9093/bootstrap: SSL handshake failed: error:0A000086:SSL routines::certificate verify failed: broker certificate could not be verified, verify that ssl.ca.location is correctly configured or root CA certificates are installed (install ca-certificates package) (after 3ms in state SSL_HANDSHAKE)";
        assert_eq!(failure(verify), Some(Failure::NotVerified));
        let plain = "ssl://127.0.0.1:9092/bootstrap: SSL handshake failed: error:0A00010B:SSL routines::wrong version number (after 1ms in state SSL_HANDSHAKE)";
        assert_eq!(failure(plain), Some(Failure::NotTls));
        let required = "ssl://127.0.0.1:9093/1: SSL transport error: error:0A00045C:SSL routines::tlsv13 alert certificate required";
        assert_eq!(failure(required), Some(Failure::ClientCertificate));
        assert_eq!(
            failure("127.0.0.1:9092/bootstrap: Connect to ipv4#127.0.0.1:9092 failed: Connection refused"),
            None
        );
    }
}
