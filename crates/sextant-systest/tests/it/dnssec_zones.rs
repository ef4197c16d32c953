//! Signed zones for the DNSSEC tests: one zone with an answer of every class, signed
//! by each signer with each algorithm and way of denying existence, and a lab that
//! serves them all from Sextant.

use sextant_systest::signing::{Algorithm, Denial, SignedZone, Signer, sign};
use sextant_systest::{Lab, Suite};

/// The zone every case signs, under its own apex.
pub(crate) fn zone_text(apex: &str) -> String {
    format!(
        r#"$ORIGIN {apex}.
$TTL 3600
@           SOA   ns1 hostmaster 2026113001 7200 3600 1209600 300
@           NS    ns1
@           NS    ns2
@           MX    10 mail
@           TXT   "apex \010\255"
ns1         A     192.0.2.1
ns2         A     192.0.2.2
mail        A     192.0.2.25
mail        AAAA  2001:db8::25
www         A     192.0.2.80
www         TXT   "web"
alias       CNAME www
wcalias     CNAME x.wild
x.y.ent     TXT   "deep"
*.wild      TXT   "wildcard"
*.wild      MX    10 mail
sub.wild    A     192.0.2.7
secure      NS    ns1.secure
secure      DS    12345 13 2 49FD46E6C4B45C55D4AC69CBD3CD34AC1AFE51DE14B5C2D9FA6AFC47C5FC9D85
ns1.secure  A     192.0.2.53
insecure    NS    ns1.insecure
ns1.insecure A    192.0.2.54
x.deep      NS    ns.x.deep
ns.x.deep   A     192.0.2.55
dn          DNAME other.example.
_sip._tcp   SRV   0 5 5060 sip
sip         A     192.0.2.60
{big}"#,
        big = (0..40)
            .map(|i| format!(
                "big TXT \"string {i:02} padded to make the signed RRset need TCP\"\n"
            ))
            .collect::<String>()
    )
}

/// One signed zone: its apex and how it is signed.
pub(crate) struct Case {
    pub(crate) apex: &'static str,
    signer: Signer,
    algorithm: Algorithm,
    denial: Denial,
}

/// Every signer, algorithm and denial, each under its own apex.
pub(crate) const CASES: &[Case] = &[
    Case {
        apex: "nsec.test",
        signer: Signer::Bind,
        algorithm: Algorithm::EcdsaP256,
        denial: Denial::Nsec,
    },
    Case {
        apex: "nsec3.test",
        signer: Signer::Bind,
        algorithm: Algorithm::RsaSha256,
        denial: Denial::Nsec3,
    },
    Case {
        apex: "optout.test",
        signer: Signer::Ldns,
        algorithm: Algorithm::Ed25519,
        denial: Denial::Nsec3OptOut,
    },
    Case {
        apex: "ldns.test",
        signer: Signer::Ldns,
        algorithm: Algorithm::EcdsaP256,
        denial: Denial::Nsec,
    },
    Case {
        apex: "knot.test",
        signer: Signer::Knot,
        algorithm: Algorithm::EcdsaP256,
        denial: Denial::Nsec3,
    },
];

/// Every case's zone, signed, served by a Sextant suite in `lab`.
pub(crate) fn serve_signed(lab: &Lab) -> (Suite, Vec<(&'static str, SignedZone)>) {
    let mut zones = Vec::new();
    for case in CASES {
        let signed = sign(
            &lab.path().join("sign").join(case.apex),
            case.apex,
            &zone_text(case.apex),
            case.signer,
            case.algorithm,
            case.denial,
        )
        .unwrap_or_else(|e| panic!("signing {}: {e:#}", case.apex));
        zones.push((case.apex, signed));
    }
    let texts: Vec<(&str, String)> = zones
        .iter()
        .map(|(apex, signed)| {
            (
                *apex,
                std::fs::read_to_string(&signed.file).expect("the signed zone"),
            )
        })
        .collect();
    let suite_zones: Vec<(&str, &str)> = texts.iter().map(|(a, t)| (*a, t.as_str())).collect();
    let config = lab.suite_config(&suite_zones, "").expect("a config");
    let suite = lab.start_suite(&config).expect("the suite");
    (suite, zones)
}
