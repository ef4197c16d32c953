//! Fitting a response into the client's size limit, shared by every backend.

use hickory_proto::op::Message;

/// Classic DNS message limit over UDP without EDNS (RFC 1035 §2.3.4).
const CLASSIC_UDP_SIZE: usize = 512;

/// Encodes `message` within `limit` bytes. Additional data is optional and dropped
/// first without TC; if the answer and authority still do not fit, the response is
/// sent with TC=1 and no records, so the client retries over TCP (RFC 2181 §9).
/// The flag says whether the message went out complete.
pub fn encode_to_fit(message: &mut Message, limit: usize) -> Option<(Vec<u8>, bool)> {
    let limit = limit.max(CLASSIC_UDP_SIZE);
    let bytes = message.to_vec().ok()?;
    if bytes.len() <= limit {
        return Some((bytes, true));
    }
    message.additionals.clear();
    let bytes = message.to_vec().ok()?;
    if bytes.len() <= limit {
        return Some((bytes, false));
    }
    message.answers.clear();
    message.authorities.clear();
    message.metadata.truncation = true;
    message.to_vec().ok().map(|bytes| (bytes, false))
}
