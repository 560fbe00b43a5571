//! MLLP framing (HL7 v2 Minimal Lower Layer Protocol): frames are `VT payload FS CR`
//! (0x0B ... 0x1C 0x0D). [`Framer`] is a pure state machine over bytes: feed it whatever the
//! socket returned ([`Framer::push`]), get [`Event`]s; tell it when the stream ended or went
//! idle ([`Framer::finish`]). [`frame`] wraps a payload for sending.
//!
//! Rules:
//! - A frame starts at VT and ends at FS CR. An FS not followed by CR still ends the frame (a
//!   common sender bug); the byte after it is read as if outside a frame.
//! - Bytes outside frames are garbage ([`Event::Garbage`]), except CR, LF, spaces and tabs,
//!   which senders often put between frames and which are dropped silently. A run of garbage
//!   is reported once, when the next frame starts or the stream ends.
//! - A VT inside a frame starts a new frame: the unfinished one is reported as
//!   [`Event::Truncated`].
//! - A frame longer than `max_frame_bytes` is not kept: its bytes are counted and dropped up
//!   to its end, then it is reported as [`Event::Oversize`] with its first bytes (the head),
//!   enough to read the MSH segment for an AR.
//! - [`Framer::finish`] reports an unfinished frame as [`Event::Truncated`] (or `Oversize`) and
//!   pending garbage; the framer is then ready for a new stream.
//!
//! Invariants: never panics; memory is bounded: at most `max_frame_bytes` bytes of a frame and
//! [`HEAD_BYTES`] bytes of garbage or of an oversize frame are held, whatever the input; every
//! input byte is accounted for exactly once: in a frame's payload, in the length of a garbage,
//! truncated or oversize event, as a frame delimiter, or as dropped whitespace between frames.

pub const VT: u8 = 0x0B;
pub const FS: u8 = 0x1C;
pub const CR: u8 = 0x0D;

/// How many bytes of garbage, or of the start of an oversize frame, are kept for reports.
pub const HEAD_BYTES: usize = 1024;

/// Wraps `payload` in an MLLP frame.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 3);
    out.push(VT);
    out.extend_from_slice(payload);
    out.push(FS);
    out.push(CR);
    out
}

/// What the framer found. Offsets count bytes from the start of the stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A complete frame: the payload between VT and FS, at `offset` (the payload's first byte).
    Frame { offset: u64, payload: Vec<u8> },
    /// Bytes outside any frame: `len` bytes from `offset`; `head` holds the first of them
    /// (at most [`HEAD_BYTES`]).
    Garbage { offset: u64, len: u64, head: Vec<u8> },
    /// A frame that did not end (the stream ended or went idle, or a new VT came): its payload
    /// so far, from `offset`.
    Truncated { offset: u64, payload: Vec<u8> },
    /// A frame longer than the limit: `len` payload bytes from `offset`; `head` is its first
    /// [`HEAD_BYTES`] bytes. `complete` is false when the stream ended before its FS.
    Oversize { offset: u64, len: u64, head: Vec<u8>, complete: bool },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Outside,
    InFrame,
    /// In a frame, the last byte was FS.
    SawFs,
    /// In a frame past the limit, dropping bytes.
    Oversize,
    /// In an oversize frame, the last byte was FS.
    OversizeSawFs,
}

/// The MLLP state machine (see the module docs).
#[derive(Debug)]
pub struct Framer {
    max_frame_bytes: usize,
    state: State,
    /// Stream offset of the next byte.
    pos: u64,
    /// The frame's payload (or the head of an oversize frame).
    buf: Vec<u8>,
    frame_start: u64,
    oversize_len: u64,
    garbage_start: u64,
    garbage_len: u64,
    garbage_head: Vec<u8>,
}

impl Framer {
    /// A framer refusing frames whose payload is longer than `max_frame_bytes` (at least 1).
    pub fn new(max_frame_bytes: usize) -> Framer {
        Framer {
            max_frame_bytes: max_frame_bytes.max(1),
            state: State::Outside,
            pos: 0,
            buf: Vec::new(),
            frame_start: 0,
            oversize_len: 0,
            garbage_start: 0,
            garbage_len: 0,
            garbage_head: Vec::new(),
        }
    }

