//! Unary calls against the streaming lanes, on a running backend: the measurement
//! behind the query path's design. `cargo xtask bench-rpc` runs it against an
//! authority loaded with the benchmark zone; run by hand:
//!
//! ```text
//! unary_vs_stream ENDPOINT QUERIES SECONDS CONCURRENCY [BACKEND_PID]
//! ```
//!
//! QUERIES is a dnsperf query file (`name TYPE` per line). Each mode keeps
//! CONCURRENCY queries in flight for SECONDS and prints queries/s and the CPU time
//! per query of this client and, given its PID, of the backend.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use sextant_rpc::{
    Endpoint, Query, QueryClient, QueryClientOptions, RpcError, Transport, UnaryQueryClient,
};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 5 {
        bail!("usage: unary_vs_stream ENDPOINT QUERIES SECONDS CONCURRENCY [BACKEND_PID]");
    }
    let endpoint: Endpoint = args[1].parse().map_err(|e: String| anyhow::anyhow!(e))?;
    let text = std::fs::read_to_string(&args[2]).with_context(|| format!("reading {}", args[2]))?;
    let queries: Vec<Bytes> = text.lines().filter_map(query_wire).collect();
    if queries.is_empty() {
        bail!("{} holds no usable query line (`name TYPE`)", args[2]);
    }
    let seconds: u64 = args[3].parse().context("SECONDS must be a whole number")?;
    let concurrency: usize = args[4]
        .parse()
        .context("CONCURRENCY must be a whole number")?;
    let backend_pid: Option<u32> = args.get(5).map(|p| p.parse()).transpose()?;
    let run_for = Duration::from_secs(seconds);

    println!(
        "{:<8} {:>11} {:>16} {:>17} {:>8}",
        "mode", "queries/s", "client µs/query", "backend µs/query", "failed"
    );
    let unary = UnaryQueryClient::connect(endpoint.clone()).await?;
    let result = measure(&queries, concurrency, run_for, backend_pid, move |query| {
        let unary = unary.clone();
        async move { unary.ask(query).await }
    })
    .await?;
    result.print("unary");

    let shutdown = CancellationToken::new();
    let lanes = QueryClient::start(endpoint, &QueryClientOptions::default(), shutdown.clone());
    let connected = Instant::now();
    while !lanes.is_connected() {
        if connected.elapsed() > Duration::from_secs(10) {
            bail!("the lanes did not connect within 10 s");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let result = measure(&queries, concurrency, run_for, backend_pid, move |query| {
        let lanes = lanes.clone();
        async move { lanes.query(query).await }
    })
    .await?;
    result.print("stream");
    shutdown.cancel();
    Ok(())
}

struct Outcome {
    answered: u64,
    failed: u64,
    elapsed: Duration,
    client_ticks: u64,
    backend_ticks: Option<u64>,
}

impl Outcome {
    fn print(&self, mode: &str) {
        let per_query = |ticks: u64| {
            // Clock ticks are 10 ms on Linux (USER_HZ = 100).
            format!(
                "{:.2}",
                ticks as f64 * 10_000.0 / self.answered.max(1) as f64
            )
        };
        println!(
            "{:<8} {:>11.0} {:>16} {:>17} {:>8}",
            mode,
            self.answered as f64 / self.elapsed.as_secs_f64(),
            per_query(self.client_ticks),
            self.backend_ticks.map_or_else(|| "-".into(), per_query),
            self.failed
        );
    }
}

async fn measure<F, Fut>(
    queries: &[Bytes],
    concurrency: usize,
    run_for: Duration,
    backend_pid: Option<u32>,
    ask: F,
) -> anyhow::Result<Outcome>
where
    F: Fn(Query) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<sextant_rpc::Answer, RpcError>> + Send,
{
    let client: SocketAddr = ([127, 0, 0, 1], 40000).into();
    let client_before = cpu_ticks("self")?;
    let backend_before = backend_pid
        .map(|pid| cpu_ticks(&pid.to_string()))
        .transpose()?;
    let started = Instant::now();
    let deadline = started + run_for;
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..concurrency {
        let ask = ask.clone();
        let queries: Vec<Bytes> = queries.to_vec();
        tasks.spawn(async move {
            let (mut answered, mut failed) = (0u64, 0u64);
            let mut next = worker * 7919 % queries.len();
            while Instant::now() < deadline {
                let query = Query {
                    wire: queries[next].clone(),
                    client,
                    transport: Transport::Udp,
                    max_response_size: 1232,
                    traceparent: None,
                };
                next = (next + 1) % queries.len();
                match ask(query).await {
                    Ok(answer) if answer.wire().is_some() => answered += 1,
                    _ => failed += 1,
                }
            }
            (answered, failed)
        });
    }
    let (mut answered, mut failed) = (0, 0);
    while let Some(done) = tasks.join_next().await {
        let (a, f) = done.context("a query task panicked")?;
        answered += a;
        failed += f;
    }
    let elapsed = started.elapsed();
    Ok(Outcome {
        answered,
        failed,
        elapsed,
        client_ticks: cpu_ticks("self")? - client_before,
        backend_ticks: match (backend_pid, backend_before) {
            (Some(pid), Some(before)) => Some(cpu_ticks(&pid.to_string())? - before),
            _ => None,
        },
    })
}

/// User + system CPU time of a process, in clock ticks (/proc/PID/stat fields 14, 15).
fn cpu_ticks(pid: &str) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces: count fields after its ')'.
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |n: usize| -> anyhow::Result<u64> {
        fields
            .get(n - 3)
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("/proc/{pid}/stat has no field {n}"))
    };
    Ok(field(14)? + field(15)?)
}

/// A DNS query message for a `name TYPE` line (RD clear, no EDNS).
fn query_wire(line: &str) -> Option<Bytes> {
    let mut parts = line.split_whitespace();
    let name = parts.next()?;
    let qtype: u16 = match parts.next()?.to_ascii_uppercase().as_str() {
        "A" => 1,
        "NS" => 2,
        "SOA" => 6,
        "MX" => 15,
        "TXT" => 16,
        "AAAA" => 28,
        _ => return None,
    };
    let mut wire = vec![0x53, 0x58, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.trim_end_matches('.').split('.') {
        let len = u8::try_from(label.len())
            .ok()
            .filter(|l| (1..64).contains(l))?;
        wire.push(len);
        wire.extend_from_slice(label.as_bytes());
    }
    wire.push(0);
    wire.extend_from_slice(&qtype.to_be_bytes());
    wire.extend_from_slice(&1u16.to_be_bytes());
    Some(Bytes::from(wire))
}
