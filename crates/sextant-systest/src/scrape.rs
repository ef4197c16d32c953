//! Reading a daemon's Prometheus endpoint in tests.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// GET /metrics from `address`; the body, retried briefly while the endpoint comes up.
pub fn scrape_metrics(address: SocketAddr) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(mut stream) = TcpStream::connect(address) {
            stream.set_read_timeout(Some(Duration::from_secs(5)))?;
            if stream
                .write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
                .is_ok()
            {
                let mut response = String::new();
                if stream.read_to_string(&mut response).is_ok() && response.contains("200 OK") {
                    return Ok(response);
                }
            }
        }
        anyhow::ensure!(Instant::now() < deadline, "no metrics on {address}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The value of the first sample line that starts with `prefix` (0 when none does).
pub fn metric(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find(|line| line.starts_with(prefix))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
        .unwrap_or(0.0)
}
