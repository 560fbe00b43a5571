//! X12 EDI: a codec (bytes to segments and envelopes) usable without the compiler.
//!
//! - [`codec`]: delimiters read from the ISA header, zero-copy segments and elements.
//! - [`split`]: a streaming splitter that cuts a byte stream into envelope segments (ISA, GS,
//!   GE, IEA, TA1), transaction sets (ST..SE) and stray bytes, holding one set at a time (with
//!   a set limit, one part of a long set).
//! - [`envelope`]: ISA/IEA, GS/GE and ST/SE checks (control numbers, counts, fixed widths,
//!   dates and times), strict or lenient, with `X12xxx` finding codes.
//! - [`json`]: the JSON shape printed by `sluice parse --format x12`.
//! - [`ack`]: 999 (5010) and 997 (4010) functional acknowledgments and TA1 for envelope errors.
//! - [`guide`]: implementation guides as data (`guides/*.txt`: loops, segment usage and
//!   repeats, element types, lengths, code lists, PHI classes) and guide selection.
//! - [`loops`]: loop identification (HL hierarchy, keys, positions) against a guide.
//! - [`hl_ids`]: a set's HL01 ids, kept small (a value per HL numbered in order).
//! - [`elements`]: element checks of a placed segment.
//! - [`validate`]: a set against its guide (selection, loops, elements): what
//!   [`envelope::Checker::with_guides`] runs.
//! - [`cut`]: one set cut at a repeating loop (`2300`, `2100`): one smaller set per
//!   occurrence with its context, for one record per claim.
//! - [`cut_stream`]: the same parts, made in two passes over a set's segments as they come,
//!   for a set too long to hold.
//! - [`partner`]: trading partners (who may send which sets in which version, which envelope
//!   checks are errors) and their guide overlays.
//! - [`path`]: mapping paths (`2300/CLM-01`, `2400[*]/SV1-01-2`): resolve values in an
//!   identified set, check them against a guide (type, PHI class).
//!
//! Invariants: no input makes any function here panic; findings carry offsets, element
//! positions and codes, never the values of the data (they may be PHI).

pub mod ack;
pub mod codec;
pub mod cut;
pub mod cut_stream;
pub mod elements;
pub mod envelope;
pub mod guide;
pub mod hl_ids;
pub mod json;
pub mod loop_index;
pub mod loops;
pub mod partner;
pub mod path;
pub mod split;
pub mod validate;
