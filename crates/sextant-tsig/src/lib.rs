//! TSIG (RFC 8945) for zone transfers, both ways. As a secondary: our queries are
//! signed, and an answer stream counts only if its first and last messages carry a
//! valid signature chained to ours, with at most 99 unsigned messages between two
//! signed ones (§5.3.1; NSD signs every 96th message, BIND and Knot every one). As a
//! primary: a request's signature is verified and every answer message signed.

use std::time::{SystemTime, UNIX_EPOCH};

use hickory_proto::op::Message;
use hickory_proto::rr::rdata::tsig::{
    TSIG, TsigAlgorithm, make_tsig_record, signed_bitmessage_to_buf,
};
use hickory_proto::rr::{Name, TSigner};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};

/// Allowed clock difference with the primary, seconds (RFC 8945 §10 suggests 300).
const FUDGE: u16 = 300;
/// Unsigned messages allowed between two signed ones (RFC 8945 §5.3.1).
const MAX_UNSIGNED_RUN: usize = 99;

/// A shared secret and its name.
#[derive(Clone)]
pub struct Key {
    signer: TSigner,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        write!(f, "Key({})", self.signer.signer_name())
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Key {
    /// `algorithm` as in the configuration (`hmac-sha256`, ...).
    pub fn new(name: &Name, algorithm: &str, secret: Vec<u8>) -> Result<Self, String> {
        let algorithm = match algorithm {
            "hmac-sha256" => TsigAlgorithm::HmacSha256,
            "hmac-sha384" => TsigAlgorithm::HmacSha384,
            "hmac-sha512" => TsigAlgorithm::HmacSha512,
            other => return Err(format!("TSIG algorithm {other} is not supported")),
        };
        let signer = TSigner::new(secret, algorithm, name.clone(), FUDGE)
            .map_err(|e| format!("TSIG key {name}: {e}"))?;
        Ok(Self { signer })
    }

    /// The key's name.
    pub fn name(&self) -> &Name {
        self.signer.signer_name()
    }

    /// Verifies a signed request (`wire` as received, `message` parsed from it) and
    /// returns its MAC, which the answer chains to.
    pub fn verify_query(&self, wire: &[u8], message: &Message) -> Result<Vec<u8>, String> {
        let signature = message
            .signature()
            .ok_or_else(|| "the request is not signed".to_string())?;
        if signature.name != *self.name() || signature.data.algorithm != *self.signer.algorithm() {
            return Err(format!(
                "the request is signed with another key ({})",
                signature.name
            ));
        }
        let (tbv, record) = signed_bitmessage_to_buf(wire, None, true)
            .map_err(|e| format!("the signed request does not parse ({e})"))?;
        self.signer
            .verify(&tbv, &record.data.mac)
            .map_err(|_| "the request's TSIG signature is wrong".to_string())?;
        let clock = now();
        if clock.abs_diff(record.data.time) > u64::from(record.data.fudge) {
            return Err("the request was signed outside the clock window".into());
        }
        Ok(record.data.mac.clone())
    }

    /// Signs a query; returns its MAC, which the answers must chain to.
    pub fn sign_query(&self, message: &mut Message) -> Result<Vec<u8>, String> {
        let (record, _) = self
            .signer
            .sign_message(message, now())
            .map_err(|e| format!("signing the query: {e}"))?;
        let mac = record.data.mac.clone();
        message.set_signature(record);
        Ok(mac)
    }

    /// Signs one message of an answer stream: the first chains to the query's MAC
    /// with all TSIG variables, later ones to the previous MAC, the messages sent
    /// unsigned since (`unsigned`, as sent) and the timers only. Returns this
    /// message's MAC.
    pub fn sign_response(
        &self,
        message: &mut Message,
        previous_mac: &[u8],
        unsigned: &[u8],
        first: bool,
    ) -> Result<Vec<u8>, String> {
        message.signature = None;
        let bytes = message.to_vec().map_err(|e| e.to_string())?;
        let (mac, record) = self.response_signature(&bytes, previous_mac, unsigned, first)?;
        message.set_signature(Box::new(record));
        Ok(mac)
    }

    /// [`Key::sign_response`] of a message in wire form: the TSIG record is appended
    /// to `message` and counted in its header. Returns this message's MAC.
    pub fn sign_response_wire(
        &self,
        message: &mut Vec<u8>,
        previous_mac: &[u8],
        unsigned: &[u8],
        first: bool,
    ) -> Result<Vec<u8>, String> {
        if message.len() < 12 {
            return Err("the message has no header".into());
        }
        let (mac, record) = self.response_signature(message, previous_mac, unsigned, first)?;
        let record = record.to_bytes().map_err(|e| e.to_string())?;
        let arcount = u16::from_be_bytes([message[10], message[11]])
            .checked_add(1)
            .ok_or("the additional section is full")?;
        message[10..12].copy_from_slice(&arcount.to_be_bytes());
        message.extend_from_slice(&record);
        Ok(mac)
    }

    /// The MAC over `bytes` (a message without its TSIG) and the TSIG record holding it.
    fn response_signature(
        &self,
        bytes: &[u8],
        previous_mac: &[u8],
        unsigned: &[u8],
        first: bool,
    ) -> Result<(Vec<u8>, hickory_proto::rr::Record<TSIG>), String> {
        let id = u16::from_be_bytes([
            *bytes.first().ok_or("empty message")?,
            *bytes.get(1).ok_or("empty message")?,
        ]);
        let stub = TSIG::new(
            self.signer.algorithm().clone(),
            now(),
            FUDGE,
            Vec::new(),
            id,
            None,
            Vec::new(),
        );
        let mut tbs = Vec::with_capacity(bytes.len() + previous_mac.len() + 128);
        let len = u16::try_from(previous_mac.len()).map_err(|e| e.to_string())?;
        tbs.extend_from_slice(&len.to_be_bytes());
        tbs.extend_from_slice(previous_mac);
        tbs.extend_from_slice(unsigned);
        tbs.extend_from_slice(bytes);
        if first {
            // A fresh buffer: BinEncoder writes from offset 0, it does not append.
            let mut variables = Vec::with_capacity(64);
            let mut encoder = BinEncoder::new(&mut variables);
            stub.emit_tsig_for_mac(&mut encoder, self.name())
                .map_err(|e| e.to_string())?;
            tbs.extend_from_slice(&variables);
        } else {
            push_timers(&mut tbs, stub.time, stub.fudge);
        }
        let mac = self.signer.sign(&tbs).map_err(|e| e.to_string())?;
        let record = make_tsig_record(self.name().clone(), stub.set_mac(mac.clone()));
        Ok((mac, record))
    }

    /// Verifies a signed request given as wire bytes alone; returns its MAC.
    pub fn verify_request(&self, wire: &[u8]) -> Result<Vec<u8>, String> {
        let message =
            Message::from_vec(wire).map_err(|e| format!("the request does not parse ({e})"))?;
        self.verify_query(wire, &message)
    }
}

/// Signs a single answer to a verified request: the response writer's
/// [`sextant_wire::Signer`] for answers to signed queries.
#[derive(Debug)]
pub struct AnswerSigner<'k> {
    key: &'k Key,
    request_mac: Vec<u8>,
}

