//! Sinks that write into a database or a store, each in its own module (the JSON Lines file
//! sink is `crate::sink`, the HTTP sink `crate::http_sink`). The writer thread calls them once
//! per batch, before anything of the batch is written to the DLQ or the audit log, so the
//! records they refuse go to the DLQ instead (`crate::executor`).

pub mod postgres;
