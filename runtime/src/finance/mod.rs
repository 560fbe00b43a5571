//! Financial API clients: [`stripe`] (list endpoints with cursor pagination, incremental sync
//! by `created` with a lookback window) and [`quickbooks`] (QuickBooks Online query and CDC
//! endpoints, incremental sync by `LastUpdatedTime` with a lookback window and deletions).
//! They authenticate through a connection ([`crate::oauth::Connection`]): an API key, or OAuth
//! tokens refreshed on 401. [`source`] runs a pipeline's `stripe` sources on them,
//! [`quickbooks_source`] its `quickbooks` sources.

pub mod api;
pub mod quickbooks;
pub mod quickbooks_source;
pub mod source;
pub mod stripe;