impl<'k> AnswerSigner<'k> {
    /// Verifies the request `wire` with `key`; the signer then chains to its MAC.
    pub fn for_request(key: &'k Key, wire: &[u8]) -> Result<Self, String> {
        Ok(Self {
            key,
            request_mac: key.verify_request(wire)?,
        })
    }
}

/// The largest MAC of the algorithms supported (HMAC-SHA512).
const MAX_MAC_LEN: usize = 64;

impl sextant_wire::Signer for AnswerSigner<'_> {
    fn space(&self) -> usize {
        // Owner, fixed fields, algorithm name (at most "hmac-sha512." = 13 bytes),
        // time, fudge, MAC size, MAC, original ID, error, other length.
        let name = self.key.name().len() + 2;
        name + 10 + 13 + 6 + 2 + 2 + MAX_MAC_LEN + 2 + 2 + 2
    }

    fn sign(&self, message: &mut Vec<u8>) -> Result<(), String> {
        self.key
            .sign_response_wire(message, &self.request_mac, &[], true)
            .map(|_| ())
    }
}

/// RFC 8945 §4.3.3: time signed (48 bits) and fudge.
fn push_timers(out: &mut Vec<u8>, time: u64, fudge: u16) {
    out.extend_from_slice(&time.to_be_bytes()[2..]);
    out.extend_from_slice(&fudge.to_be_bytes());
}

