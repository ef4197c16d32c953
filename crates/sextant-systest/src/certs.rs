//! Certificates for tests of mutual TLS, made with the `openssl` command: a CA of the
//! test's own and hosts it signs, each valid for 127.0.0.1 and for client and server
//! use, as an operator's private CA would make them.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// A CA in a directory: `NAME-ca.pem` and its key.
#[derive(Debug)]
pub struct TestCa {
    dir: PathBuf,
    name: String,
}

fn openssl(args: &[&str]) -> anyhow::Result<()> {
    let output = Command::new("openssl")
        .args(args)
        .output()
        .context("running openssl (install the openssl package)")?;
    if !output.status.success() {
        bail!(
            "openssl {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

impl TestCa {
    /// Makes the CA `name` in `dir`.
    pub fn new(dir: &Path, name: &str) -> anyhow::Result<TestCa> {
        let ca = TestCa {
            dir: dir.to_path_buf(),
            name: name.to_string(),
        };
        let (pem, key) = (ca.certificate(), ca.file("ca.key"));
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name} test CA"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
            path(&key)?,
            "-out",
            path(&pem)?,
        ])?;
        Ok(ca)
    }

    /// The CA's certificate (PEM).
    pub fn certificate(&self) -> PathBuf {
        self.file("ca.pem")
    }

    fn file(&self, suffix: &str) -> PathBuf {
        self.dir.join(format!("{}-{suffix}", self.name))
    }

    /// A host certificate and key signed by this CA, for 127.0.0.1:
    /// `NAME-HOST.pem`, `NAME-HOST.key`.
    pub fn host(&self, host: &str) -> anyhow::Result<(PathBuf, PathBuf)> {
        self.host_at(host, std::net::Ipv4Addr::LOCALHOST.into())
    }

    /// [`TestCa::host`] for the address `ip`.
    pub fn host_at(&self, host: &str, ip: std::net::IpAddr) -> anyhow::Result<(PathBuf, PathBuf)> {
        let (pem, key, csr, ext) = (
            self.file(&format!("{host}.pem")),
            self.file(&format!("{host}.key")),
            self.file(&format!("{host}.csr")),
            self.file(&format!("{host}.ext")),
        );
        std::fs::write(
            &ext,
            format!(
                "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=IP:{ip}\n"
            ),
        )?;
        openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            &format!("/CN={host}"),
            "-keyout",
            path(&key)?,
            "-out",
            path(&csr)?,
        ])?;
        openssl(&[
            "x509",
            "-req",
            "-in",
            path(&csr)?,
            "-CA",
            path(&self.certificate())?,
            "-CAkey",
            path(&self.file("ca.key"))?,
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            path(&ext)?,
            "-out",
            path(&pem)?,
        ])?;
        Ok((pem, key))
    }
}

fn path(path: &Path) -> anyhow::Result<&str> {
    path.to_str().context("a non-UTF-8 temporary path")
}
