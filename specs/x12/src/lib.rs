//! X12 EDI: a codec (bytes to segments and envelopes) usable without the compiler.
//!
//! - [`codec`]: delimiters read from the ISA header, zero-copy segments and elements.
//! - [`split`]: a streaming splitter that cuts a byte stream into envelope segments (ISA, GS,
//!   GE, IEA, TA1), transaction sets (ST..SE) and stray bytes, holding one set at a time.
//! - [`envelope`]: ISA/IEA, GS/GE and ST/SE checks (control numbers, counts, fixed widths,
//!   dates and times), strict or lenient, with `X12xxx` finding codes.
//! - [`json`]: the JSON shape printed by `sluice parse --format x12`.
//! - [`ack`]: 999 (5010) and 997 (4010) functional acknowledgments and TA1 for envelope errors.
//!
//! Invariants: no input makes any function here panic; findings carry offsets, element
//! positions and codes, never the values of the data (they may be PHI).

pub mod ack;
pub mod codec;
pub mod envelope;
pub mod json;
pub mod split;
