//! TLS for the MLLP listener: the certificate chain (PEM file) and private key (PEM, from a
//! secret reference) as a rustls server configuration (ring provider, TLS 1.2 and 1.3, no
//! client certificates).
//!
//! Invariants: errors name the source and the certificate file or the key's reference, never
//! key material; a bad certificate or key stops the run before it listens (`RT009`).

use std::sync::Arc;

use sluice_compiler::plan::TlsPlan;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};

use crate::error::RunError;
use crate::findings;
use crate::secrets;

/// The acceptor for `tls`, or why not.
pub fn acceptor(source: &str, tls: &TlsPlan) -> Result<TlsAcceptor, RunError> {
    let err = |what: String| RunError::new(findings::LISTEN, format!("source `{source}`: {what}"));
    let pem = std::fs::read(&tls.cert)
        .map_err(|e| err(format!("cannot read the certificate `{}`: {}", tls.cert, e.kind())))?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|_| err(format!("`{}` is not a PEM certificate chain", tls.cert)))?;
    if certs.is_empty() {
        return Err(err(format!("`{}` holds no PEM certificate", tls.cert)));
    }
    let key_pem = secrets::resolve(&tls.key, &format!("the TLS key of source `{source}`"))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.expose())
        .map_err(|_| err(format!("the TLS key `{}` is not a PEM private key", tls.key)))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|_| err("no TLS protocol version available".into()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|_| {
            err(format!("the TLS key `{}` does not match the certificate `{}` or is not supported", tls.key, tls.cert))
        })?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
