//! Why a TLS server's certificate was refused, in words: one reading of rustls's
//! `CertificateError` for every client that explains its failed handshakes ([`crate::amqp`]
//! from its own handshake, [`crate::kafka`] from a probe after librdkafka failed). Each client
//! adds the help that names its own settings (`tls.ca_file`, `security.ca_file`).
//!
//! Invariant: a cause names the host the client connected to and nothing of the certificate
//! or the connection's data.

use rustls::CertificateError;

/// Why a server's certificate did not verify.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum CertificateCause {
    /// Its chain does not end at a CA this client trusts.
    UnknownCa,
    /// It was not issued for the host name connected to.
    WrongName,
    Expired,
    NotValidYet,
    Revoked,
    /// Anything else rustls refused, as rustls names it.
    Other(String),
}

impl CertificateCause {
    pub(crate) fn of(e: &CertificateError) -> CertificateCause {
        match e {
            CertificateError::UnknownIssuer => CertificateCause::UnknownCa,
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                CertificateCause::WrongName
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => CertificateCause::Expired,
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                CertificateCause::NotValidYet
            }
            CertificateError::Revoked => CertificateCause::Revoked,
            other => CertificateCause::Other(format!("{other:?}")),
        }
    }

    /// The cause, for the certificate of `peer` ("server", "broker") reached as `host`.
    pub(crate) fn describe(&self, peer: &str, host: &str) -> String {
        match self {
            CertificateCause::UnknownCa => {
                format!("the {peer}'s certificate is signed by a CA this client does not trust (unknown CA)")
            }
            CertificateCause::WrongName => {
                format!("the {peer}'s certificate is not valid for the host name `{host}` (wrong host name)")
            }
            CertificateCause::Expired => format!("the {peer}'s certificate has expired"),
            CertificateCause::NotValidYet => format!("the {peer}'s certificate is not valid yet"),
            CertificateCause::Revoked => format!("the {peer}'s certificate has been revoked"),
            CertificateCause::Other(what) => format!("the {peer}'s certificate was refused ({what})"),
        }
    }

    /// How to fix it, apart from a CA this client does not trust and a wrong host name, whose
    /// help names the client's own settings.
    pub(crate) fn common_help(&self) -> &'static str {
        match self {
            CertificateCause::Expired => {
                "have the broker's certificate renewed (and check that this machine's clock is right)"
            }
            CertificateCause::NotValidYet => "check this machine's clock, and the certificate's validity dates",
            CertificateCause::Revoked => "have the broker's certificate replaced",
            CertificateCause::UnknownCa | CertificateCause::WrongName | CertificateCause::Other(_) => {
                "check the broker's certificate chain: it must be a valid X.509 chain for TLS server use"
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cause_is_named_with_the_host_only() {
        let of = |e| CertificateCause::of(&e);
        assert_eq!(
            of(CertificateError::UnknownIssuer).describe("broker", "kafka-1"),
            "the broker's certificate is signed by a CA this client does not trust (unknown CA)"
        );
        assert!(
            of(CertificateError::NotValidForName)
                .describe("server", "mq.example.org")
                .contains("`mq.example.org` (wrong host name)")
        );
        assert!(of(CertificateError::Expired).describe("server", "mq").contains("expired"));
        assert!(of(CertificateError::NotValidYet).describe("server", "mq").contains("not valid yet"));
        assert_eq!(of(CertificateError::Revoked), CertificateCause::Revoked);
        assert!(matches!(of(CertificateError::BadEncoding), CertificateCause::Other(_)));
    }
}
