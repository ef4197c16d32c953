//! NOTIFY (RFC 1996) to the secondaries in `authority.notify` when a zone's serial
//! changes (a reload, a new secondary version) and once at start: they then refresh
//! at once instead of at their next REFRESH. Each target is tried up to three times
//! with a doubling timeout; the outcome is logged once.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, Record, RecordType};
use tokio::net::UdpSocket;

const ATTEMPTS: u32 = 3;
const FIRST_TIMEOUT: Duration = Duration::from_secs(2);

/// Notifies every target of `zone`'s new `soa`, each in its own task.
pub(crate) fn notify(zone: &Name, soa: &Record, targets: &[SocketAddr]) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    for target in targets {
        runtime.spawn(notify_one(zone.clone(), soa.clone(), *target));
    }
}

/// What became of one NOTIFY.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Acknowledged,
    Refused(ResponseCode),
    Unanswered,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Acknowledged => f.write_str("acknowledged"),
            Self::Refused(rcode) => write!(f, "refused ({rcode})"),
            Self::Unanswered => write!(f, "unanswered after {ATTEMPTS} tries"),
        }
    }
}

/// Notifies every target at once and waits for all of them (the operator's
/// `sextantctl zone notify`).
pub(crate) async fn notify_and_wait(
    zone: &Name,
    soa: &Record,
    targets: &[SocketAddr],
) -> Vec<(SocketAddr, Outcome)> {
    let mut tasks = tokio::task::JoinSet::new();
    for (index, target) in targets.iter().enumerate() {
        let (zone, soa, target) = (zone.clone(), soa.clone(), *target);
        tasks.spawn(async move { (index, target, notify_one(zone, soa, target).await) });
    }
    let mut outcomes = Vec::with_capacity(targets.len());
    while let Some(joined) = tasks.join_next().await {
        if let Ok(outcome) = joined {
            outcomes.push(outcome);
        }
    }
    outcomes.sort_by_key(|(index, _, _)| *index);
    outcomes
        .into_iter()
        .map(|(_, target, outcome)| (target, outcome))
        .collect()
}

async fn notify_one(zone: Name, soa: Record, target: SocketAddr) -> Outcome {
    let serial = match &soa.data {
        hickory_proto::rr::RData::SOA(data) => data.serial,
        _ => 0,
    };
    let mut timeout = FIRST_TIMEOUT;
    for _ in 0..ATTEMPTS {
        match exchange(&zone, &soa, target, timeout).await {
            Ok(ResponseCode::NoError) => {
                metrics::counter!("sextant_authority_notifies_total", "result" => "acknowledged")
                    .increment(1);
                tracing::info!(%zone, serial, %target, "NOTIFY acknowledged");
                return Outcome::Acknowledged;
            }
            Ok(rcode) => {
                metrics::counter!("sextant_authority_notifies_total", "result" => "refused")
                    .increment(1);
                tracing::warn!(%zone, serial, %target, %rcode, "NOTIFY refused by the secondary; check its allow-notify settings");
                return Outcome::Refused(rcode);
            }
            Err(_) => timeout *= 2,
        }
    }
    metrics::counter!("sextant_authority_notifies_total", "result" => "unanswered").increment(1);
    tracing::warn!(%zone, serial, %target, attempts = ATTEMPTS, "no answer to NOTIFY; the secondary will catch up at its next refresh");
    Outcome::Unanswered
}

/// One NOTIFY and its answer: our ID, QR set, opcode NOTIFY, from the target.
async fn exchange(
    zone: &Name,
    soa: &Record,
    target: SocketAddr,
    timeout: Duration,
) -> std::io::Result<ResponseCode> {
    let mut message = Message::new(rand_id(), MessageType::Query, OpCode::Notify);
    message.metadata.authoritative = true;
    message.add_query(Query::query(zone.clone(), RecordType::SOA));
    message.answers.push(soa.clone());
    let wire = message.to_vec().map_err(std::io::Error::other)?;
    let local: SocketAddr = if target.is_ipv6() {
        ([0u16; 8], 0).into()
    } else {
        ([0, 0, 0, 0], 0).into()
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(target).await?;
    socket.send(&wire).await?;
    let mut buffer = [0u8; 1500];
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let len = tokio::time::timeout_at(deadline, socket.recv(&mut buffer))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
        let Ok(answer) = Message::from_vec(&buffer[..len]) else {
            continue;
        };
        if answer.metadata.id == message.metadata.id
            && answer.metadata.message_type == MessageType::Response
            && answer.metadata.op_code == OpCode::Notify
        {
            return Ok(answer.metadata.response_code);
        }
    }
}

fn rand_id() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    // RandomState is seeded per instance: enough for a query ID.
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish() as u16
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use hickory_proto::rr::RData;
    use hickory_proto::rr::rdata::SOA;

    use super::*;

    #[tokio::test]
    async fn a_notify_is_retried_and_its_answer_matched() {
        let secondary = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let target = secondary.local_addr().unwrap();
        let zone = Name::from_ascii("example.com.").unwrap();
        let soa = Record::from_rdata(
            zone.clone(),
            60,
            RData::SOA(SOA::new(zone.clone(), zone.clone(), 9, 1, 1, 1, 1)),
        );
        let answering = tokio::spawn(async move {
            let mut buffer = [0u8; 1500];
            // Ignore the first try, answer the second.
            let _ = secondary.recv_from(&mut buffer).await.unwrap();
            let (len, from) = secondary.recv_from(&mut buffer).await.unwrap();
            let notify = Message::from_vec(&buffer[..len]).unwrap();
            assert_eq!(notify.metadata.op_code, OpCode::Notify);
            assert_eq!(notify.queries[0].query_type(), RecordType::SOA);
            let mut answer = notify.clone();
            answer.metadata.message_type = MessageType::Response;
            secondary
                .send_to(&answer.to_vec().unwrap(), from)
                .await
                .unwrap();
        });
        let first = exchange(&zone, &soa, target, Duration::from_millis(200)).await;
        assert!(first.is_err(), "the first try times out");
        let second = exchange(&zone, &soa, target, Duration::from_secs(2))
            .await
            .unwrap();
        assert_eq!(second, ResponseCode::NoError);
        answering.await.unwrap();
    }
}
