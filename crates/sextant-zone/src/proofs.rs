//! Authenticated denial of existence (RFC 4035 §3.1.3, RFC 5155 §7.2): the NSEC or
//! NSEC3 records, with their RRSIGs, that prove to a validator that a name, a type
//! or a DS record does not exist, or that a wildcard answer was the right one.

use std::borrow::Cow;

use hickory_proto::rr::RecordType;
use sextant_wire::{MAX_NAME_LEN, suffix_with_labels};

use crate::lookup::{Current, Encloser, Part, push_once};
use crate::nodes::Node;
use crate::nsec3::{Chain, Entry};
use crate::signed::Denial;
use crate::{Zone, canonical};

impl Zone {
    /// NXDOMAIN (RFC 4035 §3.1.3.2, RFC 5155 §7.2.2): the name does not exist, nor
    /// does the wildcard that could have answered for it.
    pub(crate) fn deny_name<'a>(
        &'a self,
        name: &Current<'_>,
        encloser: Encloser,
        out: &mut Vec<Part<'a>>,
    ) {
        match self.denial() {
            Denial::Nsec => {
                self.push_nsec_covering(name.key(), out);
                self.push_nsec_covering(&wildcard_key(name, encloser), out);
            }
            Denial::Nsec3(chain) => self.closest_encloser_proof(chain, name, encloser, true, out),
            Denial::None => {}
        }
    }

    /// A wildcard answer (RFC 4035 §3.1.3.3, RFC 5155 §7.2.6): the name asked for
    /// does not exist itself.
    pub(crate) fn deny_exact_name<'a>(
        &'a self,
        name: &Current<'_>,
        encloser: Encloser,
        out: &mut Vec<Part<'a>>,
    ) {
        match self.denial() {
            Denial::Nsec => self.push_nsec_covering(name.key(), out),
            Denial::Nsec3(chain) => {
                let next_closer = suffix_with_labels(name.lower(), encloser.labels + 1);
                push_nsec3(chain.covering(next_closer), out);
            }
            Denial::None => {}
        }
    }

    /// NODATA at a name that exists (`node`; `None` for an empty non-terminal):
    /// RFC 4035 §3.1.3.1, RFC 5155 §7.2.3 and §7.2.4.
    pub(crate) fn deny_type<'a>(
        &'a self,
        name: &Current<'_>,
        node: Option<&'a Node>,
        out: &mut Vec<Part<'a>>,
    ) {
        match self.denial() {
            Denial::Nsec => match node.filter(|n| n.get(RecordType::NSEC).is_some()) {
                Some(node) => self.push_nsec_at(name.key(), node, out),
                // An empty non-terminal has no NSEC: the one before it covers it.
                None => self.push_nsec_covering(name.key(), out),
            },
            Denial::Nsec3(chain) => match chain.matching(name.lower()) {
                Some(entry) => push_nsec3(Some(entry), out),
                // Under an Opt-Out span (an insecure delegation, or a name that
                // exists only because of one): the closest provable encloser.
                None => self.closest_provable_encloser_proof(chain, name.lower(), out),
            },
            Denial::None => {}
        }
    }

    /// NODATA from a wildcard (RFC 4035 §3.1.3.4, RFC 5155 §7.2.5): the name does not
    /// exist, and the wildcard that matches it lacks the type.
    pub(crate) fn deny_type_at_wildcard<'a>(
        &'a self,
        name: &Current<'_>,
        encloser: Encloser,
        out: &mut Vec<Part<'a>>,
    ) {
        match self.denial() {
            Denial::Nsec => {
                self.push_nsec_covering(name.key(), out);
                let wildcard = wildcard_key(name, encloser);
                if let Some(node) = self.node_at(&wildcard) {
                    self.push_nsec_at(&wildcard, node, out);
                }
            }
            Denial::Nsec3(chain) => {
                self.closest_encloser_proof(chain, name, encloser, false, out);
                let wildcard = wildcard_wire(name, encloser);
                push_nsec3(chain.matching(&wildcard), out);
            }
            Denial::None => {}
        }
    }

    /// A referral to an unsigned child (RFC 4035 §3.1.4, RFC 5155 §7.2.7): the cut
    /// has no DS.
    pub(crate) fn deny_ds<'a>(
        &'a self,
        name: &Current<'_>,
        cut_labels: usize,
        cut_key_len: usize,
        node: &'a Node,
        out: &mut Vec<Part<'a>>,
    ) {
        match self.denial() {
            Denial::Nsec => self.push_nsec_at(&name.key()[..cut_key_len], node, out),
            Denial::Nsec3(chain) => {
                let cut = suffix_with_labels(name.lower(), cut_labels);
                match chain.matching(cut) {
                    Some(entry) => push_nsec3(Some(entry), out),
                    None => self.closest_provable_encloser_proof(chain, cut, out),
                }
            }
            Denial::None => {}
        }
    }

    fn push_nsec_at<'a>(&'a self, key: &[u8], node: &'a Node, out: &mut Vec<Part<'a>>) {
        if let Some(nsec) = node.get(RecordType::NSEC) {
            let owner = owner_of_key(key);
            push_once(out, Part::signed(Cow::Owned(owner), nsec, node, true));
        }
    }

    /// The NSEC whose span holds `key`: the last name with an NSEC at or before it.
    fn push_nsec_covering<'a>(&'a self, key: &[u8], out: &mut Vec<Part<'a>>) {
        let found = self
            .nodes()
            .at_or_before(key, |node| node.get(RecordType::NSEC).is_some());
        if let Some((owner_key, node)) = found {
            self.push_nsec_at(owner_key, node, out);
        }
    }

    /// RFC 5155 §7.2.1: the NSEC3 matching the closest encloser and the one covering
    /// the next closer name, and with `wildcard`, the one covering `*.<encloser>`.
    fn closest_encloser_proof<'a>(
        &'a self,
        chain: &'a Chain,
        name: &Current<'_>,
        encloser: Encloser,
        wildcard: bool,
        out: &mut Vec<Part<'a>>,
    ) {
        let lower = name.lower();
        let mut labels = encloser.labels;
        // An encloser that exists only because of an unsigned delegation below an
        // Opt-Out span has no NSEC3: prove the closest one that has.
        while labels > self.apex_labels()
            && chain.matching(suffix_with_labels(lower, labels)).is_none()
        {
            labels -= 1;
        }
        push_nsec3(chain.matching(suffix_with_labels(lower, labels)), out);
        push_nsec3(chain.covering(suffix_with_labels(lower, labels + 1)), out);
        if wildcard {
            let mut star = Vec::with_capacity(MAX_NAME_LEN);
            star.extend_from_slice(b"\x01*");
            star.extend_from_slice(suffix_with_labels(lower, labels));
            push_nsec3(chain.covering(&star), out);
        }
    }

    /// RFC 5155 §7.2.3/§7.2.4 under Opt-Out: the NSEC3 matching the closest ancestor
    /// of `name` that has one, and the one covering the next closer name.
    fn closest_provable_encloser_proof<'a>(
        &'a self,
        chain: &'a Chain,
        name: &[u8],
        out: &mut Vec<Part<'a>>,
    ) {
        let total = sextant_wire::label_count(name);
        let mut labels = total.saturating_sub(1);
        while labels > self.apex_labels()
            && chain.matching(suffix_with_labels(name, labels)).is_none()
        {
            labels -= 1;
        }
        push_nsec3(chain.matching(suffix_with_labels(name, labels)), out);
        push_nsec3(chain.covering(suffix_with_labels(name, labels + 1)), out);
    }
}

fn push_nsec3<'a>(entry: Option<&'a Entry>, out: &mut Vec<Part<'a>>) {
    let Some(entry) = entry else {
        return;
    };
    if let Some(set) = entry.node.get(RecordType::NSEC3) {
        push_once(
            out,
            Part::signed(Cow::Borrowed(&entry.owner), set, &entry.node, true),
        );
    }
}

/// The key of `*.<encloser>`.
fn wildcard_key(name: &Current<'_>, encloser: Encloser) -> Vec<u8> {
    let mut key = Vec::with_capacity(encloser.key_len + 2);
    key.extend_from_slice(&name.key()[..encloser.key_len]);
    key.extend_from_slice(b"*\0");
    key
}

/// `*.<encloser>` in wire form.
fn wildcard_wire(name: &Current<'_>, encloser: Encloser) -> Vec<u8> {
    let mut wire = Vec::with_capacity(MAX_NAME_LEN);
    wire.extend_from_slice(b"\x01*");
    wire.extend_from_slice(suffix_with_labels(name.lower(), encloser.labels));
    wire
}

/// The wire name (lower case) of a canonical key.
fn owner_of_key(key: &[u8]) -> Vec<u8> {
    crate::zone::wire_name(&canonical::name(key))
}
