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

/// The envelope name of the QuickBooks company (`realm_id`) a record was read from: set by the
/// `quickbooks` source on every record, read by mappings with `envelope("quickbooks.realm")`.
pub const QUICKBOOKS_REALM: &str = "quickbooks.realm";

/// The envelope name of the Plaid Item (its `name` in the source) a record was read from: set
/// by the `plaid` source on every record, read by mappings with `envelope("plaid.item")`.
pub const PLAID_ITEM: &str = "plaid.item";
