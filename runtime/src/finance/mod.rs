//! Financial API clients: [`stripe`] (list endpoints with cursor pagination, incremental sync
//! by `created` with a lookback window) and [`quickbooks`] (QuickBooks Online query and CDC
//! endpoints, incremental sync by `LastUpdatedTime` with a lookback window and deletions).
//! [`plaid`] reads one Plaid Item (accounts, balances, `/transactions/sync`); [`api`] is the
//! request loop they share.
//! They authenticate through a connection ([`crate::oauth::Connection`]): an API key, or OAuth
//! tokens refreshed on 401. [`source`] runs a pipeline's `stripe` sources on them,
//! [`quickbooks_source`] its `quickbooks` sources and [`plaid_source`] its `plaid` sources
//! (whose app keys and Item tokens are secret references resolved once per run).

pub mod api;
pub mod plaid;
pub mod plaid_source;
pub mod quickbooks;
pub mod quickbooks_source;
pub mod source;
pub mod stripe;
