//! Zone errors and warnings, each naming the file and line and saying what to do.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

/// Where a record came from: a file (or `$INCLUDE`d file) and a line, 1-based.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub file: Arc<PathBuf>,
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
    pub location: Location,
    pub message: String,
}

/// Something the loader fixed or ignored; the zone is served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneWarning {
    pub location: Location,
    pub message: String,
}

impl fmt::Display for ZoneWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}