    /// Whether a frame has started and not ended (an idle timeout then means a truncated frame).
    pub fn in_frame(&self) -> bool {
        self.state != State::Outside
    }

    /// Bytes currently held (bounded by `max_frame_bytes + 2 * HEAD_BYTES`).
    pub fn held_bytes(&self) -> usize {
        self.buf.len() + self.garbage_head.len()
    }

    fn flush_garbage(&mut self, out: &mut Vec<Event>) {
        if self.garbage_len > 0 {
            out.push(Event::Garbage {
                offset: self.garbage_start,
                len: self.garbage_len,
                head: std::mem::take(&mut self.garbage_head),
            });
            self.garbage_len = 0;
        }
    }

    fn start_frame(&mut self, out: &mut Vec<Event>) {
        self.flush_garbage(out);
        self.buf = Vec::new();
        self.frame_start = self.pos + 1;
        self.state = State::InFrame;
    }

    fn end_frame(&mut self, out: &mut Vec<Event>, complete: bool) {
        let payload = std::mem::take(&mut self.buf);
        match self.state {
            State::InFrame | State::SawFs if complete => out.push(Event::Frame { offset: self.frame_start, payload }),
            State::InFrame | State::SawFs => out.push(Event::Truncated { offset: self.frame_start, payload }),
            State::Oversize | State::OversizeSawFs => {
                out.push(Event::Oversize { offset: self.frame_start, len: self.oversize_len, head: payload, complete })
            }
            State::Outside => {}
        }
        self.state = State::Outside;
    }

    fn outside(&mut self, b: u8, out: &mut Vec<Event>) {
        match b {
            VT => self.start_frame(out),
            b'\r' | b'\n' | b' ' | b'\t' if self.garbage_len == 0 => {}
            _ => {
                if self.garbage_len == 0 {
                    self.garbage_start = self.pos;
                }
                self.garbage_len += 1;
                if self.garbage_head.len() < HEAD_BYTES {
                    self.garbage_head.push(b);
                }
            }
        }
    }

    /// Feeds bytes; appends what they complete to `out`.
    pub fn push(&mut self, input: &[u8], out: &mut Vec<Event>) {
        for &b in input {
            match self.state {
                State::Outside => self.outside(b, out),
                State::InFrame => match b {
                    FS => self.state = State::SawFs,
                    VT => {
                        self.end_frame(out, false);
                        self.start_frame(out);
                    }
                    _ if self.buf.len() >= self.max_frame_bytes => {
                        self.oversize_len = self.buf.len() as u64 + 1;
                        self.buf.truncate(HEAD_BYTES);
                        self.buf.shrink_to_fit();
                        self.state = State::Oversize;
                    }
                    _ => self.buf.push(b),
                },
                State::SawFs | State::OversizeSawFs => {
                    self.end_frame(out, true);
                    if b != CR {
                        // FS without CR: the frame ended anyway; read this byte outside.
                        self.outside(b, out);
                    }
                }
                State::Oversize => match b {
                    FS => self.state = State::OversizeSawFs,
                    VT => {
                        self.end_frame(out, false);
                        self.start_frame(out);
                    }
                    _ => self.oversize_len += 1,
                },
            }
            self.pos += 1;
        }
    }

