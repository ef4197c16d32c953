//! Operator control (sextantctl): status and reload, as plain Rust types.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sextant_trace::SpanRecord;

use tonic::{Request, Response, Status};

use crate::endpoint::Dial;
use crate::{Endpoint, RpcError, pb};

/// One zone as the control tool shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneStatus {
    /// Apex in presentation form, lower case, trailing dot.
    pub name: String,
    /// The SOA serial served.
    pub serial: u32,
    /// Records in the zone.
    pub records: u64,
    /// Where the zone comes from: `file:PATH` or `primary ADDRESS`.
    pub source: String,
    /// Secondary zones: seconds since the last successful refresh, if any.
    pub last_success_seconds_ago: Option<u64>,
    /// Secondary zones: why the last refresh failed; empty when it succeeded.
    pub last_failure: String,
    /// Secondary zones: seconds until the next scheduled refresh.
    pub next_refresh_seconds: Option<u64>,
    /// Past its SOA expire (answered SERVFAIL).
    pub expired: bool,
    /// Zones the authority signs: policy, keys, next signing.
    pub signing: Option<ZoneSigning>,
}

/// How a signed zone is signed (public facts only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneSigning {
    /// The `[[dnssec_policy]]` name.
    pub policy: String,
    /// Its keys.
    pub keys: Vec<SigningKey>,
    /// Seconds until the first signature or rollover step falls due.
    pub next_signing_seconds: u64,
    /// A key rollover waits for the parent to publish this key's DS.
    pub waiting_for_ds: Option<u16>,
}

/// One key of a signed zone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SigningKey {
    /// `csk`, `ksk` or `zsk`.
    pub role: String,
    /// The DNSSEC algorithm number.
    pub algorithm: u8,
    /// The key tag.
    pub tag: u16,
    /// When it was made, seconds since the epoch.
    pub created: u64,
    /// The DS for the parent, presentation form without owner; empty for ZSKs.
    pub ds: String,
    /// What it does now.
    pub state: String,
}

impl ZoneStatus {
    /// A zone with no secondary state (a primary zone).
    pub fn primary(name: String, serial: u32, records: u64, source: String) -> Self {
        Self {
            name,
            serial,
            records,
            source,
            last_success_seconds_ago: None,
            last_failure: String::new(),
            next_refresh_seconds: None,
            expired: false,
            signing: None,
        }
    }
}

/// What a daemon reports of itself (`sextantctl status`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DaemonStatus {
    /// The daemon's name, `sextant-authority`.
    pub daemon: String,
    /// Its version.
    pub version: String,
    /// Seconds since it started.
    pub uptime_seconds: u64,
    /// The zones it serves or keeps.
    pub zones: Vec<ZoneStatus>,
    /// Daemons with a cache (the resolver).
    pub cache: Option<CacheStatus>,
    /// The listener: each backend it sends queries to.
    pub backends: Vec<BackendStatus>,
}

/// One backend of the listener, in its status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendStatus {
    /// `authority`, `resolver` or `transfer`.
    pub role: String,
    /// Its endpoint.
    pub endpoint: String,
    /// A query stream to it is up.
    pub connected: bool,
    /// Its health is SERVING.
    pub serving: bool,
}

/// The resolver's cache, in a status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStatus {
    /// RRsets and negative answers held.
    pub entries: u64,
    /// Bytes held, counted as the budget counts them.
    pub bytes: u64,
    /// The configured budget the bytes are held against.
    pub budget: u64,
    /// Client questions answered wholly from the cache.
    pub hits: u64,
    /// Client questions that needed an upstream.
    pub misses: u64,
}

/// One secondary's answer to a NOTIFY sent on the operator's request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotifyOutcome {
    /// The zone notified.
    pub zone: String,
    /// The serial announced.
    pub serial: u32,
    /// The secondary's address.
    pub target: String,
    /// "acknowledged", "refused (NOTAUTH)", "unanswered after 3 tries".
    pub result: String,
    /// Whether the secondary answered the NOTIFY with NOERROR.
    pub acknowledged: bool,
}

