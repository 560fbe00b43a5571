//! One MLLP connection: read, frame, hand each item to the executor, write its ACK.
//!
//! Per framer event:
//! - frame: a record; its ACK is AA (delivered or filtered), AE (rejected by a stage) or AR
//!   (rejected by the source step: charset, parse, profile), built from the frame's MSH. Under
//!   `on_commit` it is written after the executor reports the record durable; under
//!   `on_receipt` right after the frame parses (AR when it does not). In enhanced mode the ACK
//!   is the accept ACK (CA/CE/CR), sent only when MSH-15 asks for it.
//! - truncated or oversize frame: a DLQ record (`RT112`, `RT113`) and an AR when an MSH
//!   segment can be read from the bytes kept, else the connection is closed.
//! - garbage between frames: a DLQ record (`RT111`); no ACK, the connection goes on.
//!
//! Frames are handled one at a time, in order: a sender waiting for each ACK (as MLLP senders
//! do) gets them in the order it sent its messages.

use std::sync::Arc;

use sluice_hl7v2::ack::{self, AckFinding, AckOptions, ErrSeverity, Header, Outcome, Status};
use sluice_hl7v2::charset::{self, Charset, CharsetPolicy};
use sluice_hl7v2::mllp::{self, Event as FrameEvent, Framer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{oneshot, watch};

use super::Shared;
use crate::dlq::{self, Rejection};
use crate::executor::{Completion, Delivery, Event, RawInput};
use crate::findings;
use crate::source;

/// Whether to go on reading after an event.
enum Next {
    Continue,
    Close,
}

struct Conn<S> {
    stream: S,
    label: Arc<str>,
    shared: Arc<Shared>,
    tx: crossbeam_channel::Sender<RawInput>,
    /// Records handed on so far (the `index` of the next one).
    index: u64,
}

/// Serves one connection until the peer closes it, it idles past the timeout, a frame cannot
/// be answered, or `close` turns true (shutdown: in-flight records are answered first).
pub(crate) async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    label: Arc<str>,
    shared: Arc<Shared>,
    tx: crossbeam_channel::Sender<RawInput>,
    mut close: watch::Receiver<bool>,
) {
    let mut framer = Framer::new(shared.max_frame_bytes);
    let mut conn = Conn { stream, label, shared, tx, index: 0 };
    let mut buf = vec![0u8; 16 * 1024];
    let mut events = Vec::new();
    loop {
        let idle = conn.shared.idle;
        let read = tokio::select! {
            r = tokio::time::timeout(idle, conn.stream.read(&mut buf)) => Some(r),
            _ = close.changed() => None,
        };
        let ended = match read {
            Some(Ok(Ok(n))) if n > 0 => {
                framer.push(&buf[..n], &mut events);
                false
            }
            // End of stream, a read error, idle past the timeout, or shutdown.
            _ => {
                framer.finish(&mut events);
                true
            }
        };
        let mut closing = ended;
        let mut answering = true;
        for ev in events.drain(..) {
            if !answering {
                // The connection is being closed: the rest still becomes records, without ACKs.
                conn.submit_quietly(ev).await;
                continue;
            }
            if let Next::Close = conn.handle(ev).await {
                closing = true;
                answering = false;
            }
        }
        if closing {
            break;
        }
    }
    let _ = conn.stream.shutdown().await;
}

fn frame_rejection(ev: &FrameEvent) -> Option<(Rejection, u64, Vec<u8>)> {
    match ev {
        FrameEvent::Frame { .. } => None,
        FrameEvent::Garbage { offset, len, head } => Some((
            Rejection::single(
                findings::MLLP_GARBAGE,
                None,
                format!("{len} byte(s) outside any MLLP frame at stream offset {offset}"),
            ),
            *offset,
            head.clone(),
        )),
        FrameEvent::Truncated { offset, payload } => Some((
            Rejection::single(
                findings::MLLP_TRUNCATED,
                None,
                format!(
                    "MLLP frame at stream offset {offset} did not end with FS CR ({} byte(s) received)",
                    payload.len()
                ),
            ),
            *offset,
            payload.clone(),
        )),
        FrameEvent::Oversize { offset, len, head, .. } => Some((
            Rejection::single(
                findings::MLLP_OVERSIZE,
                None,
                format!(
                    "MLLP frame at stream offset {offset} is {len} byte(s), over max_frame_bytes; its first {} byte(s) are kept",
                    head.len()
                ),
            ),
            *offset,
            head.clone(),
        )),
    }
}

