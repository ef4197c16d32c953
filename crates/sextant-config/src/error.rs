//! Configuration errors: every problem found, each one sentence with its fix.

use std::fmt;
use std::path::PathBuf;

/// One thing wrong with the configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key, e.g. `listener.listen`; empty when the problem is the file itself.
    pub key: String,
    /// What is wrong and how to fix it, as one sentence.
    pub message: String,
}

/// A daemon started with a configuration that has no section for it.
#[derive(Debug, thiserror::Error)]
#[error(
    "the configuration has no [{0}] section; add one (see samples/sextant.toml and docs/configuration.md)"
)]
pub struct MissingSection(pub &'static str);

/// `section`, or the error naming it.
pub fn required<'a, T>(
    section: Option<&'a T>,
    name: &'static str,
) -> Result<&'a T, MissingSection> {
    section.ok_or(MissingSection(name))
}

/// The configuration does not load: every problem found, with the file.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    /// The file read.
    pub path: PathBuf,
    /// Each problem, in the order found.
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            if problem.key.is_empty() {
                write!(f, "{}: {}", self.path.display(), problem.message)?;
            } else {
                write!(
                    f,
                    "{}: `{}`: {}",
                    self.path.display(),
                    problem.key,
                    problem.message
                )?;
            }
        }
        Ok(())
    }
}

impl ConfigError {
    pub(crate) fn one(path: PathBuf, key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path,
            problems: vec![Problem {
                key: key.into(),
                message: message.into(),
            }],
        }
    }
}
