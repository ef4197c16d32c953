//! Reading the file, applying environment overrides, resolving relative paths and
//! checking the result as a whole.

use std::path::Path;

use crate::{Config, ConfigError};

/// Environment variables `SEXTANT__LISTENER__BACKEND_TIMEOUT=3s` override the file.
const ENV_PREFIX: &str = "SEXTANT";
const ENV_SEPARATOR: &str = "__";

/// Loads and validates the configuration file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    if !path.is_file() {
        return Err(ConfigError::one(
            path.to_path_buf(),
            "",
            "cannot read the configuration file: it does not exist or is not a file; pass an existing file with --config",
        ));
    }
    let raw = config::Config::builder()
        .add_source(config::File::from(path).format(config::FileFormat::Toml))
        .add_source(
            config::Environment::with_prefix(ENV_PREFIX)
                .prefix_separator(ENV_SEPARATOR)
                .separator(ENV_SEPARATOR),
        )
        .build()
        .map_err(|e| ConfigError::one(path.to_path_buf(), "", syntax_message(&e)))?;
    let mut config: Config = raw
        .try_deserialize()
        .map_err(|e| deserialize_error(path, &e))?;

    // Relative paths start at the file's directory, made absolute so that they do not
    // change meaning with the daemon's working directory.
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let base = std::path::absolute(parent).unwrap_or_else(|_| parent.to_path_buf());
    config.resolve_paths(&base);
    config.source = Some(std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()));
    let problems = config.problems().into_vec();
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(ConfigError {
            path: path.to_path_buf(),
            problems,
        })
    }
}

/// The TOML parser's report is several lines with a drawing; keep its position and
/// its diagnosis on one line.
fn syntax_message(error: &config::ConfigError) -> String {
    let text = error.to_string();
    let position = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .and_then(|first| first.strip_prefix("TOML parse error at "))
        .map(str::to_string);
    let diagnosis = text
        .lines()
        .map(str::trim)
        .rfind(|l| {
            !l.is_empty() && !l.starts_with('|') && !l.contains(" | ") && !l.starts_with("in ")
        })
        .map(str::to_string);
    match (position, diagnosis) {
        (Some(position), Some(diagnosis)) => {
            format!("invalid TOML at {position}: {diagnosis}; fix the syntax there")
        }
        _ => format!("invalid TOML ({}); fix the syntax", text.replace('\n', " ")),
    }
}

/// Turns serde's messages into one sentence with the key and the fix.
fn deserialize_error(path: &Path, error: &config::ConfigError) -> ConfigError {
    let (key, inner) = match error {
        config::ConfigError::At { error, key, .. } => {
            (key.clone().unwrap_or_default(), error.to_string())
        }
        other => (String::new(), other.to_string()),
    };
    let message = if let Some(rest) = inner.strip_prefix("unknown field ") {
        let (field, expected) = rest.split_once(", expected").unwrap_or((rest, ""));
        let field = field.trim_matches('`');
        let key = if key.is_empty() {
            field.to_string()
        } else {
            format!("{key}.{field}")
        };
        return ConfigError::one(
            path.to_path_buf(),
            key,
            format!(
                "unknown key; the keys allowed here are {}; check the spelling (see docs/configuration.md)",
                expected.trim_start_matches(" one of ").trim_start()
            ),
        );
    } else if inner.starts_with("missing field ") {
        format!("{inner}; add it (see samples/sextant.toml)")
    } else {
        format!("{inner}; fix the value (see docs/configuration.md)")
    };
    let message = match from_environment(&key) {
        Some(variable) => {
            format!("{message} (the value comes from the environment variable {variable})")
        }
        None => message,
    };
    ConfigError::one(path.to_path_buf(), key, message)
}

/// The environment variable that set `key`, if one did.
fn from_environment(key: &str) -> Option<String> {
    if key.is_empty() {
        return None;
    }
    let variable = format!(
        "{ENV_PREFIX}{ENV_SEPARATOR}{}",
        key.to_ascii_uppercase().replace('.', ENV_SEPARATOR)
    );
    std::env::var_os(&variable).map(|_| variable)
}