/// Checks the messages of one answer stream in order.
#[derive(Debug)]
pub struct ResponseVerifier {
    key: Key,
    previous_mac: Vec<u8>,
    first: bool,
    /// Unsigned messages since the last signed one, as received.
    unsigned: Vec<u8>,
    unsigned_count: usize,
}

impl ResponseVerifier {
    /// Checks the answers to a query whose MAC was `request_mac`.
    pub fn new(key: Key, request_mac: Vec<u8>) -> Self {
        Self {
            key,
            previous_mac: request_mac,
            first: true,
            unsigned: Vec::new(),
            unsigned_count: 0,
        }
    }

    /// Checks one message (`wire` as received, `message` parsed from it). The error
    /// says what is wrong in a few words.
    pub fn check(&mut self, wire: &[u8], message: &Message) -> Result<(), String> {
        let Some(signature) = message.signature() else {
            if self.first {
                return Err("the answer is not signed with our TSIG key".into());
            }
            self.unsigned_count += 1;
            if self.unsigned_count > MAX_UNSIGNED_RUN {
                return Err("more than 99 unsigned messages in a row".into());
            }
            self.unsigned.extend_from_slice(wire);
            return Ok(());
        };
        if let Some(error) = &signature.data.error {
            return Err(format!("the primary rejected our TSIG ({error:?})"));
        }
        if signature.name != *self.key.name()
            || signature.data.algorithm != *self.key.signer.algorithm()
        {
            return Err(format!(
                "the answer is signed with another key ({})",
                signature.name
            ));
        }
        let (rest, record) = signed_bitmessage_to_buf(wire, None, self.first)
            .map_err(|e| format!("the signed answer does not parse ({e})"))?;
        let mut tbv = Vec::with_capacity(rest.len() + self.unsigned.len() + 66);
        let len = u16::try_from(self.previous_mac.len()).map_err(|e| e.to_string())?;
        tbv.extend_from_slice(&len.to_be_bytes());
        tbv.extend_from_slice(&self.previous_mac);
        tbv.extend_from_slice(&self.unsigned);
        tbv.extend_from_slice(&rest);
        let mac = &record.data.mac;
        self.key
            .signer
            .verify(&tbv, mac)
            .map_err(|_| "the answer's TSIG signature is wrong".to_string())?;
        let time = record.data.time;
        let clock = now();
        if clock.abs_diff(time) > u64::from(record.data.fudge) {
            return Err(format!(
                "the answer was signed {}s away from our clock (fudge {}s)",
                clock.abs_diff(time),
                record.data.fudge
            ));
        }
        self.previous_mac = mac.clone();
        self.first = false;
        self.unsigned.clear();
        self.unsigned_count = 0;
        Ok(())
    }

