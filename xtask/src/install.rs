//! `cargo xtask install`: the binaries, systemd units, sysusers entry, documentation
//! and a starting configuration, laid out as docs/operations.md describes.
//!
//! `--destdir` stages the tree under another root (for packaging, and for the test
//! that boots the staged tree under systemd); the units name the binaries by their
//! final path under `--prefix`, never by the staging path.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::{cargo, workspace_root};

pub(crate) const BINARIES: &[&str] = &[
    "sextant-listener",
    "sextant-authority",
    "sextant-transfer",
    "sextant-resolver",
    "sextantctl",
];

/// Where each kind of file goes, under the staging root.
#[derive(Debug)]
pub(crate) struct Layout {
    pub prefix: PathBuf,
    pub destdir: PathBuf,
}

impl Layout {
    fn staged(&self, path: &Path) -> PathBuf {
        let relative = path.strip_prefix("/").unwrap_or(path);
        self.destdir.join(relative)
    }
    pub(crate) fn bin_dir(&self) -> PathBuf {
        self.prefix.join("bin")
    }
    pub(crate) fn unit_dir(&self) -> PathBuf {
        self.prefix.join("lib/systemd/system")
    }
    pub(crate) fn sysusers_dir(&self) -> PathBuf {
        self.prefix.join("lib/sysusers.d")
    }
    pub(crate) fn doc_dir(&self) -> PathBuf {
        self.prefix.join("share/doc/sextant")
    }
    pub(crate) fn config_dir(&self) -> PathBuf {
        PathBuf::from("/etc/sextant")
    }
}

/// The units in deploy/ name `/usr/bin/<daemon>`; an install elsewhere rewrites that.
pub(crate) fn unit_text(text: &str, layout: &Layout) -> String {
    let bin = layout.bin_dir();
    text.replace("/usr/bin/sextant", &format!("{}/sextant", bin.display()))
}

pub(crate) fn install(
    prefix: &Path,
    destdir: Option<&Path>,
    debug: bool,
    no_build: bool,
) -> anyhow::Result<()> {
    if !prefix.is_absolute() {
        bail!(
            "--prefix {} is relative; give an absolute path such as /usr/local",
            prefix.display()
        );
    }
    let layout = Layout {
        prefix: prefix.to_path_buf(),
        destdir: destdir.map_or_else(|| PathBuf::from("/"), Path::to_path_buf),
    };
    let root = workspace_root();
    let profile = if debug { "debug" } else { "release" };
    if !no_build {
        let mut args = vec!["build", "--workspace", "--bins"];
        if !debug {
            args.push("--release");
        }
        cargo(&args)?;
    }
    let built = root.join("target").join(profile);

    for binary in BINARIES {
        copy(
            &built.join(binary),
            &layout.staged(&layout.bin_dir().join(binary)),
            0o755,
        )?;
    }
    for entry in std::fs::read_dir(root.join("deploy")).context("reading deploy/")? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if name.ends_with(".service") || name.ends_with(".target") {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            write(
                &layout.staged(&layout.unit_dir().join(name)),
                &unit_text(&text, &layout),
                0o644,
            )?;
        }
    }
    copy(
        &root.join("deploy/sysusers-sextant.conf"),
        &layout.staged(&layout.sysusers_dir().join("sextant.conf")),
        0o644,
    )?;
    for doc in [
        "README.md",
        "ARCHITECTURE.md",
        "docs/configuration.md",
        "docs/operations.md",
    ] {
        let name = Path::new(doc).file_name().unwrap_or_default();
        copy(
            &root.join(doc),
            &layout.staged(&layout.doc_dir().join(name)),
            0o644,
        )?;
    }
    for sample in std::fs::read_dir(root.join("samples")).context("reading samples/")? {
        let path = sample?.path();
        if path.extension().is_some_and(|e| e == "toml") {
            let name = path.file_name().unwrap_or_default();
            copy(
                &path,
                &layout.staged(&layout.doc_dir().join("samples").join(name)),
                0o644,
            )?;
        }
    }

    // An operator's configuration is never overwritten by a reinstall.
    let config = layout.staged(&layout.config_dir().join("sextant.toml"));
    let zone = layout.staged(&layout.config_dir().join("zones/example.com.zone"));
    let mut kept = Vec::new();
    for (from, to) in [
        (root.join("deploy/sextant.toml"), &config),
        (root.join("samples/zones/example.com.zone"), &zone),
    ] {
        if to.exists() {
            kept.push(to.display().to_string());
        } else {
            copy(&from, to, 0o644)?;
        }
    }

    println!(
        "installed under {} (prefix {})",
        layout.destdir.display(),
        layout.prefix.display()
    );
    println!("  binaries        {}", layout.bin_dir().display());
    println!("  systemd units   {}", layout.unit_dir().display());
    println!(
        "  sysusers        {}/sextant.conf",
        layout.sysusers_dir().display()
    );
    println!("  documentation   {}", layout.doc_dir().display());
    println!("  configuration   {}", layout.config_dir().display());
    for path in kept {
        println!("  kept existing   {path}");
    }
    if destdir.is_none() {
        println!();
        println!("next: systemd-sysusers && systemctl daemon-reload");
        println!(
            "      edit /etc/sextant/sextant.toml, then systemctl enable --now sextant.target"
        );
    }
    Ok(())
}

fn copy(from: &Path, to: &Path, mode: u32) -> anyhow::Result<()> {
    let bytes = std::fs::read(from).with_context(|| {
        format!(
            "cannot read {}; build it first or drop --no-build",
            from.display()
        )
    })?;
    write_bytes(to, &bytes, mode)
}

fn write(to: &Path, text: &str, mode: u32) -> anyhow::Result<()> {
    write_bytes(to, text.as_bytes(), mode)
}

/// Writes beside the target and renames, so that replacing a running binary never
/// leaves a half-written file at its path.
fn write_bytes(to: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = to
        .parent()
        .context("installing to a path without a parent")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let temporary = dir.join(format!(
        ".{}.new",
        to.file_name().unwrap_or_default().to_string_lossy()
    ));
    std::fs::write(&temporary, bytes)
        .with_context(|| format!("writing {}", temporary.display()))?;
    std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", temporary.display()))?;
    std::fs::rename(&temporary, to).with_context(|| format!("installing {}", to.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_name_the_binaries_under_the_prefix() {
        let layout = Layout {
            prefix: PathBuf::from("/usr/local"),
            destdir: PathBuf::from("/stage"),
        };
        let unit =
            "ExecStartPre=/usr/bin/sextant-listener --check\nExecReload=/bin/kill -HUP $MAINPID\n";
        assert_eq!(
            unit_text(unit, &layout),
            "ExecStartPre=/usr/local/bin/sextant-listener --check\nExecReload=/bin/kill -HUP $MAINPID\n"
        );
        assert_eq!(
            layout.staged(&layout.unit_dir().join("x.service")),
            PathBuf::from("/stage/usr/local/lib/systemd/system/x.service")
        );
        assert_eq!(
            layout.staged(&layout.config_dir()),
            PathBuf::from("/stage/etc/sextant")
        );
    }

    #[test]
    fn a_prefix_of_usr_leaves_the_units_as_they_are() {
        let layout = Layout {
            prefix: PathBuf::from("/usr"),
            destdir: PathBuf::from("/"),
        };
        let unit = "ExecStart=/usr/bin/sextant-authority --config /etc/sextant/sextant.toml";
        assert_eq!(unit_text(unit, &layout), unit);
    }
}
