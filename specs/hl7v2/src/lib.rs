//! HL7 v2: a codec (bytes to a tree and back) and schema tables, usable without the compiler.
//!
//! - [`ack`]: acknowledgements (ACK) for inbound messages, original and enhanced mode.
//! - [`mllp`]: the MLLP framer, a byte-level state machine for VT ... FS CR frames.
//! - [`codec`]: delimiters from MSH-1/MSH-2, segments, fields, repetitions, components,
//!   subcomponents, escape sequences; parse and encode are inverses.
//! - [`split`]: cuts a byte stream into messages (CR, LF, CRLF, MLLP framing, batch envelopes).
//! - [`path`]: typed addresses into a message (`PID-5.1`, `PID-3[*].1`, `OBX[*]-5`).
//! - [`schema`]: segment, field, component and datatype tables for v2.3 to v2.8, with PHI classes.
//! - [`json`]: the documented JSON shape printed by `sluice parse --format hl7v2`.
//! - [`charset`]: bytes to text: BOM, UTF-16 detection, MSH-18, or the profile's encoding.
//! - [`batch`]: FHS/BHS/BTS/FTS envelope count checks and DSC/ADD continuation reassembly.
//! - [`structure`]: message structures (segment groups with cardinality) and the matcher.
//! - [`view`]: a lazy, zero-copy view of a message for reading a few values fast.
//! - [`bytes`]: finding ASCII bytes eight at a time (segment ends, field separators, escapes).
//! - [`validate`]: structure, required-field, datatype, table and length checks (`sluice validate`).
//!
//! Invariants: no input makes any function here panic; errors carry offsets and codes, never
//! the values of the message (they may be PHI).

pub mod ack;
pub mod batch;
pub mod bytes;
pub mod charset;
pub mod codec;
pub mod json;
pub mod mllp;
pub mod path;
pub mod schema;
pub mod split;
pub mod structure;
pub mod validate;
pub mod view;