/// What to forget from a cache.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Flush {
    /// Everything.
    All,
    /// One name (in presentation form).
    Name(String),
    /// A name and every name below it.
    Subtree(String),
}

/// What to do with the negative trust anchors (RFC 7646) of a validating resolver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NtaAction {
    /// Show them.
    List,
    /// Stop validating below this name (presentation form).
    Add(String),
    /// Validate below this name again.
    Remove(String),
}

/// What a daemon implements to be controlled.
pub trait ControlHandler: Send + Sync + 'static {
    /// The daemon's status now.
    fn status(&self) -> DaemonStatus;
    /// Reloads `zone` (or every zone when `None`); the error is one sentence.
    fn reload(
        &self,
        zone: Option<String>,
    ) -> impl Future<Output = Result<Vec<ZoneStatus>, String>> + Send;
    /// Forgets cached data; returns how many entries went. Daemons without a cache
    /// keep this default.
    fn flush(&self, _what: Flush) -> Result<u64, String> {
        Err("this daemon has no cache to flush".into())
    }
    /// Lists, adds or removes a negative trust anchor; returns whether the set
    /// changed and the set after. Daemons that do not validate keep this default.
    fn negative_trust_anchors(&self, _action: NtaAction) -> Result<(bool, Vec<String>), String> {
        Err("this daemon does not validate DNSSEC".into())
    }
    /// Records that the parent of `zone` publishes the DS of its newest key-signing
    /// key (or of `tag`); returns that key's tag. Daemons that sign nothing keep
    /// this default.
    fn ksk_submitted(
        &self,
        _zone: String,
        _tag: Option<u16>,
    ) -> impl Future<Output = Result<u16, String>> + Send {
        std::future::ready(Err("this daemon signs no zone".into()))
    }
    /// NOTIFYs the secondaries of `zone` (or of every zone) now and reports each
    /// answer. Daemons that send no NOTIFY keep this default.
    fn notify(
        &self,
        _zone: Option<String>,
    ) -> impl Future<Output = Result<Vec<NotifyOutcome>, String>> + Send {
        std::future::ready(Err("this daemon sends no NOTIFY".into()))
    }
}

#[derive(Debug)]
pub(crate) struct ControlService<H> {
    handler: Arc<H>,
}

impl<H> ControlService<H> {
    pub(crate) fn new(handler: Arc<H>) -> Self {
        Self { handler }
    }
}

fn to_pb(zone: ZoneStatus) -> pb::ZoneStatus {
    pb::ZoneStatus {
        name: zone.name,
        serial: zone.serial,
        records: zone.records,
        source: zone.source,
        last_success_seconds_ago: zone.last_success_seconds_ago,
        last_failure: zone.last_failure,
        next_refresh_seconds: zone.next_refresh_seconds,
        expired: zone.expired,
        signing: zone.signing.map(|s| pb::ZoneSigning {
            policy: s.policy,
            keys: s
                .keys
                .into_iter()
                .map(|k| pb::SigningKey {
                    role: k.role,
                    algorithm: u32::from(k.algorithm),
                    tag: u32::from(k.tag),
                    created: k.created,
                    ds: k.ds,
                    state: k.state,
                })
                .collect(),
            next_signing_seconds: s.next_signing_seconds,
            waiting_for_ds: s.waiting_for_ds.map(u32::from),
        }),
    }
}

fn from_pb(zone: pb::ZoneStatus) -> ZoneStatus {
    ZoneStatus {
        name: zone.name,
        serial: zone.serial,
        records: zone.records,
        source: zone.source,
        last_success_seconds_ago: zone.last_success_seconds_ago,
        last_failure: zone.last_failure,
        next_refresh_seconds: zone.next_refresh_seconds,
        expired: zone.expired,
        signing: zone.signing.map(|s| ZoneSigning {
            policy: s.policy,
            keys: s
                .keys
                .into_iter()
                .map(|k| SigningKey {
                    role: k.role,
                    algorithm: u8::try_from(k.algorithm).unwrap_or(0),
                    tag: u16::try_from(k.tag).unwrap_or(0),
                    created: k.created,
                    ds: k.ds,
                    state: k.state,
                })
                .collect(),
            next_signing_seconds: s.next_signing_seconds,
            waiting_for_ds: s.waiting_for_ds.and_then(|t| u16::try_from(t).ok()),
        }),
    }
}

