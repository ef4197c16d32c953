//! Following a backend's server-streaming watch (zone set, cache generation) for as
//! long as the daemon runs: reconnect with backoff after any interruption, and keep
//! the last value seen meanwhile.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::{Endpoint, RpcError};

const RETRY_MIN: Duration = Duration::from_millis(50);
const RETRY_MAX: Duration = Duration::from_secs(2);

/// Opens the watch stream of `endpoints[0]` again and again until `shutdown`; every
/// message becomes the receiver's value through `convert`. The value is `None` until
/// the first message arrives. After an interruption the next endpoint of the list is
/// followed (several backends of one role publish the same thing).
pub(crate) fn keep_following<M, T, Open, Opened>(
    endpoints: Vec<Endpoint>,
    shutdown: CancellationToken,
    what: &'static str,
    open: Open,
    convert: fn(M) -> T,
) -> watch::Receiver<Option<T>>
where
    M: Send + 'static,
    T: Send + Sync + 'static,
    Open: Fn(Endpoint) -> Opened + Send + Sync + 'static,
    Opened: Future<Output = Result<tonic::Streaming<M>, RpcError>> + Send,
{
    let (sender, receiver) = watch::channel(None);
    tokio::spawn(async move {
        let mut backoff = RETRY_MIN;
        for endpoint in endpoints.iter().cycle() {
            let follow = async {
                let mut stream = open(endpoint.clone()).await?;
                backoff = RETRY_MIN;
                loop {
                    match stream.message().await {
                        Ok(Some(message)) => {
                            sender.send_replace(Some(convert(message)));
                        }
                        Ok(None) => return Ok(()),
                        Err(status) => {
                            return Err(RpcError::Call {
                                endpoint: endpoint.clone(),
                                status: Box::new(status),
                            });
                        }
                    }
                }
            };
            let outcome: Result<(), RpcError> = tokio::select! {
                _ = shutdown.cancelled() => return,
                outcome = follow => outcome,
            };
            if let Err(error) = outcome {
                tracing::debug!(%endpoint, %error, what, "watch interrupted");
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(RETRY_MAX);
        }
    });
    receiver
}
