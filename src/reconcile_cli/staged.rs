//! Output files of `sluice reconcile` staged beside their targets and put in place together.
//!
//! Invariants: a staged file is `<target>.partial` (its whole name, so targets differing only by
//! extension never share one); a failure while staging or publishing removes every staged file
//! it has not put in place, so nothing half-written is left behind.

use std::path::{Path, PathBuf};

use super::io_error;

/// Where an output is written before it is put in place: its whole name plus `.partial`
/// (`summary.json` -> `summary.json.partial`), so outputs that differ only by their extension
/// do not share one.
fn staging_path(target: &Path) -> PathBuf {
    let mut name = target.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

/// Output files complete beside their targets, not yet in place.
pub(super) struct Staged(Vec<(PathBuf, String)>);

impl Staged {
    /// Writes every file to its staging path; on a failure removes what it staged.
    pub(super) fn write(files: &[(&str, String)]) -> Result<Staged, u8> {
        let mut staged = Staged(Vec::new());
        for (path, body) in files {
            let target = Path::new(path);
            if let Some(dir) = target.parent()
                && let Err(e) = std::fs::create_dir_all(dir)
            {
                staged.discard();
                return Err(io_error("create the folder of", path, &e));
            }
            let tmp = staging_path(target);
            if let Err(e) = std::fs::write(&tmp, body) {
                staged.discard();
                return Err(io_error("write", path, &e));
            }
            staged.0.push((tmp, path.to_string()));
        }
        Ok(staged)
    }

    pub(super) fn discard(self) {
        for (tmp, _) in self.0 {
            let _ = std::fs::remove_file(tmp);
        }
    }

    /// Renames every file into place.
    pub(super) fn publish(self) -> Result<(), (String, std::io::Error)> {
        let mut files = self.0.into_iter();
        while let Some((tmp, path)) = files.next() {
            if let Err(e) = std::fs::rename(&tmp, &path) {
                let _ = std::fs::remove_file(&tmp);
                Staged(files.collect()).discard();
                return Err((path, e));
            }
        }
        Ok(())
    }
}