/// The ACK outcome for a record's delivery.
fn outcome_of(d: &Delivery) -> Outcome {
    if d.event != Event::Dlq {
        // Accepted, with a warning ERR per segment left out of the record.
        let findings = d.warnings.iter().map(|w| AckFinding { severity: ErrSeverity::Warning, ..ack_finding(w) });
        return Outcome { status: Status::Accepted, findings: findings.collect() };
    }
    let status = if d.rejected_at_source { Status::Rejected } else { Status::Error };
    Outcome { status, findings: d.findings.iter().map(ack_finding).collect() }
}

fn ack_finding(f: &dlq::Finding) -> AckFinding {
    // Standard checks (HL7V...) name places 1-based already; rules and mappings write spec
    // paths, 0-based.
    let location = match f.code.starts_with("HL7V") {
        true => f.path.clone(),
        false => f.path.as_deref().and_then(ack::location_of_spec_path),
    };
    AckFinding {
        hl7_code: ack::hl7_error_code(f.code),
        code: f.code.to_string(),
        location,
        message: f.message.clone(),
        severity: ErrSeverity::Error,
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    /// Hands a record to the executor; with `wait`, returns its delivery once durable.
    async fn submit(
        &mut self,
        offset: u64,
        bytes: Vec<u8>,
        problem: Option<Rejection>,
        wait: bool,
    ) -> Option<Delivery> {
        let (done, delivered) = if wait {
            let (otx, orx) = oneshot::channel();
            (Some(Completion::new(move |d| drop(otx.send(d)))), Some(orx))
        } else {
            (None, None)
        };
        let raw = RawInput {
            source: self.shared.source,
            file: Arc::clone(&self.label),
            offset,
            index: self.index,
            seq: 0,
            bytes,
            problem,
            completion: done,
            bus: None,
        };
        self.index += 1;
        let tx = self.tx.clone();
        // The channel is bounded (backpressure); block this worker, not the runtime.
        let sent = tokio::task::block_in_place(move || tx.send(raw).is_ok());
        match delivered {
            Some(rx) if sent => rx.await.ok(),
            _ => None,
        }
    }

    /// Hands any event on as a record, without waiting and without an ACK.
    async fn submit_quietly(&mut self, ev: FrameEvent) {
        match ev {
            FrameEvent::Frame { offset, payload } => {
                self.submit(offset, payload, None, false).await;
            }
            other => {
                if let Some((rejection, offset, bytes)) = frame_rejection(&other) {
                    self.submit(offset, bytes, Some(rejection), false).await;
                }
            }
        }
    }

    async fn handle(&mut self, ev: FrameEvent) -> Next {
        let on_commit = self.shared.on_commit;
        match ev {
            FrameEvent::Frame { offset, payload } => {
                let header = self.header(&payload);
                let outcome = if on_commit {
                    let Some(d) = self.submit(offset, payload, None, true).await else { return Next::Close };
                    outcome_of(&d)
                } else {
                    let checked = match source::decode(&payload, offset, &self.shared.profile) {
                        Ok(_) => Outcome::accepted(),
                        Err(r) => {
                            Outcome { status: Status::Rejected, findings: r.findings.iter().map(ack_finding).collect() }
                        }
                    };
                    // Handed on first, so the record is in the pipeline before the peer hears.
                    self.submit(offset, payload, None, false).await;
                    checked
                };
                self.answer(header, &outcome).await
            }
            FrameEvent::Garbage { .. } => {
                self.submit_quietly(ev).await;
                Next::Continue
            }
            FrameEvent::Truncated { .. } | FrameEvent::Oversize { .. } => {
                let Some(rejection) = frame_rejection(&ev) else { return Next::Close };
                let (rejection, offset, bytes) = rejection;
                let header = self.header(&bytes);
                let outcome = Outcome {
                    status: Status::Rejected,
                    findings: rejection.findings.iter().map(ack_finding).collect(),
                };
                if self.submit(offset, bytes, Some(rejection), on_commit).await.is_none() && on_commit {
                    return Next::Close;
                }
                match self.answer(header, &outcome).await {
                    // A truncated frame ends this exchange either way: the peer's state is unknown.
                    Next::Continue if matches!(ev, FrameEvent::Oversize { complete: true, .. }) => Next::Continue,
                    _ => Next::Close,
                }
            }
        }
    }

    /// The header of a frame's message, read in the listener's character set.
    fn header(&self, bytes: &[u8]) -> Option<Header> {
        match charset::decode(bytes, &self.shared.policy) {
            Ok(d) => Header::salvage(d.text.as_bytes()),
            Err(_) => Header::salvage(bytes),
        }
    }

    /// The character set the ACK is written in: the listener's fixed set, else MSH-18.
    fn ack_charset(&self, header: &Header) -> Option<Charset> {
        match self.shared.policy {
            CharsetPolicy::Fixed(c) => Some(c),
            _ => header.charset(),
        }
    }

    /// Writes the ACK due for `outcome` (none in enhanced mode when MSH-15 says so). Without a
    /// header no ACK can be built: the connection is closed.
    async fn answer(&mut self, header: Option<Header>, outcome: &Outcome) -> Next {
        let Some(header) = header else { return Next::Close };
        let now = self.shared.clock.now();
        let timestamp = crate::time::rfc3339_to_hl7(&now);
        let seed = format!("{}|{}|{}|{now}", self.shared.run_id, self.label, self.index);
        let mode = self.shared.mode;
        let acks = ack::acknowledge(&header, outcome, &AckOptions { mode, timestamp: &timestamp, seed: &seed });
        let Some(ack) = acks.immediate(mode) else { return Next::Continue };
        let bytes = mllp::frame(&ack.to_bytes(self.ack_charset(&header)));
        let written = async {
            self.stream.write_all(&bytes).await?;
            self.stream.flush().await
        };
        match tokio::time::timeout(self.shared.idle, written).await {
            Ok(Ok(())) => Next::Continue,
            _ => Next::Close,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(code: &'static str, path: Option<&str>) -> dlq::Finding {
        dlq::Finding { code, rule: None, path: path.map(str::to_string), message: "m".into() }
    }

    #[test]
    fn deliveries_map_to_ack_outcomes() {
        let d =
            |event, at_source, findings| Delivery { event, rejected_at_source: at_source, findings, warnings: vec![] };
        assert_eq!(outcome_of(&d(Event::Delivered, false, vec![])).status, Status::Accepted);
        assert_eq!(outcome_of(&d(Event::Filtered, false, vec![])).status, Status::Accepted);
        let ae = outcome_of(&d(Event::Dlq, false, vec![finding("HL7V201", Some("PID-3"))]));
        assert_eq!(ae.status, Status::Error);
        assert_eq!(ae.findings[0].hl7_code, "101");
        assert_eq!(ae.findings[0].location.as_deref(), Some("PID-3"));
        // A rule's spec path is 0-based: its second repetition is ERL repetition 2.
        let rule = outcome_of(&d(Event::Dlq, false, vec![finding("RT101", Some("PID-3[1].1"))]));
        assert_eq!(rule.findings[0].location.as_deref(), Some("PID-3[2].1"));
        let hl7v = outcome_of(&d(Event::Dlq, false, vec![finding("HL7V201", Some("PID[2]-3"))]));
        assert_eq!(hl7v.findings[0].location.as_deref(), Some("PID[2]-3"));
        let ar = outcome_of(&d(Event::Dlq, true, vec![finding("HL7004", None)]));
        assert_eq!(ar.status, Status::Rejected);
        assert_eq!(ar.findings[0].hl7_code, "100");
        // Delivered without a dropped segment: accepted, with a warning ERR for it.
        let partial = Delivery { warnings: vec![finding("RT114", None)], ..d(Event::Delivered, false, vec![]) };
        let aa = outcome_of(&partial);
        assert_eq!(aa.status, Status::Accepted);
        assert_eq!(aa.findings.len(), 1);
        assert_eq!(aa.findings[0].severity, ErrSeverity::Warning);
    }

    #[test]
    fn framing_problems_name_offsets_and_lengths_never_bytes() {
        let ev = FrameEvent::Garbage { offset: 7, len: 3, head: b"PHI".to_vec() };
        let (r, offset, kept) = frame_rejection(&ev).unwrap();
        assert_eq!((r.code, offset, kept.as_slice()), (findings::MLLP_GARBAGE, 7, &b"PHI"[..]));
        assert!(!r.reason.contains("PHI"));
        let ev = FrameEvent::Oversize { offset: 1, len: 5000, head: b"MSH|".to_vec(), complete: true };
        assert_eq!(frame_rejection(&ev).unwrap().0.code, findings::MLLP_OVERSIZE);
        let ev = FrameEvent::Truncated { offset: 1, payload: b"MSH|".to_vec() };
        assert_eq!(frame_rejection(&ev).unwrap().0.code, findings::MLLP_TRUNCATED);
        assert!(frame_rejection(&FrameEvent::Frame { offset: 1, payload: vec![] }).is_none());
    }
}
