//! One gRPC call per query on one HTTP/2 connection: what the streaming lanes
//! ([`crate::QueryClient`]) replaced on the hot path. Kept for one-off queries and as
//! the baseline the lanes are measured against (`cargo xtask bench-rpc`).

use tonic::transport::Channel;

use crate::endpoint::Dial;
use crate::query_client::request;
use crate::{Answer, Endpoint, Query, RpcError, pb};

/// One gRPC call per query (`Query.Ask`): the baseline the lanes are measured against.
#[derive(Clone, Debug)]
pub struct UnaryQueryClient {
    endpoint: Endpoint,
    client: pb::query_client::QueryClient<Channel>,
}

impl UnaryQueryClient {
    /// Connects once; every [`ask`](Self::ask) is then an HTTP/2 stream of its own
    /// on that connection.
    pub async fn connect(endpoint: Endpoint) -> Result<Self, RpcError> {
        let channel = endpoint.connect().await?;
        Ok(Self {
            endpoint,
            client: pb::query_client::QueryClient::new(channel),
        })
    }

    /// Asks one query and waits for its answer.
    pub async fn ask(&self, query: Query) -> Result<Answer, RpcError> {
        let response = self
            .client
            .clone()
            .ask(request(query, 0))
            .await
            .map_err(|status| RpcError::Call {
                endpoint: self.endpoint.clone(),
                status: Box::new(status),
            })?
            .into_inner();
        Ok(Answer::from_parts(response.wire, response.cache_ttl))
    }
}
