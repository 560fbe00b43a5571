//! Financial API clients: [`stripe`] (list endpoints with cursor pagination, incremental sync
//! by `created` with a lookback window). They authenticate through a connection
//! ([`crate::oauth::Connection`]): an API key, or OAuth tokens refreshed on 401. [`source`]
//! runs a pipeline's `stripe` sources on them.

pub mod source;
pub mod stripe;
