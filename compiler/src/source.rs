//! Spec files as loaded, and byte spans into them.
//!
//! Every diagnostic points into a [`SourceFile`] through a [`Span`] of byte offsets; line and
//! column are derived (1-based, columns in characters) only when rendering.

use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId(pub usize);

/// A byte range in one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Span {
    pub file: FileId,
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(file: FileId, start: usize, end: usize) -> Span {
        Span { file, start, end: end.max(start) }
    }

    /// A sub-range, given in bytes relative to this span's start (clamped to the span).
    pub fn sub(self, offset: usize, len: usize) -> Span {
        let start = (self.start + offset).min(self.end);
        Span::new(self.file, start, (start + len).min(self.end.max(start + len.min(1))))
    }
}

#[derive(Debug)]
pub struct SourceFile {
    /// The path as the user would write it (relative to the working directory when possible).
    pub name: String,
    pub path: PathBuf,
    pub text: String,
    line_starts: Vec<usize>,
}

impl SourceFile {
    pub fn new(path: &Path, text: String) -> SourceFile {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        SourceFile { name: display_path(path), path: path.to_path_buf(), text, line_starts }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&s| s <= offset) - 1;
        let start = self.line_starts[line];
        let col = self.text.get(start..offset).map_or(0, |s| s.chars().count());
        (line + 1, col + 1)
    }

    /// Byte offset of a 1-based line and 0-based character column (as the YAML parser reports).
    pub fn offset_of(&self, line: usize, col_chars: usize) -> usize {
        let Some(&start) = self.line_starts.get(line.saturating_sub(1)) else {
            return self.text.len();
        };
        let rest = &self.text[start..];
        rest.char_indices().nth(col_chars).map_or(self.text.len(), |(i, _)| start + i)
    }

    /// The line (1-based) where a byte offset is, for `file:line` references in plans.
    pub fn line_of(&self, offset: usize) -> usize {
        self.line_col(offset).0
    }
}

/// All files loaded in one compilation.
#[derive(Debug, Default)]
pub struct SourceMap {
    files: Vec<SourceFile>,
}

impl SourceMap {
    pub fn add(&mut self, file: SourceFile) -> FileId {
        self.files.push(file);
        FileId(self.files.len() - 1)
    }

    pub fn get(&self, id: FileId) -> &SourceFile {
        &self.files[id.0]
    }

    pub fn find(&self, path: &Path) -> Option<FileId> {
        self.files.iter().position(|f| f.path == path).map(FileId)
    }

    /// `file:line` of a span, for "decided at" references in plans.
    pub fn location(&self, span: Span) -> String {
        let file = self.get(span.file);
        format!("{}:{}", file.name, file.line_of(span.start))
    }
}

/// Normalizes `a/b/../c` to `a/c` without touching the file system, so plans do not depend on
/// where the repository is checked out.
pub fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out: Vec<Component> = Vec::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => match out.last() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                _ => out.push(c),
            },
            _ => out.push(c),
        }
    }
    if out.is_empty() {
        return PathBuf::from(".");
    }
    out.iter().collect()
}

/// A path for display: relative to the working directory when it is inside it.
pub fn display_path(path: &Path) -> String {
    let path = normalize(path);
    if let Ok(cwd) = std::env::current_dir()
        && let Ok(rel) = path.strip_prefix(&cwd)
    {
        return rel.display().to_string();
    }
    path.display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_characters() {
        let f = SourceFile::new(Path::new("x.yaml"), "a: 1\nbé: x\n".into());
        assert_eq!(f.line_col(0), (1, 1));
        assert_eq!(f.line_col(5), (2, 1));
        assert_eq!(f.line_col(9), (2, 4)); // after "bé:" (é is 2 bytes)
        assert_eq!(f.offset_of(2, 3), 9);
    }

    #[test]
    fn normalize_is_lexical() {
        assert_eq!(normalize(Path::new("pipelines/../out/x.jsonl")), PathBuf::from("out/x.jsonl"));
        assert_eq!(normalize(Path::new("../a/./b")), PathBuf::from("../a/b"));
    }
}