    /// Whether the stream may end here: its last message was signed.
    pub fn finish(&self) -> Result<(), String> {
        if self.first || self.unsigned_count > 0 {
            return Err("the last message of the answer is not signed".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use hickory_proto::op::{MessageType, OpCode, Query};
    use hickory_proto::rr::RecordType;

    use super::*;

    fn key(secret: &[u8]) -> Key {
        Key::new(
            &Name::from_ascii("transfer-key.").unwrap(),
            "hmac-sha256",
            secret.to_vec(),
        )
        .unwrap()
    }

    fn response(id: u16, n: u8) -> Message {
        let mut m = Message::new(id, MessageType::Response, OpCode::Query);
        m.add_query(Query::query(
            Name::from_ascii(format!("m{n}.example.")).unwrap(),
            RecordType::AXFR,
        ));
        m
    }

    /// A stream of `count` messages, signed where `signed(i)` says.
    fn stream(
        key: &Key,
        request_mac: &[u8],
        count: u8,
        signed: impl Fn(u8) -> bool,
    ) -> Vec<(Vec<u8>, Message)> {
        let mut previous = request_mac.to_vec();
        let mut unsigned = Vec::new();
        let mut first = true;
        (0..count)
            .map(|i| {
                let mut m = response(7, i);
                if signed(i) {
                    previous = key
                        .sign_response(&mut m, &previous, &unsigned, first)
                        .unwrap();
                    unsigned.clear();
                    first = false;
                }
                let wire = m.to_vec().unwrap();
                if !signed(i) {
                    unsigned.extend_from_slice(&wire);
                }
                let parsed = Message::from_vec(&wire).unwrap();
                (wire, parsed)
            })
            .collect()
    }

    fn verify(key: &Key, mac: &[u8], messages: &[(Vec<u8>, Message)]) -> Result<(), String> {
        let mut verifier = ResponseVerifier::new(key.clone(), mac.to_vec());
        for (wire, message) in messages {
            verifier.check(wire, message)?;
        }
        verifier.finish()
    }

    #[test]
    fn a_signed_query_and_chained_answers_verify() {
        let key = key(b"0123456789abcdef0123456789abcdef");
        let mut query = Message::new(7, MessageType::Query, OpCode::Query);
        let mac = key.sign_query(&mut query).unwrap();
        assert!(query.signature().is_some());
        let wire = query.to_vec().unwrap();
        let parsed = Message::from_vec(&wire).unwrap();
        assert_eq!(key.verify_query(&wire, &parsed).unwrap(), mac);
        let other = super::tests::key(b"another secret of thirty-two b..");
        assert!(other.verify_query(&wire, &parsed).is_err());
        let every = stream(&key, &mac, 5, |_| true);
        verify(&key, &mac, &every).unwrap();
        // NSD style: first, last and some in between signed.
        let sparse = stream(&key, &mac, 6, |i| i == 0 || i == 3 || i == 5);
        verify(&key, &mac, &sparse).unwrap();
    }

    #[test]
    fn a_wire_answer_is_signed_within_the_space_it_asks_for() {
        use sextant_wire::Signer;
        let key = key(b"0123456789abcdef0123456789abcdef");
        let mut query = Message::new(9, MessageType::Query, OpCode::Query);
        query.add_query(Query::query(
            Name::from_ascii("example.").unwrap(),
            RecordType::SOA,
        ));
        key.sign_query(&mut query).unwrap();
        let query_wire = query.to_vec().unwrap();
        let signer = AnswerSigner::for_request(&key, &query_wire).unwrap();
        let mut answer = response(9, 0).to_vec().unwrap();
        let before = answer.len();
        signer.sign(&mut answer).unwrap();
        assert!(answer.len() - before <= signer.space());
        let parsed = Message::from_vec(&answer).unwrap();
        assert!(parsed.signature().is_some());
        let mut verifier = ResponseVerifier::new(key.clone(), signer.request_mac.clone());
        verifier.check(&answer, &parsed).unwrap();
        verifier.finish().unwrap();
        assert!(AnswerSigner::for_request(&key, &response(9, 1).to_vec().unwrap()).is_err());
    }

    #[test]
    fn wrong_keys_missing_or_tampered_signatures_fail() {
        let key_a = key(b"0123456789abcdef0123456789abcdef");
        let key_b = key(b"another secret of thirty-two b..");
        let mac = vec![1u8; 32];
        let by_b = stream(&key_b, &mac, 2, |_| true);
        assert!(
            verify(&key_a, &mac, &by_b)
                .unwrap_err()
                .contains("signature is wrong")
        );

        let unsigned = stream(&key_a, &mac, 2, |_| false);
        assert!(
            verify(&key_a, &mac, &unsigned)
                .unwrap_err()
                .contains("not signed")
        );

        let last_unsigned = stream(&key_a, &mac, 3, |i| i < 2);
        assert!(
            verify(&key_a, &mac, &last_unsigned)
                .unwrap_err()
                .contains("last message")
        );

        let other_request = stream(&key_a, &[2u8; 32], 2, |_| true);
        assert!(
            verify(&key_a, &mac, &other_request).is_err(),
            "chained to another query"
        );

        let mut tampered = stream(&key_a, &mac, 1, |_| true);
        let (wire, _) = &mut tampered[0];
        wire[2] ^= 0x04; // flip AA
        let message = Message::from_vec(wire).unwrap();
        tampered[0].1 = message;
        assert!(verify(&key_a, &mac, &tampered).is_err());
    }
}