/// The secret of a key, decoded (`None` when it is not base64).
pub fn key_secret(text: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn a_signature_refresh_that_leaves_no_room_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let config = |validity: &str, refresh: &str| {
            let text = format!(
                "[log]\nlevel = \"info\"\n[[dnssec_policy]]\nname = \"p\"\nsignature_validity = \"{validity}\"\nsignature_refresh = \"{refresh}\"\n"
            );
            load(&write(dir.path(), "p.toml", &text))
        };
        assert!(config("14d", "5d").is_ok());
        // Two hours less the spread (12 min) and the window (15 min) leave room.
        assert!(config("2h", "1h").is_ok());
        // 13 days: new signatures (expiring 12.6 to 14 days out) fall due at once.
        let error = config("14d", "13d").unwrap_err().to_string();
        assert!(error.contains("signature_refresh"), "{error}");
        assert!(error.contains("1h"), "{error}");
        let error = config("14d", "12d 15h").unwrap_err().to_string();
        assert!(error.contains("signature_refresh"), "{error}");
    }

    #[test]
    fn loads_sections_with_defaults_and_relative_paths() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "z.zone", "");
        let path = write(
            dir.path(),
            "s.toml",
            r#"
[listener]
listen = ["127.0.0.1:0"]
[authority]
grpc = "unix:auth.sock"
[[authority.zone]]
name = "Example.COM"
file = "z.zone"
"#,
        );
        let config = load(&path).unwrap();
        let listener = config.listener.as_ref().unwrap();
        assert_eq!(listener.backend_lanes, 2);
        assert_eq!(
            config.authority_endpoint(),
            Some(&crate::Endpoint::Unix(dir.path().join("auth.sock")))
        );
        let zone = &config.authority.as_ref().unwrap().zones[0];
        assert_eq!(zone.name.to_string(), "example.com.");
        assert_eq!(zone.file, dir.path().join("z.zone"));
    }

    #[test]
    fn unknown_key_names_file_key_and_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "s.toml",
            "[listener]\nlisten = [\"127.0.0.1:0\"]\nlissten = 1\n",
        );
        let err = load(&path).unwrap_err().to_string();
        assert!(err.contains("s.toml"), "{err}");
        assert!(err.contains("`listener.lissten`: unknown key"), "{err}");
        assert!(err.contains("listen"), "{err}");
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "s.toml",
            r#"
[listener]
listen = []
backend_lanes = 0
[authority]
grpc = "unix:a.sock"
[[authority.zone]]
name = "example.com"
file = "missing.zone"
"#,
        );
        let err = load(&path).unwrap_err();
        let keys: Vec<_> = err.problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "listener.listen",
                "listener.backend_lanes",
                "authority.zone"
            ]
        );
        assert!(
            err.to_string()
                .contains("missing.zone of zone example.com. does not exist")
        );
    }

    #[test]
    fn bad_values_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "s.toml", "[listener]\nlisten = [\"nowhere\"]\n");
        let err = load(&path).unwrap_err().to_string();
        assert!(err.contains("listener.listen"), "{err}");
        let path = write(dir.path(), "t.toml", "[authority]\ngrpc = \"localhost\"\n");
        let err = load(&path).unwrap_err().to_string();
        assert!(err.contains("unix:/path/to.sock"), "{err}");
    }

    #[test]
    fn failure_holds_are_ordered_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "s.toml",
            "[resolver]\ngrpc = \"unix:r.sock\"\nfailure_ttl = \"1m\"\nfailure_ttl_max = \"10m\"\n",
        );
        let err = load(&path).unwrap_err();
        let keys: Vec<_> = err.problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["resolver.failure_ttl_max"]);
        let path = write(
            dir.path(),
            "t.toml",
            "[resolver]\ngrpc = \"unix:r.sock\"\nfailure_ttl = \"1m\"\nfailure_ttl_max = \"10s\"\n",
        );
        let err = load(&path).unwrap_err().to_string();
        assert!(err.contains("above resolver.failure_ttl_max"), "{err}");
    }

    #[test]
    fn missing_file_says_so() {
        let err = load(Path::new("/nonexistent/sextant.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/nonexistent/sextant.toml: cannot read"),
            "{err}"
        );
    }
}