#[tonic::async_trait]
impl<H: ControlHandler> pb::control_server::Control for ControlService<H> {
    async fn status(
        &self,
        _request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusReply>, Status> {
        let status = self.handler.status();
        Ok(Response::new(pb::StatusReply {
            daemon: status.daemon,
            version: status.version,
            uptime_seconds: status.uptime_seconds,
            zones: status.zones.into_iter().map(to_pb).collect(),
            cache: status.cache.map(|c| pb::CacheStatus {
                entries: c.entries,
                bytes: c.bytes,
                budget: c.budget,
                hits: c.hits,
                misses: c.misses,
            }),
            backends: status
                .backends
                .into_iter()
                .map(|b| pb::BackendStatus {
                    role: b.role,
                    endpoint: b.endpoint,
                    connected: b.connected,
                    serving: b.serving,
                })
                .collect(),
        }))
    }

    async fn flush(
        &self,
        request: Request<pb::FlushRequest>,
    ) -> Result<Response<pb::FlushReply>, Status> {
        let request = request.into_inner();
        let what = match (request.name.is_empty(), request.subtree) {
            (true, _) => Flush::All,
            (false, false) => Flush::Name(request.name),
            (false, true) => Flush::Subtree(request.name),
        };
        match self.handler.flush(what) {
            Ok(removed) => Ok(Response::new(pb::FlushReply { removed })),
            Err(message) => Err(Status::failed_precondition(message)),
        }
    }

    async fn ksk_submitted(
        &self,
        request: Request<pb::KskSubmittedRequest>,
    ) -> Result<Response<pb::KskSubmittedReply>, Status> {
        let request = request.into_inner();
        let tag = match request.tag.map(u16::try_from) {
            None => None,
            Some(Ok(tag)) => Some(tag),
            Some(Err(_)) => return Err(Status::invalid_argument("a key tag is 0-65535")),
        };
        match self.handler.ksk_submitted(request.zone, tag).await {
            Ok(tag) => Ok(Response::new(pb::KskSubmittedReply {
                tag: u32::from(tag),
            })),
            Err(message) => Err(Status::failed_precondition(message)),
        }
    }

    async fn negative_trust_anchors(
        &self,
        request: Request<pb::NtaRequest>,
    ) -> Result<Response<pb::NtaReply>, Status> {
        let request = request.into_inner();
        let action = match pb::nta_request::Action::try_from(request.action) {
            Ok(pb::nta_request::Action::List) => NtaAction::List,
            Ok(pb::nta_request::Action::Add) => NtaAction::Add(request.name),
            Ok(pb::nta_request::Action::Remove) => NtaAction::Remove(request.name),
            Err(_) => return Err(Status::invalid_argument("unknown NTA action")),
        };
        match self.handler.negative_trust_anchors(action) {
            Ok((changed, names)) => Ok(Response::new(pb::NtaReply { changed, names })),
            Err(message) => Err(Status::failed_precondition(message)),
        }
    }

    async fn notify(
        &self,
        request: Request<pb::NotifyRequest>,
    ) -> Result<Response<pb::NotifyReply>, Status> {
        let zone = Some(request.into_inner().zone).filter(|z| !z.is_empty());
        match self.handler.notify(zone).await {
            Ok(outcomes) => Ok(Response::new(pb::NotifyReply {
                outcomes: outcomes
                    .into_iter()
                    .map(|o| pb::NotifyOutcome {
                        zone: o.zone,
                        serial: o.serial,
                        target: o.target,
                        result: o.result,
                        acknowledged: o.acknowledged,
                    })
                    .collect(),
            })),
            Err(message) => Err(Status::failed_precondition(message)),
        }
    }

    async fn spans(
        &self,
        request: Request<pb::SpansRequest>,
    ) -> Result<Response<pb::SpansReply>, Status> {
        let trace_id = <[u8; 16]>::try_from(request.into_inner().trace_id.as_ref())
            .map_err(|_| Status::invalid_argument("a trace id is 16 bytes"))?;
        let nanos = |time: SystemTime| {
            time.duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        };
        let spans = sextant_trace::spans_of(trace_id)
            .into_iter()
            .map(|span| pb::Span {
                span_id: bytes::Bytes::copy_from_slice(&span.span_id),
                parent_span_id: bytes::Bytes::copy_from_slice(&span.parent_span_id),
                name: span.name,
                service: span.service,
                start_unix_nanos: nanos(span.start),
                end_unix_nanos: nanos(span.end),
                attributes: span
                    .attributes
                    .into_iter()
                    .map(|(key, value)| pb::SpanAttribute { key, value })
                    .collect(),
            })
            .collect();
        Ok(Response::new(pb::SpansReply { spans }))
    }

    async fn reload(
        &self,
        request: Request<pb::ReloadRequest>,
    ) -> Result<Response<pb::ReloadReply>, Status> {
        let zone = Some(request.into_inner().zone).filter(|z| !z.is_empty());
        match self.handler.reload(zone).await {
            Ok(zones) => Ok(Response::new(pb::ReloadReply {
                zones: zones.into_iter().map(to_pb).collect(),
            })),
            Err(message) => Err(Status::failed_precondition(message)),
        }
    }
}

/// The control tool's client side.
#[derive(Debug)]
pub struct ControlClient {
    endpoint: Endpoint,
    client: pb::control_client::ControlClient<tonic::transport::Channel>,
}

impl ControlClient {
    /// Connects to the control service at `endpoint`.
    pub async fn connect(endpoint: &Endpoint) -> Result<Self, RpcError> {
        let channel = endpoint.connect().await?;
        Ok(Self {
            endpoint: endpoint.clone(),
            client: pb::control_client::ControlClient::new(channel),
        })
    }

