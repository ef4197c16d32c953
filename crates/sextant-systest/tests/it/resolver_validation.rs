//! The resolver validating on a signed loopback hierarchy, each case
//! compared with Unbound and BIND validating on the same lab: a root and a `test.`
//! TLD signed by dnssec-signzone with their children's DS records, and leaves that
//! are secure (NSEC and NSEC3, with a wildcard, a DNAME and a CNAME into an unsigned zone),
//! unsigned, changed after signing, expired, not yet valid, designated by a DS that
//! matches no key, missing a signature or its NSEC chain, or signed with an
//! algorithm nobody knows.
//! The lab's root key is the only trust anchor.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use hickory_proto::op::{Edns, Message, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::EdnsOption;
use hickory_proto::rr::{Name, RecordType};
use sextant_systest::signing::{self, Algorithm, Denial, Signer};
use sextant_systest::{Behaviour, DnsLab, Lab, Peer, exchange, sextantctl};

fn run(command: &mut Command) -> String {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// The DS record (SHA-256) of `zone`'s key-signing key, as its parent writes it.
fn ds_of(dir: &Path, zone: &str, key: &str) -> String {
    let file = dir.join(format!("{zone}dnskey"));
    std::fs::write(&file, format!("{zone} 3600 IN DNSKEY {key}\n")).unwrap();
    run(Command::new("dnssec-dsfromkey")
        .args(["-2", "-f"])
        .arg(&file)
        .arg(zone))
}

/// `text` signed by dnssec-signzone (KSK and ZSK, NSEC or NSEC3, valid a year);
/// returns the signed text and the KSK's DNSKEY data.
fn signed(dir: &Path, zone: &str, text: &str, denial: Denial) -> (String, String) {
    let keys = dir.join(format!("{}keys", zone.replace('.', "_")));
    let signed = signing::sign(
        &keys,
        zone,
        text,
        Signer::Bind,
        Algorithm::EcdsaP256,
        denial,
    )
    .unwrap();
    (
        std::fs::read_to_string(&signed.file).unwrap(),
        signed.anchor,
    )
}

/// `text` signed with one key and a validity window of our choosing
/// (`YYYYMMDDHHMMSS`), no check of the result (it may be expired on purpose).
fn signed_within(dir: &Path, zone: &str, text: &str, start: &str, end: &str) -> (String, String) {
    let keys = dir.join(format!("{}window", zone.replace('.', "_")));
    std::fs::create_dir_all(&keys).unwrap();
    let base = run(Command::new("dnssec-keygen").current_dir(&keys).args([
        "-q",
        "-a",
        "ECDSAP256SHA256",
        "-f",
        "KSK",
        "-n",
        "ZONE",
        zone,
    ]));
    let unsigned = keys.join("zone");
    let key_file = std::fs::read_to_string(keys.join(format!("{base}.key"))).unwrap();
    std::fs::write(&unsigned, format!("{text}{key_file}")).unwrap();
    let out = keys.join("zone.signed");
    run(Command::new("dnssec-signzone")
        .current_dir(&keys)
        .args(["-q", "-P", "-z", "-o", zone, "-s", start, "-e", end, "-f"])
        .arg(&out)
        .arg(&unsigned)
        .arg(format!("{base}.private")));
    let key = key_file
        .lines()
        .find(|l| !l.starts_with(';'))
        .and_then(|l| l.split_once("DNSKEY"))
        .map(|(_, data)| data.trim().to_string())
        .unwrap();
    (std::fs::read_to_string(&out).unwrap(), key)
}

/// A zone built to exhaust a validator (KeyTrap, CVE-2023-50387): 24 made-up RSA keys
/// share the real key's tag and algorithm (all inside the signed DNSKEY RRset), and
/// `www` carries 40 made-up signatures with that tag instead of its real one.
fn keytrap(dir: &Path, ns: &str) -> (String, String) {
    use base64::Engine as _;
    let encode = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    // The real key first, to learn its tag.
    let keys = dir.join("keytrap_keys");
    std::fs::create_dir_all(&keys).unwrap();
    let base = run(Command::new("dnssec-keygen").current_dir(&keys).args([
        "-q",
        "-a",
        "RSASHA256",
        "-b",
        "2048",
        "-f",
        "KSK",
        "-n",
        "ZONE",
        "keytrap.test.",
    ]));
    let tag: u16 = base.rsplit('+').next().unwrap().parse().unwrap();
    let mut fakes = String::new();
    let mut seed = 0x5eed_u32;
    let mut made = 0;
    while made < 24 {
        // RSA (RFC 3110): exponent 65537, then a 2048-bit made-up modulus, odd and
        // with its top bit set, so that it loads as a key and costs a real check.
        let mut rdata = vec![0x01, 0x01, 3, 8, 3, 0x01, 0x00, 0x01, 0xc5];
        for _ in 0..253 {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            rdata.push((seed >> 16) as u8);
        }
        // The last two bytes are chosen so that the key tag is the real key's.
        let found = (0..=u16::MAX).filter(|last| last % 2 == 1).find(|last| {
            let mut candidate = rdata.clone();
            candidate.extend_from_slice(&last.to_be_bytes());
            hickory_proto::dnssec::rdata::DNSKEY::calculate_key_tag_internal(&candidate) == tag
        });
        if let Some(last) = found {
            rdata.extend_from_slice(&last.to_be_bytes());
            fakes.push_str(&format!("@ DNSKEY 257 3 8 {}\n", encode(&rdata[4..])));
            made += 1;
        }
    }
    let key_file = std::fs::read_to_string(keys.join(format!("{base}.key"))).unwrap();
    let unsigned = keys.join("zone");
    let text = leaf(ns, "192.0.2.40", &fakes);
    std::fs::write(&unsigned, format!("{text}{key_file}")).unwrap();
    let out = keys.join("zone.signed");
    run(Command::new("dnssec-signzone")
        .current_dir(&keys)
        .args(["-q", "-P", "-z", "-o", "keytrap.test.", "-f"])
        .arg(&out)
        .arg(&unsigned)
        .arg(format!("{base}.private")));
    // Only made-up signatures over www remain: none can ever verify, and a validator
    // that tries every key for every one works 40 x 25 times for nothing.
    let signed = std::fs::read_to_string(&out).unwrap();
    let mut signed = strip_signature(&signed, "www.keytrap.test.", "A");
    for n in 0..40u8 {
        let garbage = encode(&[n; 256]);
        signed.push_str(&format!(
            "www.keytrap.test. 300 IN RRSIG A 8 3 300 20901231000000 20260101000000 {tag} keytrap.test. {garbage}\n"
        ));
    }
    let key = key_file
        .lines()
        .find(|l| !l.starts_with(';'))
        .and_then(|l| l.split_once("DNSKEY"))
        .map(|(_, data)| data.trim().to_string())
        .unwrap();
    (signed, key)
}

/// A leaf zone served by host 3 with `www` at `address`.
fn leaf(ns: &str, address: &str, extra: &str) -> String {
    format!(
        "$TTL 300\n@ SOA ns1 h 1 1800 900 604800 60\n@ NS ns1\nns1 A {ns}\nwww A {address}\n{extra}"
    )
}

/// What a validating resolver said: RCODE, AD, the EDE code, and the addresses.
#[derive(Debug, PartialEq, Eq)]
struct Verdict {
    rcode: ResponseCode,
    ad: bool,
    ede: Option<u16>,
}

fn ask(server: SocketAddr, name: &str, rtype: RecordType, cd: bool) -> Message {
    let mut message = Message::query();
    message.metadata.recursion_desired = true;
    message.metadata.checking_disabled = cd;
    message.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    edns.set_dnssec_ok(true);
    message.set_edns(edns);
    exchange(server, &message, true).unwrap()
}

fn verdict(response: &Message) -> Verdict {
    let ede = response.edns.as_ref().and_then(|edns| {
        edns.options()
            .as_ref()
            .iter()
            .find_map(|(_, option)| match option {
                EdnsOption::Unknown(15, data) if data.len() >= 2 => {
                    Some(u16::from_be_bytes([data[0], data[1]]))
                }
                _ => None,
            })
    });
    Verdict {
        rcode: response.metadata.response_code,
        ad: response.metadata.authentic_data,
        ede,
    }
}

struct SignedLab {
    dns: DnsLab,
    /// Host 4 (nonsec.test), the root, `test.`, then host 3 (the leaves).
    servers: Vec<sextant_systest::LabServer>,
    root_key: String,
}

fn signed_lab(dir: &Path) -> SignedLab {
    let dns = DnsLab::new();
    let ip = |n: u8| dns.ip(n).to_string();
    std::fs::create_dir_all(dir).unwrap();
    let ns = ip(3);

    let (secure, secure_key) = signed(
        dir,
        "secure.test.",
        &leaf(
            &ns,
            "192.0.2.10",
            "*.wild TXT \"wild\"\nalias CNAME www.insecure.test.\nrenamed DNAME secure.test.\nUpper A 192.0.2.50\n",
        ),
        Denial::Nsec,
    );
    let (nsec3, nsec3_key) = signed(
        dir,
        "nsec3.test.",
        &leaf(&ns, "192.0.2.11", ""),
        Denial::Nsec3,
    );
    let (bogus, bogus_key) = signed(
        dir,
        "bogus.test.",
        &leaf(&ns, "192.0.2.66", ""),
        Denial::Nsec,
    );
    // A spoofer changed the address after signing: the signature no longer matches.
    let bogus = bogus.replace("192.0.2.66", "192.0.2.99");
    let (expired, expired_key) = signed_within(
        dir,
        "expired.test.",
        &leaf(&ns, "192.0.2.12", ""),
        "20200101000000",
        "20200201000000",
    );
    let (future, future_key) = signed_within(
        dir,
        "future.test.",
        &leaf(&ns, "192.0.2.13", ""),
        "20900101000000",
        "20901231000000",
    );
    let (nokey, _) = signed(
        dir,
        "nokey.test.",
        &leaf(&ns, "192.0.2.14", ""),
        Denial::Nsec,
    );
    // The DS the parent publishes is another key's.
    let (_, stranger_key) = signed(
        dir,
        "nokey.test.",
        &leaf(&ns, "192.0.2.14", ""),
        Denial::Nsec,
    );
    let (missing, missing_key) = signed(
        dir,
        "missingsig.test.",
        &leaf(&ns, "192.0.2.15", ""),
        Denial::Nsec,
    );
    // The signature over www's address is stripped.
    let missing = strip_signature(&missing, "www.missingsig.test.", "A");
    let (nonsec, nonsec_key) = signed(
        dir,
        "nonsec.test.",
        &leaf(&ns, "192.0.2.16", ""),
        Denial::Nsec,
    );
    // Served by host 4, which drops NSEC records from its answers: the zone's
    // denials of existence come without proof.
    let (keytrap, keytrap_key) = keytrap(dir, &ns);
    let insecure = leaf(&ns, "192.0.2.30", "");
    let unknown = leaf(&ns, "192.0.2.31", "");

    let tld = format!(
        "$TTL 3600\n@ SOA ns h 1 1800 900 604800 300\n@ NS ns\nns A {}\n\
         secure NS ns1.secure\nns1.secure A {ns}\n{}\n\
         nsec3 NS ns1.nsec3\nns1.nsec3 A {ns}\n{}\n\
         bogus NS ns1.bogus\nns1.bogus A {ns}\n{}\n\
         expired NS ns1.expired\nns1.expired A {ns}\n{}\n\
         future NS ns1.future\nns1.future A {ns}\n{}\n\
         nokey NS ns1.nokey\nns1.nokey A {ns}\n{}\n\
         missingsig NS ns1.missingsig\nns1.missingsig A {ns}\n{}\n\
         keytrap NS ns1.keytrap\nns1.keytrap A {ns}\n{}\n\
         nonsec NS ns1.nonsec\nns1.nonsec A {}\n{}\n\
         insecure NS ns1.insecure\nns1.insecure A {ns}\n\
         unknownalg NS ns1.unknownalg\nns1.unknownalg A {ns}\n\
         unknownalg DS 4711 253 2 0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF\n",
        ip(2),
        ds_of(dir, "secure.test.", &secure_key),
        ds_of(dir, "nsec3.test.", &nsec3_key),
        ds_of(dir, "bogus.test.", &bogus_key),
        ds_of(dir, "expired.test.", &expired_key),
        ds_of(dir, "future.test.", &future_key),
        ds_of(dir, "nokey.test.", &stranger_key),
        ds_of(dir, "missingsig.test.", &missing_key),
        ds_of(dir, "keytrap.test.", &keytrap_key),
        ip(4),
        ds_of(dir, "nonsec.test.", &nonsec_key),
    );
    let (tld, tld_key) = signed(dir, "test.", &tld, Denial::Nsec);
    let root = format!(
        "$TTL 86400\n@ SOA a.root-servers.lab. nstld.lab. 1 1800 900 604800 86400\n\
         @ NS a.root-servers.lab.\na.root-servers.lab. A {}\n\
         test. NS ns.test.\nns.test. A {}\n{}\n",
        ip(1),
        ip(2),
        ds_of(dir, "test.", &tld_key),
    );
    let (root, root_key) = signed(dir, ".", &root, Denial::Nsec);
    let nonsec_server = dns.serve(4, &[("nonsec.test.", &nonsec)]).unwrap();
    nonsec_server.set_behaviour(Behaviour {
        strip_denial: true,
        ..Behaviour::default()
    });
    let servers = vec![
        nonsec_server,
        dns.serve(1, &[(".", &root)]).unwrap(),
        dns.serve(2, &[("test.", &tld)]).unwrap(),
        dns.serve(
            3,
            &[
                ("secure.test.", &secure),
                ("nsec3.test.", &nsec3),
                ("bogus.test.", &bogus),
                ("expired.test.", &expired),
                ("future.test.", &future),
                ("nokey.test.", &nokey),
                ("missingsig.test.", &missing),
                ("keytrap.test.", &keytrap),
                ("insecure.test.", &insecure),
                ("unknownalg.test.", &unknown),
            ],
        )
        .unwrap(),
    ];
    SignedLab {
        dns,
        servers,
        root_key,
    }
}

/// The signed lab and a resolver suite validating it from the lab's root key:
/// the lab, the lab's servers, the root hints (for peers), the config, the suite.
/// Bound in this order, they are dropped suite first.
fn validating_suite() -> (
    Lab,
    SignedLab,
    String,
    std::path::PathBuf,
    sextant_systest::Suite,
) {
    let lab = Lab::new().unwrap();
    let signed = signed_lab(&lab.path().join("zones"));
    let hints = signed.dns.hints(&[("a.root-servers.lab.", 1)]);
    lab.write("anchors", &format!(". IN DNSKEY {}\n", signed.root_key))
        .unwrap();
    let config = lab
        .resolver_config(
            &hints,
            "validation = true\ntrust_anchor_file = \"anchors\"\n",
        )
        .unwrap();
    let suite = lab.start_resolver_suite(&config).unwrap();
    (lab, signed, hints, config, suite)
}

/// The signed zone text without the RRSIG over `owner`'s `rtype` RRset (signed
/// files from dnssec-signzone give each record a line of its own with `-O full`
/// unset: an RRSIG runs from its `RRSIG TYPE` line to its closing parenthesis).
fn strip_signature(text: &str, owner: &str, rtype: &str) -> String {
    let mut out = String::new();
    let mut current_owner = String::new();
    let mut skipping = false;
    for line in text.lines() {
        if !line.starts_with(char::is_whitespace) && !line.is_empty() && !line.starts_with(';') {
            current_owner = line
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string();
        }
        let is_sig = line
            .split_whitespace()
            .collect::<Vec<_>>()
            .windows(2)
            .any(|w| w == ["RRSIG", rtype]);
        if current_owner == owner && is_sig {
            skipping = !line.contains(')');
            continue;
        }
        if skipping {
            skipping = !line.contains(')');
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The cases, with the verdict the RFCs ask for.
fn cases() -> Vec<(&'static str, RecordType, Verdict)> {
    use ResponseCode::{NXDomain, NoError, ServFail};
    let v = |rcode, ad, ede| Verdict { rcode, ad, ede };
    vec![
        ("www.secure.test.", RecordType::A, v(NoError, true, None)),
        ("nope.secure.test.", RecordType::A, v(NXDomain, true, None)),
        ("www.secure.test.", RecordType::TXT, v(NoError, true, None)),
        (
            "any.wild.secure.test.",
            RecordType::TXT,
            v(NoError, true, None),
        ),
        // Proven by the NSEC from renamed to Upper: its next name is signed in its
        // own case (RFC 6840 §5.1), which the zone's server must keep.
        ("s.secure.test.", RecordType::A, v(NXDomain, true, None)),
        // A DNAME: the CNAME synthesized from it is proven by the DNAME's signature.
        (
            "www.renamed.secure.test.",
            RecordType::A,
            v(NoError, true, None),
        ),
        // The chain ends in an unsigned zone: the answer as a whole is insecure.
        ("alias.secure.test.", RecordType::A, v(NoError, false, None)),
        ("www.nsec3.test.", RecordType::A, v(NoError, true, None)),
        ("nope.nsec3.test.", RecordType::A, v(NXDomain, true, None)),
        ("www.nsec3.test.", RecordType::TXT, v(NoError, true, None)),
        ("www.insecure.test.", RecordType::A, v(NoError, false, None)),
        // A DS with an algorithm nobody implements: insecure (RFC 4035 §5.2).
        (
            "www.unknownalg.test.",
            RecordType::A,
            v(NoError, false, None),
        ),
        (
            "www.bogus.test.",
            RecordType::A,
            v(ServFail, false, Some(6)),
        ),
        (
            "www.expired.test.",
            RecordType::A,
            v(ServFail, false, Some(7)),
        ),
        (
            "www.future.test.",
            RecordType::A,
            v(ServFail, false, Some(8)),
        ),
        (
            "www.nokey.test.",
            RecordType::A,
            v(ServFail, false, Some(9)),
        ),
        (
            "www.missingsig.test.",
            RecordType::A,
            v(ServFail, false, Some(10)),
        ),
        // NXDOMAIN and NODATA from a signed zone with no proof.
        (
            "nope.nonsec.test.",
            RecordType::A,
            v(ServFail, false, Some(12)),
        ),
        (
            "www.nonsec.test.",
            RecordType::TXT,
            v(ServFail, false, Some(12)),
        ),
    ]
}

#[test]
fn every_case_is_judged_as_unbound_and_bind_judge_it() {
    let (lab, signed, hints, _config, suite) = validating_suite();
    let hints_file = lab.write("peer.hints", &hints).unwrap();
    let unbound = Peer::unbound_validating(
        &lab.path().join("unbound"),
        &hints_file,
        &format!(". DNSKEY {}", signed.root_key),
    )
    .unwrap();
    let bind =
        Peer::bind_resolver(&lab.path().join("bind"), &hints_file, &signed.root_key).unwrap();

    let mut differences = Vec::new();
    for (name, rtype, expected) in cases() {
        let ours = verdict(&ask(suite.dns, name, rtype, false));
        assert_eq!(ours, expected, "Sextant on {name} {rtype}");
        let theirs = verdict(&ask(unbound.addr, name, rtype, false));
        // The lab is right only if Unbound agrees on RCODE and AD; EDE codes are
        // compared where it gives one.
        assert_eq!(
            (theirs.rcode, theirs.ad),
            (expected.rcode, expected.ad),
            "Unbound on {name} {rtype}"
        );
        if theirs.ede.is_some() && theirs.ede != expected.ede {
            differences.push(format!(
                "{name} {rtype}: Unbound EDE {:?}, Sextant {:?}",
                theirs.ede, ours.ede
            ));
        }
        let named = verdict(&ask(bind.addr, name, rtype, false));
        assert_eq!(
            (named.rcode, named.ad),
            (expected.rcode, expected.ad),
            "BIND on {name} {rtype}"
        );
    }
    // Where Unbound and Sextant give different EDE codes for the same failure, the
    // RFC 8914 codes Sextant gives are the more specific; they are listed here.
    eprintln!("EDE differences with Unbound: {differences:#?}");

    // CD=1: the client validates itself and gets the data, bogus or not, without AD.
    let unchecked = ask(suite.dns, "www.bogus.test.", RecordType::A, true);
    assert_eq!(unchecked.metadata.response_code, ResponseCode::NoError);
    assert!(!unchecked.metadata.authentic_data);
    assert!(
        unchecked
            .answers
            .iter()
            .any(|r| r.data.to_string() == "192.0.2.99")
    );
    let unbound_unchecked = ask(unbound.addr, "www.bogus.test.", RecordType::A, true);
    assert_eq!(
        unbound_unchecked.metadata.response_code,
        ResponseCode::NoError
    );
    // ...and CD=0 is still SERVFAIL after it.
    let checked = verdict(&ask(suite.dns, "www.bogus.test.", RecordType::A, false));
    assert_eq!(checked.rcode, ResponseCode::ServFail);

    // DO=1 clients get the signatures with secure data and the proof with a denial.
    let secure = ask(suite.dns, "www.secure.test.", RecordType::A, false);
    assert!(
        secure
            .answers
            .iter()
            .any(|r| r.record_type() == RecordType::RRSIG),
        "{secure:?}"
    );
    let denial = ask(suite.dns, "nope.secure.test.", RecordType::A, false);
    assert!(
        denial
            .authorities
            .iter()
            .any(|r| r.record_type() == RecordType::NSEC),
        "{denial:?}"
    );
    assert!(
        denial
            .authorities
            .iter()
            .any(|r| r.record_type() == RecordType::RRSIG),
        "{denial:?}"
    );
}

#[test]
fn a_negative_trust_anchor_and_the_work_limit() {
    let lab = Lab::new().unwrap();
    let signed = signed_lab(&lab.path().join("zones"));
    let hints = signed.dns.hints(&[("a.root-servers.lab.", 1)]);
    lab.write("anchors", &format!(". IN DNSKEY {}\n", signed.root_key))
        .unwrap();
    // bogus.test is under a negative trust anchor; two signature checks per client
    // query are far too few for a secure answer three zones down.
    let config = lab
        .resolver_config(
            &hints,
            "validation = true\ntrust_anchor_file = \"anchors\"\n\
             negative_trust_anchors = [\"bogus.test\"]\nmax_signature_checks = 2\n",
        )
        .unwrap();
    let suite = lab.start_resolver_suite(&config).unwrap();
    let started = std::time::Instant::now();
    let limited = verdict(&ask(suite.dns, "www.secure.test.", RecordType::A, false));
    assert_eq!(limited.rcode, ResponseCode::ServFail);
    assert_eq!(limited.ede, Some(6));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "SERVFAIL quickly"
    );
    // The limit spent by one query is not held against the next: the NTA's data
    // needs no check and is answered, unvalidated.
    let bogus = verdict(&ask(suite.dns, "www.bogus.test.", RecordType::A, false));
    assert_eq!(
        bogus.rcode,
        ResponseCode::NoError,
        "the NTA turns validation off below it: {bogus:?}"
    );
    assert!(!bogus.ad);
}

#[test]
fn negative_trust_anchors_from_sextantctl() {
    let (_lab, _signed, _hints, config, suite) = validating_suite();
    let ctl = |args: &[&str]| {
        let output = sextantctl(&config, args).unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let verdict_of = || verdict(&ask(suite.dns, "www.bogus.test.", RecordType::A, false));

    assert_eq!(verdict_of().rcode, ResponseCode::ServFail);
    assert!(ctl(&["resolver", "nta", "list"]).contains("no negative trust anchors"));
    let added = ctl(&["resolver", "nta", "add", "bogus.test"]);
    assert!(added.contains("added bogus.test"), "{added}");
    assert!(added.contains("bogus.test."), "{added}");
    // The SERVFAIL cached a moment ago is gone with the add: the data is served now,
    // without AD. (The listener's packet cache hears of the flush over its
    // generation watch, a moment after the resolver: hence the short wait.)
    let settled = std::time::Duration::from_secs(5);
    sextant_systest::eventually(settled, "the unvalidated answer", || {
        let unvalidated = verdict_of();
        (unvalidated.rcode, unvalidated.ad) == (ResponseCode::NoError, false)
    })
    .unwrap();
    let removed = ctl(&["resolver", "nta", "remove", "bogus.test."]);
    assert!(removed.contains("removed bogus.test."), "{removed}");
    sextant_systest::eventually(settled, "SERVFAIL again", || {
        verdict_of().rcode == ResponseCode::ServFail
    })
    .unwrap();
    // A name that is not one is said so, and a bad name is refused with exit 2.
    assert!(
        ctl(&["resolver", "nta", "remove", "other.test"])
            .contains("was not a negative trust anchor")
    );
    let bad = sextantctl(&config, &["resolver", "nta", "add", "bad..name"]).unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("is not a domain name"));
}

#[test]
fn a_key_tag_collision_zone_is_servfail_quickly_and_the_rest_is_answered() {
    let (lab, signed, hints, _config, suite) = validating_suite();
    let dns = suite.dns;
    let attacker = std::thread::spawn(move || {
        let mut verdicts = Vec::new();
        for _ in 0..20 {
            let started = std::time::Instant::now();
            let verdict = verdict(&ask(dns, "www.keytrap.test.", RecordType::A, false));
            verdicts.push((verdict, started.elapsed()));
        }
        verdicts
    });
    // Meanwhile an honest client is served.
    for _ in 0..20 {
        let honest = verdict(&ask(suite.dns, "www.secure.test.", RecordType::A, false));
        assert_eq!((honest.rcode, honest.ad), (ResponseCode::NoError, true));
    }
    let verdicts = attacker.join().unwrap();
    for (verdict, took) in &verdicts {
        assert_eq!(verdict.rcode, ResponseCode::ServFail, "{verdicts:?}");
        assert_eq!(verdict.ede, Some(6), "{verdicts:?}");
        assert!(*took < std::time::Duration::from_secs(2), "{verdicts:?}");
    }
    eprintln!(
        "Sextant on the key-tag collision zone: {:?} in {:?} (then from the cache)",
        verdicts[0].0, verdicts[0].1
    );
    // What Unbound makes of the same zone, for the record.
    let hints_file = lab.write("peer.hints", &hints).unwrap();
    let unbound = Peer::unbound_validating(
        &lab.path().join("unbound"),
        &hints_file,
        &format!(". DNSKEY {}", signed.root_key),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let theirs = verdict(&ask(
        unbound.addr,
        "www.keytrap.test.",
        RecordType::A,
        false,
    ));
    eprintln!(
        "Unbound on the key-tag collision zone: {theirs:?} in {:?}",
        started.elapsed()
    );
}

/// A root KSK made here, so that the test controls the rollover: its base name
/// (`K.+013+TAG`) and tag.
fn root_key(keys: &Path) -> (String, u16) {
    let base = run(Command::new("dnssec-keygen").current_dir(keys).args([
        "-q",
        "-a",
        "ECDSAP256SHA256",
        "-f",
        "KSK",
        "-n",
        "ZONE",
        ".",
    ]));
    let tag = base.rsplit('+').next().unwrap().parse().unwrap();
    (base, tag)
}

/// The root zone `text` with the DNSKEYs of `keys` (base names in `dir`), signed by
/// every one of them.
fn root_signed_by(dir: &Path, text: &str, keys: &[&str]) -> String {
    let mut zone = text.to_string();
    for key in keys {
        zone.push_str(&std::fs::read_to_string(dir.join(format!("{key}.key"))).unwrap());
    }
    std::fs::write(dir.join("root.zone"), zone).unwrap();
    let mut command = Command::new("dnssec-signzone");
    command.current_dir(dir).args([
        "-q",
        "-P",
        "-z",
        "-o",
        ".",
        "-f",
        "root.signed",
        "root.zone",
    ]);
    for key in keys {
        command.arg(format!("{key}.private"));
    }
    run(&mut command);
    std::fs::read_to_string(dir.join("root.signed")).unwrap()
}

/// The phases of the root's keys in the resolver's RFC 5011 state, by tag.
fn root_phases(state: &Path) -> Vec<(u16, String)> {
    let Ok(text) = std::fs::read_to_string(state.join("trust-anchors.json")) else {
        return Vec::new();
    };
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json["zones"]["."]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e["tag"].as_u64().unwrap() as u16,
                e["phase"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let started = std::time::Instant::now();
    while !done() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "not within 30 s: {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[test]
fn the_root_key_rolls_over_by_rfc_5011_and_a_restart_keeps_it() {
    let lab = Lab::new().unwrap();
    let dns = DnsLab::new();
    let ip = |n: u8| dns.ip(n).to_string();
    let dir = lab.path().join("zones");
    std::fs::create_dir_all(&dir).unwrap();
    let ns = ip(3);
    let (secure, secure_key) = signed(
        &dir,
        "secure.test.",
        &leaf(&ns, "192.0.2.10", ""),
        Denial::Nsec,
    );
    let tld = format!(
        "$TTL 3600\n@ SOA ns h 1 1800 900 604800 300\n@ NS ns\nns A {}\n\
         secure NS ns1.secure\nns1.secure A {ns}\n{}\n",
        ip(2),
        ds_of(&dir, "secure.test.", &secure_key),
    );
    let (tld, tld_key) = signed(&dir, "test.", &tld, Denial::Nsec);
    let root = format!(
        "$TTL 60\n@ SOA a.root-servers.lab. nstld.lab. 1 1800 900 604800 60\n\
         @ NS a.root-servers.lab.\na.root-servers.lab. A {}\n\
         test. NS ns.test.\nns.test. A {}\n{}\n",
        ip(1),
        ip(2),
        ds_of(&dir, "test.", &tld_key),
    );
    let keys = dir.join("root_roll");
    std::fs::create_dir_all(&keys).unwrap();
    let (a, tag_a) = root_key(&keys);
    let (b, tag_b) = root_key(&keys);
    let mut root_server = Some(
        dns.serve(1, &[(".", &root_signed_by(&keys, &root, &[&a]))])
            .unwrap(),
    );
    let _servers = [
        dns.serve(2, &[("test.", &tld)]).unwrap(),
        dns.serve(3, &[("secure.test.", &secure)]).unwrap(),
    ];
    let a_data = std::fs::read_to_string(keys.join(format!("{a}.key"))).unwrap();
    let a_data = a_data.lines().find(|l| !l.starts_with(';')).unwrap();
    lab.write("anchors", &format!("{a_data}\n")).unwrap();
    let config = lab
        .resolver_config(
            &dns.hints(&[("a.root-servers.lab.", 1)]),
            "validation = true\ntrust_anchor_file = \"anchors\"\nstate_dir = \"state\"\n\
             trust_anchor_refresh = \"500ms\"\ntrust_anchor_hold_down = \"3s\"\n",
        )
        .unwrap();
    let state = lab.path().join("state");
    let suite = lab.start_resolver_suite(&config).unwrap();
    let secure_answer = |suite: &sextant_systest::Suite| {
        verdict(&ask(suite.dns, "www.secure.test.", RecordType::A, false))
    };
    eventually("A trusted in the state", || {
        root_phases(&state).contains(&(tag_a, "valid".into()))
    });

    // The root publishes B beside A: B waits out the hold-down, then is trusted.
    root_server.take();
    root_server = Some(
        dns.serve(1, &[(".", &root_signed_by(&keys, &root, &[&a, &b]))])
            .unwrap(),
    );
    eventually("B seen and pending", || {
        root_phases(&state).contains(&(tag_b, "add_pend".into()))
    });
    eventually("B trusted after the hold-down", || {
        root_phases(&state).contains(&(tag_b, "valid".into()))
    });

    // The root revokes A with A's own signature and goes on with B alone.
    let revoked = run(Command::new("dnssec-revoke").current_dir(&keys).arg(&a));
    root_server.take();
    root_server = Some(
        dns.serve(1, &[(".", &root_signed_by(&keys, &root, &[&revoked, &b]))])
            .unwrap(),
    );
    eventually("A revoked", || {
        root_phases(&state).contains(&(tag_a, "revoked".into()))
    });
    let answer = secure_answer(&suite);
    assert_eq!((answer.rcode, answer.ad), (ResponseCode::NoError, true));

    // A restart: the anchor file still names A alone, which the root no longer
    // signs with; the state says B, and B it is.
    drop(suite);
    let root_without_a = root_signed_by(&keys, &root, &[&b]);
    root_server.take();
    let _root_server = dns.serve(1, &[(".", &root_without_a)]).unwrap();
    let suite = lab.start_resolver_suite(&config).unwrap();
    let answer = secure_answer(&suite);
    assert_eq!(
        (answer.rcode, answer.ad),
        (ResponseCode::NoError, true),
        "after the restart"
    );
    let phases = root_phases(&state);
    assert!(phases.contains(&(tag_b, "valid".into())), "{phases:?}");
}

#[test]
fn random_names_under_a_signed_zone_are_denied_from_validated_nsec() {
    let (_lab, signed, _hints, _config, suite) = validating_suite();
    let leaves = &signed.servers[3];
    // One NXDOMAIN teaches the resolver the NSEC records around the name.
    let first = verdict(&ask(suite.dns, "first.secure.test.", RecordType::A, false));
    assert_eq!((first.rcode, first.ad), (ResponseCode::NXDomain, true));
    let before = leaves.queries();
    // Names the same NSEC records cover (between alias and ns1, and between
    // renamed and Upper) are denied without the zone's server hearing of them.
    for name in [
        "b1.secure.test.",
        "b2.secure.test.",
        "mz.secure.test.",
        "s1.secure.test.",
    ] {
        let response = ask(suite.dns, name, RecordType::A, false);
        let denied = verdict(&response);
        assert_eq!(
            (denied.rcode, denied.ad),
            (ResponseCode::NXDomain, true),
            "{name}"
        );
        assert!(
            response
                .authorities
                .iter()
                .any(|r| r.record_type() == RecordType::NSEC),
            "{name}: the proof goes with the answer"
        );
    }
    // The covering records may need a second NXDOMAIN to be learned (the wildcard's
    // span); after that the server hears nothing more.
    let asked = leaves.queries() - before;
    assert!(asked <= 2, "the zone's server was asked {asked} times");
    let quiet = leaves.queries();
    for i in 0..20 {
        let name = format!("b{i}x.secure.test.");
        let denied = verdict(&ask(suite.dns, &name, RecordType::A, false));
        assert_eq!(
            (denied.rcode, denied.ad),
            (ResponseCode::NXDomain, true),
            "{name}"
        );
    }
    assert_eq!(
        leaves.queries(),
        quiet,
        "random names went to the zone's server"
    );
    // Existing names are still answered, and by the server.
    let www = verdict(&ask(suite.dns, "www.secure.test.", RecordType::A, false));
    assert_eq!((www.rcode, www.ad), (ResponseCode::NoError, true));
}

#[test]
fn random_names_under_an_nsec3_zone_are_denied_from_validated_nsec3() {
    let (_lab, signed, _hints, _config, suite) = validating_suite();
    let leaves = &signed.servers[3];
    // Prime the chain of trust down to nsec3.test. with a name that exists.
    let www = verdict(&ask(suite.dns, "www.nsec3.test.", RecordType::A, false));
    assert_eq!((www.rcode, www.ad), (ResponseCode::NoError, true));
    let before = leaves.queries();
    // nsec3.test. has three names (apex, ns1, www), so three NSEC3 records: each
    // NXDOMAIN the server gives teaches at least one the resolver lacked, so after
    // at most three the chain is known and no random name reaches the server.
    for i in 0..40 {
        let name = format!("r{i}x.nsec3.test.");
        let response = ask(suite.dns, &name, RecordType::A, false);
        let denied = verdict(&response);
        assert_eq!(
            (denied.rcode, denied.ad),
            (ResponseCode::NXDomain, true),
            "{name}"
        );
        assert!(
            response
                .authorities
                .iter()
                .any(|r| r.record_type() == RecordType::NSEC3),
            "{name}: the proof goes with the answer"
        );
    }
    let asked = leaves.queries() - before;
    assert!(
        (1..=3).contains(&asked),
        "the zone's server was asked {asked} times for 40 random names"
    );
    // A name that exists is still answered, and a type it lacks is not denied
    // from a span.
    let www = verdict(&ask(suite.dns, "www.nsec3.test.", RecordType::A, false));
    assert_eq!((www.rcode, www.ad), (ResponseCode::NoError, true));
}
