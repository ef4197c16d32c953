#![allow(clippy::unwrap_used)]

use std::io::Read;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::mpsc::Receiver;
use std::time::{Duration, SystemTime};

use prost::Message as _;

use super::*;
use crate::frames::ControlKind;
use crate::schema::message::Type as EntryType;

fn config(file: Option<&Path>, socket: Option<&Path>) -> DnstapConfig {
    DnstapConfig {
        socket: socket.map(Path::to_path_buf),
        file: file.map(Path::to_path_buf),
        identity: Some("test".into()),
        version: true,
        messages: Vec::new(),
        sample: 1,
        queue: 64,
    }
}

fn event(id: u8, answered: bool) -> Event {
    Event {
        exchange: Exchange::Auth,
        protocol: Protocol::Udp,
        initiator: "127.0.0.1:40000".parse().unwrap(),
        responder: Some("127.0.0.1:53".parse().unwrap()),
        query_time: SystemTime::now(),
        query: Bytes::from(vec![id; 12]),
        zone: None,
        response: answered.then(|| (SystemTime::now(), Bytes::from(vec![id; 20]))),
    }
}

fn decode(frame: &[u8]) -> schema::Message {
    let entry = schema::Dnstap::decode(frame).unwrap();
    assert_eq!(entry.identity.as_deref(), Some(&b"test"[..]));
    assert_eq!(entry.version.as_deref(), Some(SOFTWARE.as_bytes()));
    entry.message.unwrap()
}

#[test]
fn a_file_holds_every_entry_between_start_and_stop() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dnstap.fstrm");
    let tap = Tap::start(&config(Some(&path), None), &DnstapMessage::LISTENER).unwrap();
    tap.log(event(1, true));
    tap.log(event(2, false));
    tap.log(event(3, true));
    tap.close(Duration::from_secs(5));
    // Logged after the end: dropped, not written past STOP.
    tap.log(event(4, true));
    assert_eq!(tap.stats().written, 5);

    let mut reader = frames::Reader::new(std::fs::File::open(&path).unwrap()).unwrap();
    let mut types = Vec::new();
    while let Some(frame) = reader.next_frame().unwrap() {
        let message = decode(&frame);
        types.push((message.r#type, message.query_message.map(|q| q[0])));
    }
    let query = EntryType::AuthQuery as i32;
    let response = EntryType::AuthResponse as i32;
    assert_eq!(
        types,
        vec![
            (query, Some(1)),
            (response, None),
            (query, Some(2)),
            (query, Some(3)),
            (response, None),
        ]
    );
}

#[test]
fn a_file_that_cannot_be_created_fails_at_start_and_its_directory_is_made() {
    // Its directory would have to be made inside a plain file.
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain");
    std::fs::write(&plain, "").unwrap();
    let path = plain.join("x.fstrm");
    let error = Tap::start(&config(Some(&path), None), &DnstapMessage::LISTENER).unwrap_err();
    assert!(error.to_string().contains("plain/x.fstrm"), "{error}");

    // A missing directory is made, as for ready files.
    let nested = dir.path().join("logs/dnstap.fstrm");
    let tap = Tap::start(&config(Some(&nested), None), &DnstapMessage::LISTENER).unwrap();
    tap.close(Duration::from_secs(5));
    assert!(nested.exists());
}

/// A Frame Streams reader as fstrm_capture is: the handshake, then frames until
/// STOP (answered FINISH) or, when `hang_up_after` is set, until that many frames.
fn serve(stream: &mut UnixStream, hang_up_after: Option<usize>) -> Vec<Vec<u8>> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let ready = frames::read_control(stream).unwrap();
    assert_eq!(ready.kind, ControlKind::Ready);
    assert_eq!(ready.content_types, vec![frames::CONTENT_TYPE.to_vec()]);
    frames::write_control(stream, ControlKind::Accept, true).unwrap();
    assert_eq!(
        frames::read_control(stream).unwrap().kind,
        ControlKind::Start
    );
    let mut received = Vec::new();
    loop {
        if hang_up_after == Some(received.len()) {
            return received;
        }
        let mut len = [0u8; 4];
        stream.read_exact(&mut len).unwrap();
        let len = u32::from_be_bytes(len) as usize;
        if len == 0 {
            // The escape: the rest of a control frame, which must be STOP.
            let mut rest = [0u8; 8];
            stream.read_exact(&mut rest).unwrap();
            assert_eq!(u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]), 3);
            frames::write_control(stream, ControlKind::Finish, false).unwrap();
            return received;
        }
        let mut frame = vec![0u8; len];
        stream.read_exact(&mut frame).unwrap();
        received.push(frame);
    }
}

