//! allow_query answers strangers REFUSED; blackhole ignores them entirely.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use sextant_systest::{Lab, query_udp, question_with, recv_within};

use crate::EXAMPLE_ZONE;

/// Sends a query from `source` and returns the answer, if any within a second.
fn query_from(source: &str, server: SocketAddr) -> Option<Message> {
    let socket = UdpSocket::bind((source, 0)).ok()?;
    let query = question_with("www.example.com.", RecordType::A, Some(1232)).ok()?;
    socket.send_to(&query.to_vec().ok()?, server).ok()?;
    let answer = recv_within(&socket, Duration::from_secs(1)).ok()??;
    Message::from_vec(&answer).ok()
}

#[test]
fn allow_query_refuses_and_blackhole_ignores() {
    let lab = Lab::new().unwrap();
    let acl = "allow_query = [\"127.0.0.1/32\"]\nblackhole = [\"127.0.0.3/32\"]";
    let config = lab
        .suite_config(&[("example.com", EXAMPLE_ZONE)], acl)
        .unwrap();
    let suite = lab.start_suite(&config).unwrap();

    let allowed = query_udp(suite.dns, "www.example.com.", RecordType::A).unwrap();
    assert_eq!(allowed.metadata.response_code, ResponseCode::NoError);
    let stranger = query_from("127.0.0.2", suite.dns).expect("a stranger gets an answer");
    assert_eq!(stranger.metadata.response_code, ResponseCode::Refused);
    assert!(
        query_from("127.0.0.3", suite.dns).is_none(),
        "a blackholed client got an answer"
    );

    // Over TCP a blackholed client's connection is closed at once.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&"127.0.0.3:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    socket.connect(&suite.dns.into()).unwrap();
    let mut stream: TcpStream = socket.into();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buffer = [0u8; 16];
    assert_eq!(
        stream.read(&mut buffer).unwrap_or(0),
        0,
        "the connection stays open"
    );
}

#[test]
fn one_client_cannot_take_every_tcp_slot() {
    let lab = Lab::new().unwrap();
    let config = lab
        .suite_config(
            &[("example.com", EXAMPLE_ZONE)],
            "tcp_max_connections_per_client = 4",
        )
        .unwrap();
    let suite = lab.start_suite(&config).unwrap();
    let query = question_with("www.example.com.", RecordType::A, None)
        .unwrap()
        .to_vec()
        .unwrap();
    let ask = |stream: &mut TcpStream| -> bool {
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut len = [0u8; 2];
        stream
            .write_all(&(query.len() as u16).to_be_bytes())
            .is_ok()
            && stream.write_all(&query).is_ok()
            && stream.read_exact(&mut len).is_ok()
    };
    // Four idle connections from 127.0.0.1 hold its slots...
    let mut held: Vec<TcpStream> = (0..4)
        .map(|_| {
            let stream = TcpStream::connect(suite.dns).unwrap();
            std::thread::sleep(Duration::from_millis(50));
            stream
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    // ...a fifth from the same address takes the slot of the one idle longest (a
    // client behind the same NAT is not locked out)...
    let mut fifth = TcpStream::connect(suite.dns).unwrap();
    assert!(ask(&mut fifth), "the fifth connection was not served");
    let mut buffer = [0u8; 16];
    held[0]
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    assert_eq!(
        held[0].read(&mut buffer).unwrap_or(1),
        0,
        "the oldest idle connection was not closed"
    );
    // ...while another address is served over TCP as usual.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&"127.0.0.2:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    socket.connect(&suite.dns.into()).unwrap();
    let mut other: TcpStream = socket.into();
    assert!(ask(&mut other));
    drop(held);
}
