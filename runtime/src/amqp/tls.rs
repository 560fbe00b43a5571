//! TLS for `amqps://` connections: the plan's `tls` (a CA file, a client certificate and key)
//! as lapin's TLS configuration, and the cause of a failed handshake in words (RT176).
//!
//! lapin does the handshake with rustls (ring provider) and rustls-connector's verifier: the
//! server's chain is checked against the system's CA certificates (rustls-native-certs, which
//! honours `SSL_CERT_FILE` and `SSL_CERT_DIR`) plus the `ca_file`, and its name against the URL's
//! host.
//!
//! Invariants:
//! - Verification is never turned off: this module only adds trust anchors and an identity;
//!   nothing here builds a verifier of its own.
//! - Settings that cannot work stop the run before it connects (RT177): an unreadable file, a
//!   file without a PEM certificate, a key that is not a PEM private key or does not fit its
//!   certificate, `tls` with a URL (from a secret) that is plain `amqp://`.
//! - Errors name the component, the files and the key's reference, never key material or the
//!   URL's password; a handshake failure names its cause (unknown CA, wrong host name,
//!   expired, a client certificate the server wants or refuses) and how to fix it.

use std::sync::Arc;

use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};
use rustls::AlertDescription;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sluice_compiler::plan::amqp::AmqpTlsPlan;

use crate::error::RunError;
use crate::findings;
use crate::secrets;
use crate::tls_cause::CertificateCause;

/// lapin's TLS configuration for `component`: the system's roots only without `tls`; with it,
/// its CA file added and its client identity. `url` is the resolved URL (checked against
/// `tls`, never printed).
pub(crate) fn config(component: &str, tls: Option<&AmqpTlsPlan>, url: &str) -> Result<OwnedTLSConfig, RunError> {
    let Some(tls) = tls else { return Ok(OwnedTLSConfig::default()) };
    let err = |what: String| {
        RunError::new(findings::AMQP_TLS_SETTINGS, format!("`{component}`: {what}")).with_help(
            "fix the file or secret named above (PEM: `-----BEGIN CERTIFICATE-----`, `-----BEGIN PRIVATE KEY-----`)",
        )
    };
    if !url.starts_with("amqps://") {
        return Err(RunError::new(
            findings::AMQP_TLS_SETTINGS,
            format!("`{component}`: `tls` is set, but the `url` secret is a plain amqp:// URL (no TLS)"),
        )
        .with_help("set the secret to the server's `amqps://` URL (RabbitMQ's TLS listener, port 5671 by default), or remove `tls`"));
    }
    let cert_chain = match &tls.ca_file {
        Some(path) => {
            let pem = crate::pem_files::certificates(path, "CA file").map_err(err)?;
            Some(String::from_utf8(pem).map_err(|_| err(format!("the CA file `{path}` is not PEM text")))?)
        }
        None => None,
    };
    let identity = match (&tls.client_cert, &tls.client_key) {
        (Some(cert), Some(key_ref)) => {
            let pem = crate::pem_files::certificates(cert, "client certificate").map_err(err)?;
            let key = secrets::resolve(key_ref, &format!("the TLS client key of `{component}`"))?;
            check_identity(&pem, key.expose())
                .map_err(|why| err(format!("the client key {key_ref} {why} (client certificate `{cert}`)")))?;
            Some(OwnedIdentity::PKCS8 { pem, key: key.expose().to_vec() })
        }
        _ => None,
    };
    Ok(OwnedTLSConfig { identity, cert_chain })
}

/// Whether `key` is a PEM private key that fits the first certificate of `chain`: rustls
/// builds a client configuration with them, as the handshake will.
fn check_identity(chain: &[u8], key: &[u8]) -> Result<(), &'static str> {
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(chain).collect::<Result<_, _>>().map_err(|_| "cannot be checked")?;
    let key = PrivateKeyDer::from_pem_slice(key).map_err(|_| "is not a PEM private key")?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|_| "cannot be checked")?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_client_auth_cert(certs, key)
        .map(|_| ())
        .map_err(|_| "does not fit the client certificate, or its kind is not supported")
}

/// Why a handshake failed, for RT176: the cause and how to fix it.
pub(crate) struct Failure {
    pub cause: String,
    pub help: &'static str,
}

