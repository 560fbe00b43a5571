//! Streaming reads of objects: a GET whose body arrives in chunks, handed to the splitter
//! through `std::io::Read`, so an object of any size is read with a few chunks in memory.
//!
//! Invariants:
//! - Never whole: at most one body chunk (as the server sends it, typically 8 to 64 KiB) is
//!   held here, besides the reader's own buffer.
//! - Same bytes or nothing: every GET asks for the version the listing saw (`If-Match` its
//!   ETag). A dropped connection is resumed with a ranged GET from the next unread byte (a
//!   few times, with a pause); an object deleted or overwritten meanwhile ends the read with a
//!   [`Vanished`] error, never with bytes of another version.

use std::io::Read;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, GetRange};

use super::Remote;
use crate::state::InputFile;

/// How often a read that failed part-way is resumed before the error stops the run.
const RESUMES: u32 = 4;

/// The error inside an `io::Error` when the object was deleted or overwritten while it was
/// read (RT137): the reader thread ends the object there and goes on with the next one.
#[derive(Debug)]
pub struct Vanished;

impl std::fmt::Display for Vanished {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the object was deleted or overwritten while it was read")
    }
}

impl std::error::Error for Vanished {}

/// `true` when `e` is a [`Vanished`] error.
pub fn vanished(e: &std::io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<Vanished>())
}

/// The run error carried by `e`, when reading an object failed for good (RT135, RT136).
pub fn run_error_in(e: &std::io::Error) -> Option<crate::error::RunError> {
    e.get_ref().and_then(|inner| inner.downcast_ref::<crate::error::RunError>()).cloned()
}

/// An object being read.
pub struct ObjectReader {
    remote: Remote,
    location: ObjectPath,
    url: String,
    etag: Option<String>,
    /// Bytes handed out so far (where a resumed GET starts).
    offset: u64,
    size: u64,
    body: Option<BoxStream<'static, object_store::Result<Bytes>>>,
    chunk: Bytes,
    failures: u32,
}

/// Opens `input` (an object a listing found) for streaming.
pub fn open(remote: &Remote, input: &InputFile) -> ObjectReader {
    let key = input.path.strip_prefix(&remote.base).unwrap_or(&input.path).trim_start_matches('/');
    ObjectReader {
        remote: remote.clone(),
        location: ObjectPath::from(key),
        url: input.path.clone(),
        etag: input.etag.clone().filter(|e| !e.starts_with("size=")),
        offset: 0,
        size: input.size,
        body: None,
        chunk: Bytes::new(),
        failures: 0,
    }
}

impl ObjectReader {
    /// Starts a GET of the rest of the object (from `offset`).
    fn start(&mut self) -> std::io::Result<()> {
        let options = GetOptions {
            if_match: self.etag.clone(),
            range: (self.offset > 0).then_some(GetRange::Offset(self.offset)),
            ..GetOptions::default()
        };
        let store = std::sync::Arc::clone(&self.remote.store);
        let location = self.location.clone();
        match self.remote.block_on(async move { store.get_opts(&location, options).await }) {
            Ok(got) => {
                self.body = Some(got.into_stream());
                Ok(())
            }
            Err(e) => Err(self.classify(e)),
        }
    }

    fn classify(&self, e: object_store::Error) -> std::io::Error {
        use object_store::Error as E;
        match e {
            E::NotFound { .. } | E::Precondition { .. } => std::io::Error::new(std::io::ErrorKind::NotFound, Vanished),
            other => {
                let run = super::run_error(&other, "read", &self.url, false);
                std::io::Error::other(run)
            }
        }
    }

    /// The next chunk of the body: `Ok(None)` at the end of the object.
    fn next_chunk(&mut self) -> std::io::Result<Option<Bytes>> {
        loop {
            if self.body.is_none() {
                if self.offset >= self.size && self.size > 0 {
                    return Ok(None);
                }
                self.start()?;
            }
            let Some(body) = self.body.as_mut() else { return Ok(None) };
            let next = self.remote.block_on(body.next());
            match next {
                Some(Ok(bytes)) => {
                    self.offset += bytes.len() as u64;
                    return Ok(Some(bytes));
                }
                None if self.offset >= self.size => return Ok(None),
                // The body ended early or broke off: resume from the next unread byte.
                None | Some(Err(_)) => {
                    self.body = None;
                    self.failures += 1;
                    if self.failures > RESUMES {
                        return Err(std::io::Error::other(crate::error::RunError::new(
                            crate::findings::OBJECT_STORE_UNREACHABLE,
                            format!("cannot read `{}`: the connection kept breaking off", self.url),
                        )));
                    }
                    std::thread::sleep(Duration::from_millis(200 * u64::from(self.failures)));
                }
            }
        }
    }
}

impl Read for ObjectReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        while self.chunk.is_empty() {
            match self.next_chunk()? {
                Some(c) => self.chunk = c,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk[..n]);
        let _ = self.chunk.split_to(n);
        Ok(n)
    }
}
