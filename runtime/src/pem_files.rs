//! PEM files that TLS settings name (CA certificates, client certificate chains), read and
//! checked before a client is made: shared by [`crate::amqp`] and [`crate::kafka`].
//!
//! Invariant: a file is accepted only when it parses as PEM and holds at least one
//! certificate; the reason for a refusal names the file and what it was for, never its bytes.

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// The bytes of the PEM file at `path` (`what` it is for: "CA file", "client certificate"),
/// which holds at least one certificate; or why not.
pub(crate) fn certificates(path: &str, what: &str) -> Result<Vec<u8>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read the {what} `{path}`: {}", e.kind()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| format!("the {what} `{path}` is not a PEM file"))?;
    if certs.is_empty() {
        return Err(format!("the {what} `{path}` holds no PEM certificate"));
    }
    Ok(pem)
}
