//! Zone errors and warnings, each naming the file and line and saying what to do.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

/// Where a record came from: a file (or `$INCLUDE`d file) and a line, 1-based.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// The file.
    pub file: Arc<PathBuf>,
    /// The line, from 1.
    pub line: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// A zone that cannot be served, with the place and the fix in one sentence.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{location}: {message}")]
pub struct ZoneError {
    /// Where.
    pub location: Location,
    /// What is wrong and the fix.
    pub message: String,
}

/// Something the loader fixed or ignored; the zone is served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneWarning {
    /// Where.
    pub location: Location,
    /// What was fixed or ignored.
    pub message: String,
}

impl fmt::Display for ZoneWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}