    /// The stream ended or went idle: reports an unfinished frame and pending garbage.
    pub fn finish(&mut self, out: &mut Vec<Event>) {
        match self.state {
            // FS at the very end, CR never came: the frame is complete enough.
            State::SawFs | State::OversizeSawFs => self.end_frame(out, true),
            State::InFrame | State::Oversize => self.end_frame(out, false),
            State::Outside => {}
        }
        self.flush_garbage(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn run(max: usize, chunks: &[&[u8]]) -> Vec<Event> {
        let mut f = Framer::new(max);
        let mut out = Vec::new();
        for c in chunks {
            f.push(c, &mut out);
        }
        f.finish(&mut out);
        out
    }

    #[test]
    fn frames_garbage_truncation_and_oversize() {
        let ev = run(100, &[b"\x0bMSH|a\x1c\r\r\n\x0bMSH|b\x1c", b"\rjunk\x0bMSH|c"]);
        assert_eq!(
            ev,
            vec![
                Event::Frame { offset: 1, payload: b"MSH|a".to_vec() },
                Event::Frame { offset: 11, payload: b"MSH|b".to_vec() },
                Event::Garbage { offset: 18, len: 4, head: b"junk".to_vec() },
                Event::Truncated { offset: 23, payload: b"MSH|c".to_vec() },
            ]
        );
        let ev = run(4, &[b"\x0bMSH|toolong\x1c\r\x0bok\x1c\r"]);
        assert_eq!(
            ev,
            vec![
                Event::Oversize { offset: 1, len: 11, head: b"MSH|".to_vec(), complete: true },
                Event::Frame { offset: 15, payload: b"ok".to_vec() },
            ]
        );
        // FS without CR ends the frame; VT inside a frame truncates it.
        let ev = run(100, &[b"\x0ba\x1cx\x0bb\x0bc\x1c\r"]);
        assert_eq!(
            ev,
            vec![
                Event::Frame { offset: 1, payload: b"a".to_vec() },
                Event::Garbage { offset: 3, len: 1, head: b"x".to_vec() },
                Event::Truncated { offset: 5, payload: b"b".to_vec() },
                Event::Frame { offset: 7, payload: b"c".to_vec() },
            ]
        );
        assert_eq!(run(10, &[b"\r\n  \t"]), vec![]);
    }

    fn accounted(input: &[u8], events: &[Event]) -> u64 {
        let _ = input;
        events
            .iter()
            .map(|e| match e {
                Event::Frame { payload, .. } | Event::Truncated { payload, .. } => payload.len() as u64,
                Event::Garbage { len, .. } | Event::Oversize { len, .. } => *len,
            })
            .sum()
    }

    proptest! {
        #[test]
        fn chunking_does_not_matter(input in proptest::collection::vec(prop_oneof![Just(VT), Just(FS), Just(CR), any::<u8>()], 0..400), cut in 0usize..400, max in 1usize..64) {
            let cut = cut.min(input.len());
            let whole = run(max, &[&input]);
            let split = run(max, &[&input[..cut], &input[cut..]]);
            prop_assert_eq!(&whole, &split);
            let bytewise: Vec<&[u8]> = input.chunks(1).collect();
            prop_assert_eq!(&whole, &run(max, &bytewise));
            // Only delimiters and whitespace between frames go unaccounted.
            let delims = input.iter().filter(|b| matches!(**b, VT | FS | CR | b'\n' | b' ' | b'\t')).count() as u64;
            let acc = accounted(&input, &whole);
            prop_assert!(acc + delims >= input.len() as u64);
            prop_assert!(acc <= input.len() as u64);
            for e in &whole {
                match e {
                    Event::Frame { payload, .. } | Event::Truncated { payload, .. } => {
                        prop_assert!(payload.len() <= max);
                        prop_assert!(!payload.contains(&VT) && !payload.contains(&FS));
                    }
                    Event::Oversize { len, head, .. } => {
                        prop_assert!(*len > max as u64);
                        prop_assert!(head.len() <= HEAD_BYTES.min(max));
                    }
                    Event::Garbage { head, len, .. } => prop_assert!(head.len() as u64 <= *len && head.len() <= HEAD_BYTES),
                }
            }
        }

        #[test]
        fn framed_payloads_come_back(payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>().prop_filter("no delimiters", |b| *b != VT && *b != FS), 0..50), 0..10)) {
            let mut stream = Vec::new();
            for p in &payloads {
                stream.extend(frame(p));
            }
            let got: Vec<Vec<u8>> = run(64, &[&stream]).into_iter().map(|e| match e {
                Event::Frame { payload, .. } => payload,
                other => panic!("unexpected {other:?}"),
            }).collect();
            prop_assert_eq!(got, payloads);
        }
    }
}
