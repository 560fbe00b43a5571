//! Uploads of `jsonl` and `csv` sinks with an object URL: the sink writes its local staging
//! file like any file sink (checkpoints, resume cut-back and all); when the run completes,
//! the file is uploaded to the object.
//!
//! Invariants:
//! - All or nothing: a file up to [`SINGLE_PUT`] goes in one PUT; a larger one as a multipart
//!   upload, which the store makes visible only when it is completed (an upload that fails is
//!   aborted). So readers of the bucket never see half an object, whatever moment a crash hits.
//! - Before `completed`: the upload happens before the run is marked completed in the state
//!   store; a failed upload (RT620) leaves the run resumable and the staging file in place, and
//!   the resumed run uploads the whole file again (a PUT of the same key replaces it).
//! - Memory is bounded: the file is read in parts of [`PART`] bytes, at most two in flight.

use std::io::Read;

use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt, PutPayload, WriteMultipart};
use sluice_compiler::plan::object_store::ObjectUrl;

use super::{Remote, run_error};
use crate::error::RunError;

/// Files up to this size go in one PUT.
const SINGLE_PUT: u64 = 8 * 1024 * 1024;
/// Part size of a multipart upload (S3 takes 5 MiB at least, except for the last part).
const PART: usize = 8 * 1024 * 1024;

/// Uploads the local file `staging` to `url` (`s3://bucket/key`).
pub fn upload(remote: &Remote, staging: &str, url: &str) -> Result<(), RunError> {
    let key = match ObjectUrl::parse(url) {
        Some(Ok(u)) => u.key,
        _ => url.to_string(),
    };
    let location = ObjectPath::from(key.as_str());
    let path = std::path::Path::new(staging);
    let mut file = std::fs::File::open(path).map_err(|e| RunError::io("read", path, &e))?;
    let len = file.metadata().map_err(|e| RunError::io("read", path, &e))?.len();
    let store = &remote.store;
    if len <= SINGLE_PUT {
        let mut bytes = Vec::with_capacity(len as usize);
        file.read_to_end(&mut bytes).map_err(|e| RunError::io("read", path, &e))?;
        remote
            .block_on(store.put(&location, PutPayload::from(bytes)))
            .map_err(|e| run_error(&e, "upload to", url, true))?;
        return Ok(());
    }
    remote.block_on(async {
        let started = store.put_multipart(&location).await.map_err(|e| run_error(&e, "upload to", url, true))?;
        let mut writer = WriteMultipart::new_with_chunk_size(started, PART);
        let mut part = vec![0u8; PART];
        loop {
            let n = read_full(&mut file, &mut part).map_err(|e| RunError::io("read", path, &e))?;
            if n == 0 {
                break;
            }
            if let Err(e) = writer.wait_for_capacity(2).await {
                let _ = writer.abort().await;
                return Err(run_error(&e, "upload to", url, true));
            }
            writer.write(&part[..n]);
        }
        writer.finish().await.map_err(|e| run_error(&e, "upload to", url, true))?;
        Ok(())
    })
}

/// Reads until `buf` is full or the file ends; the bytes read.
fn read_full(file: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}
