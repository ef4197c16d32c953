//! The listener reaches the authority over gRPC on TCP as well as on a Unix socket.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use sextant_systest::{Lab, query_tcp};

use crate::EXAMPLE_ZONE;

#[test]
fn queries_cross_grpc_over_tcp() {
    let lab = Lab::new().unwrap();
    let config = lab
        .suite_config(&[("example.com", EXAMPLE_ZONE)], "")
        .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("unix:authority.sock", &format!("tcp:127.0.0.1:{port}"));
    std::fs::write(&config, text).unwrap();
    let suite = lab.start_suite(&config).unwrap();
    assert_eq!(
        suite.authority.as_ref().unwrap().ready()["grpc"],
        format!("tcp:127.0.0.1:{port}")
    );
    let response = query_tcp(suite.dns, "www.example.com.", RecordType::AAAA).unwrap();
    assert_eq!(response.metadata.response_code, ResponseCode::NoError);
    assert_eq!(response.answers[0].data.to_string(), "2001:db8::80");
}