fn reader(listener: UnixListener, connections: Vec<Option<usize>>) -> Receiver<Vec<Vec<u8>>> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for hang_up_after in connections {
            let (mut stream, _) = listener.accept().unwrap();
            let _ = sender.send(serve(&mut stream, hang_up_after));
        }
    });
    receiver
}

#[test]
fn a_socket_reader_gets_the_handshake_the_entries_and_stop() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dnstap.sock");
    let received = reader(UnixListener::bind(&path).unwrap(), vec![None]);
    let tap = Tap::start(&config(None, Some(&path)), &DnstapMessage::LISTENER).unwrap();
    for id in 0..10 {
        tap.log(event(id, true));
    }
    tap.close(Duration::from_secs(10));
    let frames = received.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(frames.len(), 20);
    assert_eq!(decode(&frames[19]).r#type, EntryType::AuthResponse as i32);
    assert_eq!(tap.stats().written, 20);
}

#[test]
fn a_reader_that_goes_away_is_connected_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dnstap.sock");
    // The first connection hangs up after one entry; the second stays.
    let received = reader(UnixListener::bind(&path).unwrap(), vec![Some(1), None]);
    let tap = Tap::start(&config(None, Some(&path)), &DnstapMessage::LISTENER).unwrap();
    tap.log(event(0, false));
    let first = received.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(first.len(), 1);
    // Entries keep coming; those sent into the dead connection are lost, the
    // writer notices and connects again. Bounded: 500 rounds of 10 ms.
    for id in 1..=200u8 {
        tap.log(event(id, false));
        std::thread::sleep(Duration::from_millis(10));
        let stats = tap.stats();
        if stats.written >= 2 + 10 && stats.write_error + stats.unavailable > 0 {
            break;
        }
    }
    tap.close(Duration::from_secs(10));
    let second = received.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(!second.is_empty(), "nothing arrived after reconnecting");
    let stats = tap.stats();
    assert!(stats.write_error + stats.unavailable > 0, "{stats:?}");
}

#[test]
fn every_entry_is_written_or_counted_and_logging_never_waits() {
    let dir = tempfile::tempdir().unwrap();
    // Nobody listens: the writer drops what it takes, the queue (4) overflows.
    let path = dir.path().join("nobody.sock");
    let mut config = config(None, Some(&path));
    config.queue = 4;
    let tap = Tap::start(&config, &DnstapMessage::LISTENER).unwrap();
    for id in 0..250 {
        tap.log(event(id, true));
    }
    tap.close(Duration::from_secs(10));
    let stats = tap.stats();
    assert_eq!(stats.written, 0);
    assert_eq!(stats.queue_full + stats.unavailable, 500, "{stats:?}");
}

#[test]
fn sampling_and_selection_decide_before_anything_is_copied() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(Some(&dir.path().join("f")), None);
    config.messages = vec![DnstapMessage::ClientQuery];
    config.sample = 1_000_000;
    let tap = Tap::start(&config, &DnstapMessage::LISTENER).unwrap();
    assert!(tap.wants(Exchange::Client));
    assert!(!tap.wants(Exchange::Auth));
    let sampled = (0..1000).filter(|_| tap.sampled()).count();
    assert!(sampled < 1000);
    tap.close(Duration::from_secs(5));
}
