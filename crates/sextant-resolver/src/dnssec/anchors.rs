//! Where trust starts: the root's key-signing keys compiled in, or the anchors of a
//! file of DS or DNSKEY records (a lab's root, a private tree); and the negative
//! trust anchors (RFC 7646) under which nothing is validated.

use std::path::Path;

use hickory_proto::dnssec::PublicKey;
use hickory_proto::dnssec::rdata::{DNSKEY, DS};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecoder, Restrict};
use parking_lot::RwLock;

use super::{dnskey, ds};

/// The root zone's key-signing keys as DS records (IANA root-anchors: KSK-2017,
/// key tag 20326, and KSK-2024, key tag 38696).
const ROOT_ANCHORS: &str = "\
. IN DS 20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D
. IN DS 38696 8 2 683D2D0ACB8C9B712A1948B27F741219298D0A450D612C483AF444A4C0FB2B16
";

/// The anchor of one zone: the DS or DNSKEY records its keys must match.
#[derive(Clone, Debug)]
pub(crate) struct Anchor {
    pub(crate) zone: Name,
    pub(crate) ds: Vec<DS>,
    pub(crate) keys: Vec<DNSKEY>,
}

#[derive(Clone, Debug)]
pub(crate) struct TrustAnchors {
    anchors: Vec<Anchor>,
    /// Where they came from, for logs and the ready file.
    pub(crate) source: String,
}

impl TrustAnchors {
    /// The root anchors compiled in.
    pub(crate) fn builtin() -> Self {
        let mut anchors = Self::from_text(Path::new("<built-in root anchors>"), ROOT_ANCHORS)
            .unwrap_or_else(|_| Self {
                anchors: Vec::new(),
                source: String::new(),
            });
        anchors.source = "built-in root KSKs 20326 and 38696".into();
        anchors
    }

    /// Reads a file of DS or DNSKEY records (master-file syntax, owners fully
    /// qualified). The error is one sentence with the file, the line and the fix.
    pub(crate) fn from_file(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            format!(
                "{}: cannot read the trust anchor file ({e}); fix resolver.trust_anchor_file or remove it to use the built-in root anchors",
                path.display()
            )
        })?;
        Self::from_text(path, &text)
    }

    pub(crate) fn from_text(path: &Path, text: &str) -> Result<Self, String> {
        let no_include = |file: &Path| -> std::io::Result<String> {
            Err(std::io::Error::other(format!(
                "$INCLUDE {} is not allowed in a trust anchor file",
                file.display()
            )))
        };
        // Anchors carry no TTL of their own (root-anchors files have none): a $TTL
        // line is put first, and every line number given back one less.
        let text = format!("$TTL 0\n{text}");
        let records =
            sextant_zone::parse(&text, path, &Name::root(), &no_include).map_err(|mut e| {
                e.location.line = e.location.line.saturating_sub(1);
                format!("{e}; fix the trust anchor file")
            })?;
        let mut anchors: Vec<Anchor> = Vec::new();
        for mut located in records {
            located.location.line = located.location.line.saturating_sub(1);
            let record = decoded(located.record);
            let at = &located.location;
            let zone = record.name.to_lowercase();
            let index = match anchors.iter().position(|a| a.zone == zone) {
                Some(index) => index,
                None => {
                    anchors.push(Anchor {
                        zone: zone.clone(),
                        ds: Vec::new(),
                        keys: Vec::new(),
                    });
                    anchors.len() - 1
                }
            };
            let anchor = &mut anchors[index];
            if let Some(ds) = ds(&record) {
                if !ds.algorithm().is_supported() || !ds.digest_type().is_supported() {
                    return Err(format!(
                        "{at}: DS for {zone} uses algorithm {} with digest type {}, which this resolver cannot check; use an anchor with a supported algorithm (8, 10, 13, 14, 15) and digest (1, 2, 4)",
                        u8::from(ds.algorithm()),
                        u8::from(ds.digest_type())
                    ));
                }
                anchor.ds.push(ds.clone());
            } else if let Some(key) = dnskey(&record) {
                if !key.zone_key() || !key.public_key().algorithm().is_supported() {
                    return Err(format!(
                        "{at}: the DNSKEY for {zone} is not a usable zone key (flags {}, algorithm {}); use the zone's key-signing key",
                        key.flags(),
                        u8::from(key.public_key().algorithm())
                    ));
                }
                anchor.keys.push(key.clone());
            } else {
                return Err(format!(
                    "{at}: a {} record is not a trust anchor; write only DS or DNSKEY records",
                    record.record_type()
                ));
            }
        }
        if anchors.is_empty() {
            return Err(format!(
                "{}: no DS or DNSKEY record in the trust anchor file; add the root's (or your tree's) anchors, or set resolver.validation = false",
                path.display()
            ));
        }
        Ok(Self {
            anchors,
            source: path.display().to_string(),
        })
    }

    /// The anchor of the deepest anchored zone at or above `name`.
    pub(crate) fn closest(&self, name: &Name) -> Option<&Anchor> {
        self.anchors
            .iter()
            .filter(|a| a.zone.zone_of(name))
            .max_by_key(|a| a.zone.num_labels())
    }

    /// The anchored zones.
    pub(crate) fn zones(&self) -> Vec<Name> {
        self.anchors.iter().map(|a| a.zone.clone()).collect()
    }

    /// Trusts exactly `keys` for `zone` from now on (RFC 5011 state): the DS records
    /// the anchor was configured with no longer count.
    pub(crate) fn replace_keys(&mut self, zone: &Name, keys: Vec<DNSKEY>) {
        if let Some(anchor) = self.anchors.iter_mut().find(|a| a.zone == *zone) {
            anchor.ds.clear();
            anchor.keys = keys;
        }
    }

    /// The anchor of exactly `zone`.
    pub(crate) fn at(&self, zone: &Name) -> Option<&Anchor> {
        self.anchors.iter().find(|a| a.zone == *zone)
    }
}

