//! A spill file: byte strings parked on disk instead of in memory while a reader waits to
//! know what to do with them (the X12 source holds an interchange's transaction sets until its
//! trailers say whether they are accepted, [`crate::x12_source`]).
//!
//! Invariants:
//! - Nothing is left behind: the file never has a name a process could find (`tempfile`:
//!   `O_TMPFILE` on Linux, created and unlinked at once elsewhere), so it is gone when the
//!   spill is dropped or the process ends, however it ends.
//! - The disk never holds the data in the clear (it may be PHI): each string is sealed with
//!   AES-256-GCM under a key drawn at random when the spill is made and held only in this
//!   process's memory, with a nonce of its own (a counter: never reused under one key).
//! - A string read back is the one written, or an error: the tag binds the sealed bytes to
//!   their nonce, so a corrupted or misplaced read fails instead of returning other bytes.
//! - The space is reused: when every string put has been taken back, the file is emptied.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

/// Where one string was parked; [`Spill::take`] reads it back.
#[derive(Debug)]
pub struct Parked {
    at: u64,
    /// Sealed length (the string and its tag).
    len: usize,
    nonce: u64,
}

/// The spill file and its key.
pub struct Spill {
    file: File,
    key: LessSafeKey,
    /// The next nonce.
    counter: u64,
    /// Where the next string goes.
    end: u64,
    /// Strings put and not yet taken.
    parked: usize,
}

impl std::fmt::Debug for Spill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spill").field("end", &self.end).field("parked", &self.parked).finish_non_exhaustive()
    }
}

impl Spill {
    /// A new, empty spill file in `dir` (the system's temporary directory:
    /// [`std::env::temp_dir`], which reads `TMPDIR`).
    pub fn new_in(dir: &std::path::Path) -> io::Result<Spill> {
        let mut secret = [0u8; 32];
        SystemRandom::new()
            .fill(&mut secret)
            .map_err(|_| io::Error::other("the system's random number generator failed"))?;
        let key = UnboundKey::new(&AES_256_GCM, &secret).map_err(|_| io::Error::other("the spill key was refused"))?;
        Ok(Spill { file: tempfile::tempfile_in(dir)?, key: LessSafeKey::new(key), counter: 0, end: 0, parked: 0 })
    }

    /// Bytes the file holds now.
    pub fn len(&self) -> u64 {
        self.end
    }

    /// Whether the file holds nothing.
    pub fn is_empty(&self) -> bool {
        self.end == 0
    }

    fn nonce(n: u64) -> Nonce {
        let mut bytes = [0u8; NONCE_LEN];
        bytes[NONCE_LEN - 8..].copy_from_slice(&n.to_be_bytes());
        Nonce::assume_unique_for_key(bytes)
    }

    /// Seals `bytes` and writes them at the end of the file.
    pub fn put(&mut self, mut bytes: Vec<u8>) -> io::Result<Parked> {
        let nonce = self.counter;
        self.counter += 1;
        self.key
            .seal_in_place_append_tag(Self::nonce(nonce), Aad::empty(), &mut bytes)
            .map_err(|_| io::Error::other("sealing a spilled string failed"))?;
        self.file.seek(SeekFrom::Start(self.end))?;
        self.file.write_all(&bytes)?;
        let parked = Parked { at: self.end, len: bytes.len(), nonce };
        self.end += bytes.len() as u64;
        self.parked += 1;
        Ok(parked)
    }

    /// Reads back and opens what `parked` names (each string is taken once).
    pub fn take(&mut self, parked: Parked) -> io::Result<Vec<u8>> {
        let mut bytes = vec![0u8; parked.len];
        self.file.seek(SeekFrom::Start(parked.at))?;
        self.file.read_exact(&mut bytes)?;
        let plain = self
            .key
            .open_in_place(Self::nonce(parked.nonce), Aad::empty(), &mut bytes)
            .map_err(|_| io::Error::other("a spilled string failed its integrity check (the spill file was changed)"))?
            .len();
        bytes.truncate(plain);
        self.parked = self.parked.saturating_sub(1);
        if self.parked == 0 {
            self.file.set_len(0)?;
            self.end = 0;
        }
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_come_back_as_written_and_the_file_is_emptied_when_all_are_taken() {
        let mut spill = Spill::new_in(&std::env::temp_dir()).unwrap();
        let a = spill.put(b"ST*837*0001~".to_vec()).unwrap();
        let b = spill.put(Vec::new()).unwrap();
        let c = spill.put(vec![7u8; 100_000]).unwrap();
        assert!(spill.len() > 100_000);
        assert_eq!(spill.take(b).unwrap(), b"");
        assert_eq!(spill.take(a).unwrap(), b"ST*837*0001~");
        assert!(!spill.is_empty());
        assert_eq!(spill.take(c).unwrap(), vec![7u8; 100_000]);
        assert!(spill.is_empty());
        // The space is reused, under fresh nonces.
        let d = spill.put(b"again".to_vec()).unwrap();
        assert_eq!(d.at, 0);
        assert_eq!(spill.take(d).unwrap(), b"again");
    }

    #[test]
    fn the_disk_holds_no_clear_text_and_a_changed_byte_is_an_error() {
        let mut spill = Spill::new_in(&std::env::temp_dir()).unwrap();
        let secret = b"NM1*IL*1*DOE*JANE****MI*123456789~".to_vec();
        let parked = spill.put(secret.clone()).unwrap();
        let mut on_disk = Vec::new();
        spill.file.seek(SeekFrom::Start(0)).unwrap();
        spill.file.read_to_end(&mut on_disk).unwrap();
        assert_eq!(on_disk.len(), secret.len() + AES_256_GCM.tag_len());
        assert!(!on_disk.windows(3).any(|w| w == b"DOE"), "the name is on disk in the clear");
        on_disk[5] ^= 1;
        spill.file.seek(SeekFrom::Start(0)).unwrap();
        spill.file.write_all(&on_disk).unwrap();
        let err = spill.take(parked).unwrap_err();
        assert!(err.to_string().contains("integrity check"), "{err}");
    }
}
