//! Signed zones for tests, made by the field's own signers: `dnssec-signzone`
//! (bind9-utils), `ldns-signzone` (ldnsutils) and Knot's own signing. Keys are made
//! fresh in the test's directory; signatures are valid for a year.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// Which tool signs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signer {
    /// BIND's `dnssec-signzone`.
    Bind,
    /// NLnet Labs' `ldns-signzone`.
    Ldns,
    /// Knot DNS signing the zone itself (`dnssec-signing: on`), then writing it out.
    Knot,
}

/// How the signed zone denies existence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Denial {
    /// NSEC records.
    Nsec,
    /// NSEC3, no salt, no extra iterations (RFC 9276).
    Nsec3,
    /// NSEC3 with Opt-Out: unsigned delegations get no NSEC3 of their own.
    Nsec3OptOut,
}

/// The signing algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    /// RSA/SHA-256, 2048-bit keys (8).
    RsaSha256,
    /// ECDSA P-256 with SHA-256 (13).
    EcdsaP256,
    /// Ed25519 (15).
    Ed25519,
}

impl Algorithm {
    fn bind_name(self) -> &'static str {
        match self {
            Algorithm::RsaSha256 => "RSASHA256",
            Algorithm::EcdsaP256 => "ECDSAP256SHA256",
            Algorithm::Ed25519 => "ED25519",
        }
    }

    fn knot_name(self) -> &'static str {
        match self {
            Algorithm::RsaSha256 => "rsasha256",
            Algorithm::EcdsaP256 => "ecdsap256sha256",
            Algorithm::Ed25519 => "ed25519",
        }
    }
}

/// A signed zone file and the DNSKEY of its key-signing key, the trust anchor.
#[derive(Debug)]
pub struct SignedZone {
    /// The signed master file.
    pub file: PathBuf,
    /// The KSK as a DNSKEY record's data: `flags protocol algorithm base64`.
    pub anchor: String,
}

/// Signs `text`, the master file of `zone`, in `dir` (which it creates).
pub fn sign(
    dir: &Path,
    zone: &str,
    text: &str,
    signer: Signer,
    algorithm: Algorithm,
    denial: Denial,
) -> anyhow::Result<SignedZone> {
    std::fs::create_dir_all(dir)?;
    // The root keeps its dot: an empty name is no zone to the signers.
    let zone = if zone == "." {
        "."
    } else {
        zone.trim_end_matches('.')
    };
    let unsigned = dir.join(format!("{zone}.zone"));
    std::fs::write(&unsigned, text)?;
    match signer {
        Signer::Bind => sign_bind(dir, zone, &unsigned, algorithm, denial),
        Signer::Ldns => sign_ldns(dir, zone, &unsigned, algorithm, denial),
        Signer::Knot => crate::peer::knot_sign(dir, zone, &unsigned, algorithm.knot_name(), denial),
    }
}

fn run(command: &mut Command, what: &str) -> anyhow::Result<String> {
    let output = command
        .output()
        .with_context(|| format!("running {what} (install bind9-utils and ldnsutils)"))?;
    if !output.status.success() {
        bail!(
            "{what} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The data of the DNSKEY record in a `K*.key` file.
fn dnskey_data(key_file: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(key_file)?;
    let line = text
        .lines()
        .find(|line| !line.starts_with(';') && line.contains("DNSKEY"))
        .context("no DNSKEY in the key file")?;
    // ldns writes a comment after the key: `;{id = 12345 (ksk), size = 256b}`.
    let after = line
        .split_once("DNSKEY")
        .map(|(_, data)| data.split(';').next().unwrap_or(data).trim().to_string())
        .context("no DNSKEY data")?;
    Ok(after)
}

fn sign_bind(
    dir: &Path,
    zone: &str,
    unsigned: &Path,
    algorithm: Algorithm,
    denial: Denial,
) -> anyhow::Result<SignedZone> {
    let keygen = |ksk: bool| -> anyhow::Result<String> {
        let mut command = Command::new("dnssec-keygen");
        command
            .current_dir(dir)
            .args(["-q", "-a", algorithm.bind_name()]);
        if algorithm == Algorithm::RsaSha256 {
            command.args(["-b", "2048"]);
        }
        if ksk {
            command.args(["-f", "KSK"]);
        }
        command.args(["-n", "ZONE", zone]);
        Ok(run(&mut command, "dnssec-keygen")?.trim().to_string())
    };
    let ksk = keygen(true)?;
    keygen(false)?;
    let signed = dir.join(format!("{zone}.signed"));
    let mut command = Command::new("dnssec-signzone");
    command
        .current_dir(dir)
        .args(["-q", "-S", "-K", ".", "-e", "+31536000", "-o", zone, "-f"])
        .arg(&signed);
    match denial {
        Denial::Nsec => {}
        Denial::Nsec3 => {
            command.args(["-3", "-", "-H", "0"]);
        }
        Denial::Nsec3OptOut => {
            command.args(["-3", "-", "-H", "0", "-A"]);
        }
    }
    command.arg(unsigned);
    run(&mut command, "dnssec-signzone")?;
    Ok(SignedZone {
        file: signed,
        anchor: dnskey_data(&dir.join(format!("{ksk}.key")))?,
    })
}

fn sign_ldns(
    dir: &Path,
    zone: &str,
    unsigned: &Path,
    algorithm: Algorithm,
    denial: Denial,
) -> anyhow::Result<SignedZone> {
    let keygen = |ksk: bool| -> anyhow::Result<String> {
        let mut command = Command::new("ldns-keygen");
        command.current_dir(dir).args(["-a", algorithm.bind_name()]);
        if algorithm == Algorithm::RsaSha256 {
            command.args(["-b", "2048"]);
        }
        if ksk {
            command.arg("-k");
        }
        command.arg(zone);
        Ok(run(&mut command, "ldns-keygen")?.trim().to_string())
    };
    let ksk = keygen(true)?;
    let zsk = keygen(false)?;
    let expiration = expiration_date();
    let mut command = Command::new("ldns-signzone");
    command.current_dir(dir).args(["-e", &expiration]);
    match denial {
        Denial::Nsec => {}
        Denial::Nsec3 => {
            command.args(["-n", "-t", "0", "-s", ""]);
        }
        Denial::Nsec3OptOut => {
            command.args(["-n", "-t", "0", "-s", "", "-p"]);
        }
    }
    command.arg(unsigned).arg(&zsk).arg(&ksk);
    run(&mut command, "ldns-signzone")?;
    Ok(SignedZone {
        file: PathBuf::from(format!("{}.signed", unsigned.display())),
        anchor: dnskey_data(&dir.join(format!("{ksk}.key")))?,
    })
}

/// A year from now as YYYYMMDD (ldns-signzone's expiration form).
fn expiration_date() -> String {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        + 365 * 86_400;
    let days = i64::try_from(seconds / 86_400).unwrap_or(0);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}{month:02}{day:02}")
}
