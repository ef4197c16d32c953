//! The authority's query handler: the current catalog behind an atomic pointer, so a
//! reload swaps every zone at once and a query sees either all old or all new data.

use std::sync::Arc;

use arc_swap::ArcSwap;
use sextant_rpc::{Answer, Query, QueryHandler};
use sextant_zone::Catalog;

use crate::outgoing::TransferPolicy;
use crate::respond;

#[derive(Debug)]
pub(crate) struct Authority {
    catalog: ArcSwap<Catalog>,
    /// EDNS payload size advertised in our answers, bytes.
    edns_payload_size: u16,
    /// Who may transfer zones out.
    transfers: TransferPolicy,
    /// Secondaries told of every new serial.
    notify: Vec<std::net::SocketAddr>,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Stats {
    pub zones: usize,
    pub records: usize,
}

impl Authority {
    pub(crate) fn new(
        catalog: Catalog,
        edns_payload_size: u16,
        transfers: TransferPolicy,
        notify: Vec<std::net::SocketAddr>,
    ) -> Self {
        record_gauges(&catalog);
        Self {
            catalog: ArcSwap::from_pointee(catalog),
            edns_payload_size,
            transfers,
            notify,
        }
    }

    /// NOTIFYs the secondaries of every zone served (at start).
    pub(crate) fn notify_all(&self) {
        for zone in self.catalog.load().zones() {
            crate::notify_out::notify(zone.origin(), zone.soa(), &self.notify);
        }
    }

    /// The secondaries NOTIFYed of every new serial (`authority.notify`).
    pub(crate) fn notify_targets(&self) -> &[std::net::SocketAddr] {
        &self.notify
    }

    /// The catalog served now.
    pub(crate) fn catalog(&self) -> Arc<Catalog> {
        self.catalog.load_full()
    }

    /// Swaps in `catalog` and NOTIFYs the secondaries of every zone whose serial
    /// changed.
    pub(crate) fn replace(&self, catalog: Catalog) {
        record_gauges(&catalog);
        let old = self.catalog.swap(Arc::new(catalog));
        if let Some(journal) = &self.transfers.journal {
            crate::journal::record(journal, &old, &self.catalog.load());
        }
        if self.notify.is_empty() {
            return;
        }
        for zone in self.catalog.load().zones() {
            let before = old
                .zones()
                .find(|z| z.origin() == zone.origin())
                .map(|z| z.serial());
            if before != Some(zone.serial()) {
                crate::notify_out::notify(zone.origin(), zone.soa(), &self.notify);
            }
        }
    }

    pub(crate) fn zone_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .catalog
            .load()
            .zones()
            .map(|zone| zone.origin().to_string())
            .collect();
        names.sort();
        names
    }

    pub(crate) fn stats(&self) -> Stats {
        let catalog = self.catalog.load();
        Stats {
            zones: catalog.zones().count(),
            records: catalog.zones().map(|z| z.record_count()).sum(),
        }
    }
}

/// Zones and records served, for the metrics endpoint.
fn record_gauges(catalog: &Catalog) {
    metrics::gauge!("sextant_authority_zones").set(catalog.zones().count() as f64);
    let records: usize = catalog.zones().map(|z| z.record_count()).sum();
    metrics::gauge!("sextant_authority_records").set(records as f64);
    for zone in catalog.zones() {
        metrics::gauge!("sextant_authority_zone_serial", "zone" => zone.origin().to_string())
            .set(f64::from(zone.serial()));
    }
}

impl QueryHandler for Authority {
    fn handle(&self, query: Query) -> impl Future<Output = Answer> + Send {
        // The lookup is in memory and short: answer before the future is polled,
        // without holding the catalog across an await.
        let traced = query
            .traceparent
            .as_deref()
            .and_then(sextant_trace::remote_parent)
            .map(|parent| {
                sextant_trace::span(
                    "authority.answer",
                    opentelemetry::trace::SpanKind::Server,
                    &parent,
                    Vec::new(),
                )
            });
        let answer = respond(
            &self.catalog.load(),
            &query,
            self.edns_payload_size,
            self.transfers.key.as_ref(),
        );
        let rcode = answer
            .wire()
            .and_then(|wire| sextant_wire::Rcode::of_message(wire))
            .map_or("NONE", sextant_wire::Rcode::name);
        metrics::counter!("sextant_authority_answers_total", "rcode" => rcode).increment(1);
        if let Some(cx) = traced {
            use opentelemetry::trace::TraceContextExt;
            cx.span()
                .set_attribute(opentelemetry::KeyValue::new("dns.rcode", rcode));
        }
        std::future::ready(answer)
    }

    fn transfer(&self, query: Query) -> tokio::sync::mpsc::Receiver<bytes::Bytes> {
        crate::outgoing::transfer(self.catalog.load_full(), &self.transfers, query)
    }
}