    fn call_error(&self, status: Status) -> RpcError {
        RpcError::Call {
            endpoint: self.endpoint.clone(),
            status: Box::new(status),
        }
    }

    /// The daemon's status.
    pub async fn status(&mut self) -> Result<DaemonStatus, RpcError> {
        let reply = self
            .client
            .status(pb::StatusRequest {})
            .await
            .map_err(|s| self.call_error(s))?
            .into_inner();
        Ok(DaemonStatus {
            daemon: reply.daemon,
            version: reply.version,
            uptime_seconds: reply.uptime_seconds,
            zones: reply.zones.into_iter().map(from_pb).collect(),
            cache: reply.cache.map(|c| CacheStatus {
                entries: c.entries,
                bytes: c.bytes,
                budget: c.budget,
                hits: c.hits,
                misses: c.misses,
            }),
            backends: reply
                .backends
                .into_iter()
                .map(|b| BackendStatus {
                    role: b.role,
                    endpoint: b.endpoint,
                    connected: b.connected,
                    serving: b.serving,
                })
                .collect(),
        })
    }

    /// Flushes a cache; a refusal (no cache, bad name) is the daemon's own sentence.
    pub async fn flush(&mut self, what: &Flush) -> Result<Result<u64, String>, RpcError> {
        let request = match what {
            Flush::All => pb::FlushRequest::default(),
            Flush::Name(name) => pb::FlushRequest {
                name: name.clone(),
                subtree: false,
            },
            Flush::Subtree(name) => pb::FlushRequest {
                name: name.clone(),
                subtree: true,
            },
        };
        match self.client.flush(request).await {
            Ok(reply) => Ok(Ok(reply.into_inner().removed)),
            Err(status) if status.code() == tonic::Code::FailedPrecondition => {
                Ok(Err(status.message().to_string()))
            }
            Err(status) => Err(self.call_error(status)),
        }
    }