/// The TLS failure behind `e`, if it is one: rustls's error inside lapin's I/O error.
/// `client_cert`: whether this connection presented a client certificate.
pub(crate) fn failure(e: &lapin::Error, host: &str, client_cert: bool) -> Option<Failure> {
    let lapin::ErrorKind::IOError(io) = e.kind() else { return None };
    if let Some(tls) = io.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
        return Some(explain(tls, host, client_cert));
    }
    // With TLS 1.3 the client finishes its side of the handshake before the server checks the
    // client's certificate; a server that refuses it sends an alert and closes, and the close
    // can overtake the alert (a reset). A connection that ends while it is being opened over
    // TLS is, in practice, that refusal: said as the likely cause, not as a certainty.
    let closed = matches!(
        io.kind(),
        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::BrokenPipe
    );
    closed.then(|| Failure {
        cause: if client_cert {
            format!(
                "the server closed the connection during the TLS handshake ({:?}) after this client presented its certificate: the server most likely refused the client certificate (signed by a CA it does not trust, expired, or not for client use)",
                io.kind()
            )
        } else {
            format!(
                "the server closed the connection during the TLS handshake ({:?}) and this client presented no certificate: the server most likely requires a client certificate",
                io.kind()
            )
        },
        help: if client_cert {
            "use a client certificate signed by a CA the server trusts (its `ssl_options.cacertfile`), valid and for client use"
        } else {
            "set `tls.client_cert` and `tls.client_key` to a certificate the server's CA signed (mutual TLS), or check the server's TLS log"
        },
    })
}

/// A rustls error in words (no data of the connection beyond the host name).
pub(crate) fn explain(e: &rustls::Error, host: &str, client_cert: bool) -> Failure {
    let (cause, help) = match e {
        rustls::Error::InvalidCertificate(c) => {
            let cause = CertificateCause::of(c);
            let help = match cause {
                CertificateCause::UnknownCa => {
                    "set `tls.ca_file` to the PEM file of the CA that signed the broker's certificate (a private CA), or check that the URL names the intended server"
                }
                CertificateCause::WrongName => {
                    "write the host name the certificate was issued for (one of its subject alternative names) in the URL, or have the broker's certificate reissued with this name"
                }
                _ => cause.common_help(),
            };
            (cause.describe("server", host), help)
        }
        rustls::Error::AlertReceived(alert) => match alert {
            AlertDescription::CertificateRequired | AlertDescription::HandshakeFailure if !client_cert => (
                format!("the server ended the handshake ({alert:?}): it requires a client certificate"),
                "set `tls.client_cert` and `tls.client_key` to a certificate the server's CA signed (mutual TLS)",
            ),
            AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateUnknown
            | AlertDescription::CertificateExpired
            | AlertDescription::CertificateRevoked
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::AccessDenied
            | AlertDescription::DecryptError
                if client_cert =>
            {
                (
                    format!("the server refused the client certificate ({alert:?})"),
                    "use a client certificate signed by a CA the server trusts (its `ssl_options.cacertfile`), valid and for client use",
                )
            }
            _ => (
                format!("the server ended the handshake ({alert:?})"),
                "check the server's TLS settings (versions, ciphers, client certificates) against this client's (TLS 1.2 or 1.3)",
            ),
        },
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateHandshakeMessage { .. } => (
            "the server did not answer with TLS".to_string(),
            "check the port: `amqps://` needs the server's TLS listener (RabbitMQ: 5671), not its plain AMQP port",
        ),
        other => {
            (format!("TLS failed: {other}"), "check the server's TLS settings and the `tls` settings of this component")
        }
    };
    Failure { cause, help }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::CertificateError;

    #[test]
    fn each_cause_is_named() {
        let cert = |c| rustls::Error::InvalidCertificate(c);
        let unknown = explain(&cert(CertificateError::UnknownIssuer), "mq", false);
        assert!(unknown.cause.contains("unknown CA") && unknown.help.contains("tls.ca_file"));
        let name = explain(&cert(CertificateError::NotValidForName), "mq.example.org", false);
        assert!(name.cause.contains("wrong host name") && name.cause.contains("mq.example.org"));
        assert!(explain(&cert(CertificateError::Expired), "mq", false).cause.contains("expired"));
        assert!(explain(&cert(CertificateError::NotValidYet), "mq", false).cause.contains("not valid yet"));
        let required = explain(&rustls::Error::AlertReceived(AlertDescription::CertificateRequired), "mq", false);
        assert!(required.cause.contains("requires a client certificate"), "{}", required.cause);
        let refused = explain(&rustls::Error::AlertReceived(AlertDescription::UnknownCA), "mq", true);
        assert!(refused.cause.contains("refused the client certificate"), "{}", refused.cause);
    }

    #[test]
    fn a_key_that_is_no_pem_key_is_refused_without_showing_it() {
        let why = check_identity(b"", b"not a key: secret-material").unwrap_err();
        assert!(!why.contains("secret-material"));
    }
}