/// Domains under which answers are not validated (RFC 7646): a zone whose signing
/// is broken, while its operators fix it. Changed at run time by `sextantctl`.
#[derive(Debug, Default)]
pub(crate) struct NegativeAnchors(RwLock<Vec<Name>>);

impl NegativeAnchors {
    pub(crate) fn new(names: &[Name]) -> Self {
        Self(RwLock::new(names.iter().map(Name::to_lowercase).collect()))
    }

    pub(crate) fn covers(&self, name: &Name) -> bool {
        self.0.read().iter().any(|n| n.zone_of(name))
    }

    /// Adds `name`; false when it was there already.
    pub(crate) fn add(&self, name: &Name) -> bool {
        let name = name.to_lowercase();
        let mut names = self.0.write();
        if names.contains(&name) {
            return false;
        }
        names.push(name);
        true
    }

    /// Removes `name`; false when it was not there.
    pub(crate) fn remove(&self, name: &Name) -> bool {
        let name = name.to_lowercase();
        let mut names = self.0.write();
        let before = names.len();
        names.retain(|n| *n != name);
        names.len() != before
    }

    pub(crate) fn list(&self) -> Vec<Name> {
        self.0.read().clone()
    }
}

/// The record with DNSSEC data decoded into its types: zone files are read with
/// DNSSEC data left as opaque bytes.
pub(crate) fn decoded(record: Record) -> Record {
    let RData::Unknown { code, rdata } = &record.data else {
        return record;
    };
    let bytes = &rdata.anything;
    let Ok(length) = u16::try_from(bytes.len()) else {
        return record;
    };
    let code: RecordType = *code;
    match RData::read(&mut BinDecoder::new(bytes), code, Restrict::new(length)) {
        Ok(data) => Record::from_rdata(record.name.clone(), record.ttl, data),
        Err(_) => record,
    }
}
