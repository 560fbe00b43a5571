//! HL7 v2: a codec (bytes to a tree and back) and schema tables, usable without the compiler.
//!
//! - [`codec`]: delimiters from MSH-1/MSH-2, segments, fields, repetitions, components,
//!   subcomponents, escape sequences; parse and encode are inverses.
//! - [`split`]: cuts a byte stream into messages (CR, LF, CRLF, MLLP framing, batch envelopes).
//! - [`path`]: typed addresses into a message (`PID-5.1`, `PID-3[*].1`, `OBX[*]-5`).
//! - [`schema`]: segment, field, component and datatype tables for v2.3 to v2.8, with PHI classes.
//! - [`json`]: the documented JSON shape printed by `sluice parse --format hl7v2`.
//!
//! Invariants: no input makes any function here panic; errors carry offsets and codes, never
//! the values of the message (they may be PHI).

pub mod codec;
pub mod json;
pub mod path;
pub mod schema;
pub mod split;