    /// Lists, adds or removes a negative trust anchor; a refusal (no validation, a
    /// bad name) is the daemon's sentence.
    pub async fn negative_trust_anchors(
        &mut self,
        action: &NtaAction,
    ) -> Result<Result<(bool, Vec<String>), String>, RpcError> {
        use pb::nta_request::Action;
        let (action, name) = match action {
            NtaAction::List => (Action::List, String::new()),
            NtaAction::Add(name) => (Action::Add, name.clone()),
            NtaAction::Remove(name) => (Action::Remove, name.clone()),
        };
        let request = pb::NtaRequest {
            action: action.into(),
            name,
        };
        match self.client.negative_trust_anchors(request).await {
            Ok(reply) => {
                let reply = reply.into_inner();
                Ok(Ok((reply.changed, reply.names)))
            }
            Err(status) if status.code() == tonic::Code::FailedPrecondition => {
                Ok(Err(status.message().to_string()))
            }
            Err(status) => Err(self.call_error(status)),
        }
    }

    /// Records a zone's new DS as at the parent; a refusal is the daemon's sentence.
    pub async fn ksk_submitted(
        &mut self,
        zone: &str,
        tag: Option<u16>,
    ) -> Result<Result<u16, String>, RpcError> {
        let request = pb::KskSubmittedRequest {
            zone: zone.to_string(),
            tag: tag.map(u32::from),
        };
        match self.client.ksk_submitted(request).await {
            Ok(reply) => Ok(Ok(u16::try_from(reply.into_inner().tag).unwrap_or(0))),
            Err(status) if status.code() == tonic::Code::FailedPrecondition => {
                Ok(Err(status.message().to_string()))
            }
            Err(status) => Err(self.call_error(status)),
        }
    }

    /// NOTIFYs the secondaries of one zone or all; a refusal is the daemon's sentence.
    pub async fn notify(
        &mut self,
        zone: Option<&str>,
    ) -> Result<Result<Vec<NotifyOutcome>, String>, RpcError> {
        let request = pb::NotifyRequest {
            zone: zone.unwrap_or_default().to_string(),
        };
        match self.client.notify(request).await {
            Ok(reply) => Ok(Ok(reply
                .into_inner()
                .outcomes
                .into_iter()
                .map(|o| NotifyOutcome {
                    zone: o.zone,
                    serial: o.serial,
                    target: o.target,
                    result: o.result,
                    acknowledged: o.acknowledged,
                })
                .collect())),
            Err(status) if status.code() == tonic::Code::FailedPrecondition => {
                Ok(Err(status.message().to_string()))
            }
            Err(status) => Err(self.call_error(status)),
        }
    }

    /// The spans of `trace_id` the daemon keeps; malformed ones are left out.
    pub async fn spans(&mut self, trace_id: [u8; 16]) -> Result<Vec<SpanRecord>, RpcError> {
        let request = pb::SpansRequest {
            trace_id: bytes::Bytes::copy_from_slice(&trace_id),
        };
        let reply = self
            .client
            .spans(request)
            .await
            .map_err(|s| self.call_error(s))?
            .into_inner();
        let time = |nanos: u64| UNIX_EPOCH + Duration::from_nanos(nanos);
        Ok(reply
            .spans
            .into_iter()
            .filter_map(|span| {
                Some(SpanRecord {
                    trace_id,
                    span_id: span.span_id.as_ref().try_into().ok()?,
                    parent_span_id: span.parent_span_id.as_ref().try_into().ok()?,
                    name: span.name,
                    service: span.service,
                    start: time(span.start_unix_nanos),
                    end: time(span.end_unix_nanos),
                    attributes: span
                        .attributes
                        .into_iter()
                        .map(|a| (a.key, a.value))
                        .collect(),
                })
            })
            .collect())
    }

    /// Reloads one zone or all; a failed reload's error message is the daemon's own.
    pub async fn reload(
        &mut self,
        zone: Option<&str>,
    ) -> Result<Result<Vec<ZoneStatus>, String>, RpcError> {
        let request = pb::ReloadRequest {
            zone: zone.unwrap_or_default().to_string(),
        };
        match self.client.reload(request).await {
            Ok(reply) => Ok(Ok(reply
                .into_inner()
                .zones
                .into_iter()
                .map(from_pb)
                .collect())),
            Err(status) if status.code() == tonic::Code::FailedPrecondition => {
                Ok(Err(status.message().to_string()))
            }
            Err(status) => Err(self.call_error(status)),
        }
    }
}
