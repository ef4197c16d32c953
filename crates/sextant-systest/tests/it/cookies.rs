//! DNS Cookies on the listener (RFC 7873, server cookies as RFC 9018 makes them):
//! `dig +cookie` gets a server cookie it accepts ("good"); two listeners sharing a
//! secret accept each other's cookies; under `require`, a cookie-aware client without
//! a valid server cookie gets BADCOOKIE and then, with the cookie, its answer; and a
//! query with a valid server cookie is not rate limited.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::EdnsOption;
use hickory_proto::rr::{Name, RecordType};
use sextant_systest::{Daemon, Lab, dig, exchange, metric, scrape_metrics};

use crate::EXAMPLE_ZONE;

const SECRET: &str = "00112233445566778899aabbccddeeff";

/// A query for www.example.com A carrying `cookie` as its COOKIE option.
fn with_cookie(cookie: &[u8]) -> Message {
    let mut message = Message::query();
    message.add_query(Query::query(
        Name::from_ascii("www.example.com.").unwrap(),
        RecordType::A,
    ));
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    edns.options_mut()
        .insert(EdnsOption::Unknown(10, cookie.to_vec()));
    message.set_edns(edns);
    message
}

fn cookie_of(response: &Message) -> Vec<u8> {
    response
        .edns
        .as_ref()
        .and_then(|edns| {
            edns.options()
                .as_ref()
                .iter()
                .find_map(|(_, option)| match option {
                    EdnsOption::Unknown(10, data) => Some(data.clone()),
                    _ => None,
                })
        })
        .unwrap_or_default()
}

#[test]
fn dig_gets_a_good_cookie_and_listeners_sharing_a_secret_accept_each_others() {
    let lab = Lab::new().unwrap();
    let metrics = SocketAddr::from(([127, 0, 0, 1], sextant_systest::free_port().unwrap()));
    let config = lab
        .suite_config(
            &[("example.com", EXAMPLE_ZONE)],
            &format!("metrics = \"{metrics}\"\n[listener.cookies]\nsecret = \"{SECRET}\"\n"),
        )
        .unwrap();
    let suite = lab.start_suite(&config).unwrap();
    let shown = dig(suite.dns, &["+cookie", "www.example.com"]).unwrap();
    assert!(
        shown.contains("; COOKIE: ") && shown.contains("(good)"),
        "{shown}"
    );

    // A second listener with the same secret, on another port.
    let second = lab
        .write(
            "second.toml",
            &std::fs::read_to_string(&config)
                .unwrap()
                .replace(&format!("metrics = \"{metrics}\"\n"), "")
                .replace("listener.ready.json", "second.ready.json"),
        )
        .unwrap();
    let second_listener = Daemon::start(
        "sextant-listener",
        &second,
        &lab.path().join("second.ready.json"),
        lab.path(),
    )
    .unwrap();
    let second_dns: SocketAddr = second_listener.ready()["udp"][0]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();

    let client = [7u8; 8];
    let first = exchange(suite.dns, &with_cookie(&client), false).unwrap();
    let cookie = cookie_of(&first);
    assert_eq!(cookie.len(), 24, "client and server cookie");
    assert_eq!(&cookie[..8], &client);
    // Brought back to the other listener: valid there too.
    let again = exchange(second_dns, &with_cookie(&cookie), false).unwrap();
    assert_eq!(again.metadata.response_code, ResponseCode::NoError);
    let back = exchange(suite.dns, &with_cookie(&cookie_of(&again)), false).unwrap();
    assert_eq!(back.metadata.response_code, ResponseCode::NoError);
    let text = scrape_metrics(metrics).unwrap();
    assert!(
        metric(&text, "sextant_listener_cookies_total{state=\"valid\"}") >= 1.0,
        "{text}"
    );
    // A malformed cookie is FORMERR (RFC 7873 §5.2.2).
    let malformed = exchange(suite.dns, &with_cookie(&[1, 2, 3]), false).unwrap();
    assert_eq!(malformed.metadata.response_code, ResponseCode::FormErr);
}

#[test]
fn under_require_a_cookie_aware_client_first_gets_badcookie() {
    let lab = Lab::new().unwrap();
    let config = lab
        .suite_config(
            &[("example.com", EXAMPLE_ZONE)],
            &format!("[listener.cookies]\nsecret = \"{SECRET}\"\nrequire = true\n"),
        )
        .unwrap();
    let suite = lab.start_suite(&config).unwrap();
    let first = exchange(suite.dns, &with_cookie(&[9u8; 8]), false).unwrap();
    assert_eq!(u16::from(first.metadata.response_code), 23, "BADCOOKIE");
    assert!(first.answers.is_empty());
    let cookie = cookie_of(&first);
    assert_eq!(cookie.len(), 24);
    let second = exchange(suite.dns, &with_cookie(&cookie), false).unwrap();
    assert_eq!(second.metadata.response_code, ResponseCode::NoError);
    assert_eq!(second.answers.len(), 1);
    // Over TCP the source address is proven already: no BADCOOKIE.
    let tcp = exchange(suite.dns, &with_cookie(&[9u8; 8]), true).unwrap();
    assert_eq!(tcp.metadata.response_code, ResponseCode::NoError);
    // A client without cookies is answered as always.
    let plain = sextant_systest::query_udp(suite.dns, "www.example.com.", RecordType::A).unwrap();
    assert_eq!(plain.metadata.response_code, ResponseCode::NoError);
}

#[test]
fn a_valid_server_cookie_is_exempt_from_rate_limiting() {
    let lab = Lab::new().unwrap();
    let config = lab
        .suite_config(
            &[("example.com", EXAMPLE_ZONE)],
            &format!(
                "\n[listener.rrl]\nresponses_per_second = 5\nslip = 0\n[listener.cookies]\nsecret = \"{SECRET}\"\n"
            ),
        )
        .unwrap();
    let suite = lab.start_suite(&config).unwrap();
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let count = |query: &Message| {
        let wire = query.to_vec().unwrap();
        for _ in 0..40 {
            socket.send_to(&wire, suite.dns).unwrap();
        }
        let mut received = 0;
        let mut buffer = [0u8; 1500];
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline && socket.recv(&mut buffer).is_ok() {
            received += 1;
        }
        received
    };
    let limited = count(&with_cookie(&[5u8; 8]));
    assert!(limited <= 10, "{limited} answers with only a client cookie");
    let first = exchange(suite.dns, &with_cookie(&[6u8; 8]), true).unwrap();
    let verified = count(&with_cookie(&cookie_of(&first)));
    assert_eq!(verified, 40, "a proven source address is not rate limited");
}
