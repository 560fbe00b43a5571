//! Schemas of financial APIs: the Stripe objects a `stripe` source reads ([`stripe`]), the
//! QuickBooks Online entities a `quickbooks` source reads ([`quickbooks`]), the Plaid accounts
//! and transactions a `plaid` source reads ([`plaid`]), all as path tables ([`paths`]), and
//! the minor-unit exponents of currencies ([`currency`]).
//!
//! Like the other `specs/` crates this one knows nothing of pipelines: it answers "which paths
//! does a Stripe `charge` have, of which type, carrying which PII/PCI class" and "how many
//! decimals has JPY".

pub mod currency;
pub mod paths;
pub mod plaid;
pub mod quickbooks;
pub mod stripe;
