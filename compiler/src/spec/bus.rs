//! What the message-bus sources as written (`kafka`, `amqp`) share: the keys that say what
//! the messages are and how urgently the source is served, and how they are read.
//!
//! Invariants:
//! - Both sources document and read these keys alike, so a pipeline moved from one bus to the
//!   other keeps its meaning.

use super::reader::{self, Cx, Spanned};
use super::shape::{Key, KeyType, PRIORITIES};

/// `format`: what each message is.
pub const FORMAT: Key = Key {
    name: "format",
    required: false,
    ty: KeyType::Enum(&["hl7v2"]),
    doc: "Standard of the messages: `hl7v2` (the default and only one).",
};

/// `profile`: how the messages are parsed.
pub const PROFILE: Key =
    Key { name: "profile", required: false, ty: KeyType::String, doc: "Parser profile file (`kind: profile`)." };

/// `priority`: which live source is served first.
pub const PRIORITY: Key = Key {
    name: "priority",
    required: false,
    ty: KeyType::Enum(PRIORITIES),
    doc: "`interactive`, `normal` (default) or `backfill`: which of a pipeline's live sources is served first when it is busy.",
};

/// `description`.
pub const DESCRIPTION: Key = Key { name: "description", required: false, ty: KeyType::String, doc: "Free text." };

/// The keys every bus source reads beside its connection settings, as written.
#[derive(Debug)]
pub struct Common {
    pub profile: Option<Spanned>,
    /// One of [`PRIORITIES`] (`normal` when not written).
    pub priority: String,
}

/// Reads `format`, `profile` and `priority`.
pub fn common(cx: &mut Cx, obj: &reader::Obj<'_>) -> Common {
    if let Some(f) = obj.get("format") {
        reader::one_of(cx, f, &["hl7v2"], "source format");
    }
    let priority = obj
        .get("priority")
        .and_then(|n| reader::one_of(cx, n, PRIORITIES, "source priority"))
        .map_or_else(|| "normal".to_string(), |p| p.text);
    let profile = obj.get("profile").and_then(|n| reader::string(cx, n, "`profile`"));
    Common { profile, priority }
}
