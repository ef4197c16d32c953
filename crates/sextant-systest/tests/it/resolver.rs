//! The resolver against a DNS hierarchy built on loopback: a root, a `test.` TLD and
//! leaf zones, each on port 53 of its own 127.x.y.z address (see `DnsLab`). Every
//! scenario of bogus glue, corrupted hints and hostile upstreams has its own test.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use sextant_systest::{Behaviour, DnsLab, Lab, LabServer, Suite, dig, exchange};

/// A recursive query (RD=1) through the listener.
fn ask(suite: &Suite, name: &str, rtype: RecordType) -> Message {
    let mut message = Message::query();
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    exchange(suite.dns, &message, false).unwrap()
}

fn addresses(response: &Message) -> Vec<String> {
    response
        .answers
        .iter()
        .filter(|r| matches!(r.record_type(), RecordType::A | RecordType::AAAA))
        .map(|r| r.data.to_string())
        .collect()
}

/// The standard hierarchy: root on .1, `test.` on .2, `example.test.` on .3,
/// `other.test.` on .4. `tld_extra` adds delegation lines to `test.`.
struct Hierarchy {
    dns: DnsLab,
    servers: Vec<LabServer>,
}

impl Hierarchy {
    /// `{ipN}` in the extra lines stands for host N of the lab.
    fn start(tld_extra: &str, example_ns_extra: &str) -> Self {
        let dns = DnsLab::new();
        let ip = |n: u8| dns.ip(n).to_string();
        let place = |text: &str| {
            (1..=9).fold(text.to_string(), |text, n| {
                text.replace(&format!("{{ip{n}}}"), &ip(n))
            })
        };
        let (tld_extra, example_ns_extra) = (place(tld_extra), place(example_ns_extra));
        let root = format!(
            "$TTL 86400\n\
             @ SOA a.root-servers.lab. nstld.lab. 1 1800 900 604800 86400\n\
             @ NS a.root-servers.lab.\n\
             a.root-servers.lab. A {}\n\
             test. NS ns.test.\n\
             ns.test. A {}\n",
            ip(1),
            ip(2)
        );
        let tld = format!(
            "$TTL 86400\n\
             @ SOA ns h 1 1800 900 604800 300\n\
             @ NS ns\n\
             ns A {}\n\
             example NS ns1.example\n\
             ns1.example A {}\n\
             other NS ns1.other\n\
             ns1.other A {}\n\
             {tld_extra}",
            ip(2),
            ip(3),
            ip(4)
        );
        let example = format!(
            "$TTL 300\n\
             @ SOA ns1 h 1 1800 900 604800 60\n\
             @ NS ns1\n\
             {example_ns_extra}\
             ns1 A {}\n\
             www A 192.0.2.80\n\
             www AAAA 2001:db8::80\n\
             alias CNAME www.other.test.\n\
             deep.er.sub A 192.0.2.81\n",
            ip(3)
        );
        let other = format!(
            "$TTL 300\n\
             @ SOA ns1 h 1 1800 900 604800 60\n\
             @ NS ns1\n\
             ns1 A {}\n\
             www A 192.0.2.44\n",
            ip(4)
        );
        let servers = vec![
            dns.serve(1, &[(".", &root)]).unwrap(),
            dns.serve(2, &[("test.", &tld)]).unwrap(),
            dns.serve(3, &[("example.test.", &example)]).unwrap(),
            dns.serve(4, &[("other.test.", &other)]).unwrap(),
        ];
        Self { dns, servers }
    }

    fn hints(&self) -> String {
        self.dns.hints(&[("a.root-servers.lab.", 1)])
    }

    fn server(&self, n: usize) -> &LabServer {
        &self.servers[n - 1]
    }
}

fn suite(lab: &Lab, hierarchy: &Hierarchy, extra: &str) -> Suite {
    let config = lab.resolver_config(&hierarchy.hints(), extra).unwrap();
    lab.start_resolver_suite(&config).unwrap()
}

#[test]
fn resolves_a_and_aaaa_iteratively_then_from_the_cache() {
    let hierarchy = Hierarchy::start("", "");
    let lab = Lab::new().unwrap();
    let suite = suite(&lab, &hierarchy, "");

    let a = ask(&suite, "www.example.test.", RecordType::A);
    assert_eq!(a.metadata.response_code, ResponseCode::NoError);
    assert!(a.metadata.recursion_available);
    assert!(!a.metadata.authoritative);
    assert_eq!(addresses(&a), vec!["192.0.2.80"]);
    let aaaa = ask(&suite, "www.example.test.", RecordType::AAAA);
    assert_eq!(addresses(&aaaa), vec!["2001:db8::80"]);
    // QNAME minimisation walks down through the empty non-terminals.
    let deep = ask(&suite, "deep.er.sub.example.test.", RecordType::A);
    assert_eq!(addresses(&deep), vec!["192.0.2.81"]);

    let leaf_queries = hierarchy.server(3).queries();
    for _ in 0..5 {
        let again = ask(&suite, "www.example.test.", RecordType::A);
        assert_eq!(addresses(&again), vec!["192.0.2.80"]);
        assert!(again.answers[0].ttl <= 300);
    }
    assert_eq!(
        hierarchy.server(3).queries(),
        leaf_queries,
        "cache hits ask nobody"
    );

    let output = dig(suite.dns, &["www.example.test.", "A"]).unwrap();
    assert!(output.contains("192.0.2.80"), "{output}");
    assert!(output.contains(" ra"), "dig sees RA: {output}");
}

#[test]
fn follows_a_cname_into_another_zone() {
    let hierarchy = Hierarchy::start("", "");
    let lab = Lab::new().unwrap();
    let suite = suite(&lab, &hierarchy, "");
    let response = ask(&suite, "alias.example.test.", RecordType::A);
    assert_eq!(response.metadata.response_code, ResponseCode::NoError);
    assert_eq!(response.answers[0].record_type(), RecordType::CNAME);
    assert_eq!(addresses(&response), vec!["192.0.2.44"]);
}

#[test]
fn nxdomain_and_nodata_carry_the_soa_and_are_cached() {
    let hierarchy = Hierarchy::start("", "");
    let lab = Lab::new().unwrap();
    let suite = suite(&lab, &hierarchy, "");

    let nx = ask(&suite, "nope.example.test.", RecordType::A);
    assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(nx.authorities[0].record_type(), RecordType::SOA);
    assert!(
        nx.authorities[0].ttl <= 60,
        "negative TTL from the SOA minimum"
    );

    let nodata = ask(&suite, "www.example.test.", RecordType::MX);
    assert_eq!(nodata.metadata.response_code, ResponseCode::NoError);
    assert!(nodata.answers.is_empty());
    assert_eq!(nodata.authorities[0].record_type(), RecordType::SOA);

    let leaf_queries = hierarchy.server(3).queries();
    let nx_again = ask(&suite, "nope.example.test.", RecordType::A);
    assert_eq!(nx_again.metadata.response_code, ResponseCode::NXDomain);
    // RFC 8020: nothing exists below a name that does not exist.
    let below = ask(&suite, "x.nope.example.test.", RecordType::A);
    assert_eq!(below.metadata.response_code, ResponseCode::NXDomain);
    let nodata_again = ask(&suite, "www.example.test.", RecordType::MX);
    assert!(nodata_again.answers.is_empty());
    assert_eq!(
        hierarchy.server(3).queries(),
        leaf_queries,
        "negative answers are cached"
    );
}

#[test]
fn zero_glue_beside_a_good_server_costs_no_retry_storm_and_one_log_line() {
    // example.test has two servers; the TLD gives 0.0.0.0 as the first one's glue.
    let hierarchy = Hierarchy::start(
        "example NS ns0.example\nns0.example A 0.0.0.0\n",
        "@ NS ns0\nns0 A 0.0.0.0\n",
    );
    let lab = Lab::new().unwrap();
    let suite = suite(&lab, &hierarchy, "");
    for i in 0..20 {
        let response = ask(&suite, &format!("host{i}.example.test."), RecordType::A);
        assert_eq!(
            response.metadata.response_code,
            ResponseCode::NXDomain,
            "query {i}"
        );
    }
    let www = ask(&suite, "www.example.test.", RecordType::A);
    assert_eq!(addresses(&www), vec!["192.0.2.80"]);
    // One upstream query per client query at most (plus minimisation steps).
    let leaf = hierarchy.server(3).queries();
    assert!(
        leaf <= 2 * 21,
        "{leaf} queries to the good server: a retry storm"
    );
    let log = suite.resolver.as_ref().unwrap().log_text();
    let warnings = log.matches("cannot be servers").count();
    assert_eq!(warnings, 1, "logged once per server name:\n{log}");
}

#[test]
fn every_glue_unusable_but_the_server_name_resolvable_elsewhere() {
    // example.test's only server is ns.hosting.test; the TLD's glue for it is 0.0.0.0,
    // but hosting.test itself (on .5) gives the real address.
    let dns = DnsLab::new();
    let ip = |n: u8| dns.ip(n).to_string();
    let root = format!(
        "$TTL 86400\n@ SOA a.root-servers.lab. n.lab. 1 1800 900 604800 86400\n@ NS a.root-servers.lab.\na.root-servers.lab. A {}\ntest. NS ns.test.\nns.test. A {}\n",
        ip(1),
        ip(2)
    );
    let tld = format!(
        "$TTL 86400\n@ SOA ns h 1 1800 900 604800 300\n@ NS ns\nns A {}\nexample NS ns.hosting\nhosting NS ns1.hosting\nns1.hosting A {}\nns.hosting A 0.0.0.0\n",
        ip(2),
        ip(5)
    );
    let hosting = format!(
        "$TTL 300\n@ SOA ns1 h 1 1800 900 604800 60\n@ NS ns1\nns1 A {}\nns A {}\n",
        ip(5),
        ip(3)
    );
    let example = "$TTL 300\n@ SOA ns.hosting.test. h 1 1800 900 604800 60\n@ NS ns.hosting.test.\nwww A 192.0.2.80\n";
    let _servers = [
        dns.serve(1, &[(".", &root)]).unwrap(),
        dns.serve(2, &[("test.", &tld)]).unwrap(),
        dns.serve(3, &[("example.test.", example)]).unwrap(),
        dns.serve(5, &[("hosting.test.", &hosting)]).unwrap(),
    ];
    let lab = Lab::new().unwrap();
    let config = lab
        .resolver_config(&dns.hints(&[("a.root-servers.lab.", 1)]), "")
        .unwrap();
    let suite = lab.start_resolver_suite(&config).unwrap();
    let response = ask(&suite, "www.example.test.", RecordType::A);
    assert_eq!(response.metadata.response_code, ResponseCode::NoError);
    assert_eq!(addresses(&response), vec!["192.0.2.80"]);
}

#[test]
fn a_lame_server_is_passed_over() {
    let hierarchy = Hierarchy::start("example NS ns2.example\nns2.example A {ip5}\n", "");
    let lame = hierarchy.dns.serve(5, &[]).unwrap();
    lame.set_behaviour(Behaviour {
        refuse: true,
        ..Behaviour::default()
    });
    let lab = Lab::new().unwrap();
    let suite = suite(&lab, &hierarchy, "");
    for i in 0..5 {
        let response = ask(&suite, &format!("www{i}.example.test."), RecordType::A);
        assert_eq!(response.metadata.response_code, ResponseCode::NXDomain);
    }
    let www = ask(&suite, "www.example.test.", RecordType::A);
    assert_eq!(addresses(&www), vec!["192.0.2.80"]);
}

#[test]
fn a_server_that_never_answers_is_passed_over_and_a_dead_zone_fails_in_bounded_time() {
    let hierarchy = Hierarchy::start(
        "example NS ns2.example\nns2.example A {ip6}\ndead NS ns.dead\nns.dead A {ip6}\n",
        "",
    );
    let silent = hierarchy.dns.serve(6, &[]).unwrap();
    silent.set_behaviour(Behaviour {
        silent: true,
        ..Behaviour::default()
    });
    let lab = Lab::new().unwrap();
    let suite = suite(&lab, &hierarchy, "");
    let started = Instant::now();
    for i in 0..5 {
        let response = ask(&suite, &format!("www{i}.example.test."), RecordType::A);
        assert_eq!(response.metadata.response_code, ResponseCode::NXDomain);
    }
    assert!(started.elapsed() < Duration::from_secs(10));

    let started = Instant::now();
    let dead = ask(&suite, "www.dead.test.", RecordType::A);
    assert_eq!(dead.metadata.response_code, ResponseCode::ServFail);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

/// The same recursive query with EDNS, so that the answer can carry an EDE.
fn ask_edns(suite: &Suite, name: &str) -> Message {
    let mut message = sextant_systest::question_with(name, RecordType::A, Some(1232)).unwrap();
    message.metadata.recursion_desired = true;
    exchange(suite.dns, &message, false).unwrap()
}

#[test]
fn a_failed_question_is_held_briefly_and_answered_as_a_cached_error() {
    let hierarchy = Hierarchy::start("dead NS ns.dead\nns.dead A {ip6}\n", "");
    let silent = hierarchy.dns.serve(6, &[]).unwrap();
    silent.set_behaviour(Behaviour {
        silent: true,
        ..Behaviour::default()
    });
    let lab = Lab::new().unwrap();
    let suite = suite(&lab, &hierarchy, "failure_ttl = \"30s\"\n");
    let first = ask_edns(&suite, "www.dead.test.");
    assert_eq!(first.metadata.response_code, ResponseCode::ServFail);
    assert_eq!(
        sextant_systest::extended_error(&first).map(|e| e.0),
        Some(22),
        "No Reachable Authority"
    );
    let tried = silent.queries();
    assert!(tried > 0);
    // Asked again at once: the failure is remembered, the dead server left alone.
    for _ in 0..5 {
        let again = ask_edns(&suite, "www.dead.test.");
        assert_eq!(again.metadata.response_code, ResponseCode::ServFail);
        assert_eq!(
            sextant_systest::extended_error(&again).map(|e| e.0),
            Some(13),
            "Cached Error"
        );
    }
    assert_eq!(silent.queries(), tried, "retries reached the dead server");
    // Other questions are not held.
    let other = ask_edns(&suite, "www.example.test.");
    assert_eq!(other.metadata.response_code, ResponseCode::NoError);
}

#[test]
fn truncated_answers_are_asked_again_over_tcp() {
    let hierarchy = Hierarchy::start("", "");
    hierarchy.server(3).set_behaviour(Behaviour {
        truncate_udp: true,
        ..Behaviour::default()
    });
    let lab = Lab::new().unwrap();
    let suite = suite(&lab, &hierarchy, "");
    let response = ask(&suite, "www.example.test.", RecordType::A);
    assert_eq!(addresses(&response), vec!["192.0.2.80"]);
    assert!(hierarchy.server(3).tcp_queries() >= 1);
}

#[test]
fn servers_that_reject_edns_are_asked_without_it() {
    let hierarchy = Hierarchy::start("", "");
    hierarchy.server(3).set_behaviour(Behaviour {
        formerr_on_edns: true,
        ..Behaviour::default()
    });
    let lab = Lab::new().unwrap();
    let suite = suite(&lab, &hierarchy, "");
    let response = ask(&suite, "www.example.test.", RecordType::A);
    assert_eq!(addresses(&response), vec!["192.0.2.80"]);
}

fn poison(name: &str) -> Record {
    Record::from_rdata(
        Name::from_ascii(name).unwrap(),
        86400,
        RData::A(hickory_proto::rr::rdata::A([6, 6, 6, 6].into())),
    )
}

#[test]
fn out_of_bailiwick_additional_records_are_neither_cached_nor_used() {
    let hierarchy = Hierarchy::start("", "");
    hierarchy.server(3).set_behaviour(Behaviour {
        inject_additional: vec![poison("www.other.test."), poison("ns1.other.test.")],
        ..Behaviour::default()
    });
    let lab = Lab::new().unwrap();
    let suite = suite(&lab, &hierarchy, "");
    let www = ask(&suite, "www.example.test.", RecordType::A);
    assert_eq!(addresses(&www), vec!["192.0.2.80"]);
    let other = ask(&suite, "www.other.test.", RecordType::A);
    assert_eq!(addresses(&other), vec!["192.0.2.44"]);
    assert!(
        hierarchy.server(4).queries() >= 1,
        "other.test's own server was asked"
    );
}

#[test]
fn answers_with_the_wrong_id_or_question_are_ignored() {
    let hierarchy = Hierarchy::start("", "");
    hierarchy.server(3).set_behaviour(Behaviour {
        spoof_first: Some(poison("www.example.test.")),
        ..Behaviour::default()
    });
    let lab = Lab::new().unwrap();
    let suite = suite(&lab, &hierarchy, "");
    for _ in 0..3 {
        let response = ask(&suite, "www.example.test.", RecordType::A);
        assert_eq!(addresses(&response), vec!["192.0.2.80"]);
    }
}

#[test]
fn damaged_hints_fall_back_to_the_built_in_ones_with_a_message() {
    let hierarchy = Hierarchy::start("", "");
    let good = hierarchy.hints();
    let cases = [
        ("corrupted", good.replace(" A ", " A 999.")),
        ("empty", String::new()),
        ("truncated", good[..good.len() / 2].to_string()),
    ];
    for (what, text) in cases {
        let lab = Lab::new().unwrap();
        let config = lab.resolver_config(&text, "").unwrap();
        let resolver = lab.start_resolver(&config).unwrap();
        let log = resolver.log_text();
        assert!(
            log.contains("root.hints"),
            "{what}: the file is named:\n{log}"
        );
        assert!(log.contains("using the built-in hints"), "{what}:\n{log}");
        assert_eq!(
            resolver.ready()["root_hints"],
            "built-in IANA hints",
            "{what}"
        );
    }

    let lab = Lab::new().unwrap();
    let config = lab
        .resolver_config("", "root_hints_fallback = false")
        .unwrap();
    let error = lab.start_resolver(&config).unwrap_err().to_string();
    assert!(error.contains("no NS records for the root zone"), "{error}");
    assert!(error.contains("does not start"), "{error}");
}

#[test]
fn a_fixed_query_source_that_clashes_is_one_sentence_at_start() {
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let lab = Lab::new().unwrap();
    let config = lab
        .resolver_config("", &format!("query_source = \"127.0.0.1:{port}\""))
        .unwrap();
    let error = lab.start_resolver(&config).unwrap_err().to_string();
    assert!(error.contains("resolver.query_source"), "{error}");
    assert!(error.contains("already in use"), "{error}");

    // The same port as the listener's own address is refused by the config check.
    let lab = Lab::new().unwrap();
    let config = lab
        .resolver_config("", "query_source = \"127.0.0.1:53\"")
        .unwrap();
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("127.0.0.1:0\"]", "127.0.0.1:53\"]");
    std::fs::write(&config, text).unwrap();
    let error = lab.start_resolver(&config).unwrap_err().to_string();
    assert!(
        error.contains("clashes with the listener address"),
        "{error}"
    );
}

#[test]
fn recursion_is_refused_to_clients_outside_allow_recursion() {
    let hierarchy = Hierarchy::start("", "");
    let lab = Lab::new().unwrap();
    let config = lab.resolver_config(&hierarchy.hints(), "").unwrap();
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "[listener]\n",
        "[listener]\nallow_recursion = [\"192.0.2.0/24\"]\n",
    );
    std::fs::write(&config, text).unwrap();
    let suite = lab.start_resolver_suite(&config).unwrap();
    let upstream_before = hierarchy.server(1).queries() + hierarchy.server(3).queries();
    let response = ask(&suite, "www.example.test.", RecordType::A);
    assert_eq!(response.metadata.response_code, ResponseCode::Refused);
    let upstream_after = hierarchy.server(1).queries() + hierarchy.server(3).queries();
    assert_eq!(
        upstream_before, upstream_after,
        "the resolver was never asked"
    );
}

#[test]
fn cache_flush_and_stats_over_the_control_tool() {
    let hierarchy = Hierarchy::start("", "");
    let lab = Lab::new().unwrap();
    let config = lab.resolver_config(&hierarchy.hints(), "").unwrap();
    // The listener's packet cache is read from its metrics endpoint.
    let metrics_port = sextant_systest::free_port().unwrap();
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "[listener]\n",
        &format!("[listener]\nmetrics = \"127.0.0.1:{metrics_port}\"\n"),
    );
    std::fs::write(&config, text).unwrap();
    let suite = lab.start_resolver_suite(&config).unwrap();
    ask(&suite, "www.example.test.", RecordType::A);
    let before = hierarchy.server(3).queries();
    ask(&suite, "www.example.test.", RecordType::A);
    assert_eq!(hierarchy.server(3).queries(), before);

    // Bytes against the default budgets: 16 MiB resolver cache, 8 MiB packet cache.
    // The listener samples its cache every 5 s; wait for a sample with the answer.
    let deadline = Instant::now() + Duration::from_secs(15);
    let json = loop {
        let stats = sextant_systest::sextantctl(&config, &["cache", "stats", "--json"]).unwrap();
        assert!(stats.status.success(), "{stats:?}");
        let json: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();
        let sampled = json["listener_packet_cache"]["entries"]
            .as_u64()
            .unwrap_or(0)
            > 0;
        if sampled || Instant::now() > deadline {
            break json;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    assert!(json["entries"].as_u64().unwrap() > 0, "{json}");
    let bytes = json["bytes"].as_u64().unwrap();
    assert_eq!(json["budget"].as_u64(), Some(16 << 20), "{json}");
    assert!(bytes > 0 && bytes < 16 << 20, "{json}");
    let packets = &json["listener_packet_cache"];
    assert!(packets["entries"].as_u64().unwrap() > 0, "{json}");
    assert_eq!(packets["budget"].as_u64(), Some(8 << 20), "{json}");
    let packet_bytes = packets["bytes"].as_u64().unwrap();
    assert!(packet_bytes > 0 && packet_bytes < 8 << 20, "{json}");
    let table = sextant_systest::sextantctl(&config, &["cache", "stats"]).unwrap();
    let table = String::from_utf8_lossy(&table.stdout).into_owned();
    assert!(table.contains(&format!("of {} (", 16 << 20)), "{table}");
    assert!(table.contains(&format!("of {} (", 8 << 20)), "{table}");

    let flush =
        sextant_systest::sextantctl(&config, &["cache", "flush", "www.example.test."]).unwrap();
    assert!(flush.status.success(), "{flush:?}");
    // The listener's packet cache follows the resolver's flush.
    sextant_systest::eventually(
        Duration::from_secs(5),
        "the flush reaches the upstream",
        || {
            ask(&suite, "www.example.test.", RecordType::A);
            hierarchy.server(3).queries() > before
        },
    )
    .unwrap();
    let all = sextant_systest::sextantctl(&config, &["cache", "flush", "--all"]).unwrap();
    assert!(all.status.success(), "{all:?}");
}

#[test]
fn forward_zones_only_and_first() {
    let hierarchy = Hierarchy::start("", "");
    // A forwarder for a zone the public tree does not know, and a dead forwarder
    // for one it does.
    let forwarder = hierarchy
        .dns
        .serve(
            7,
            &[(
                "corp.lab.",
                "$TTL 300\n@ SOA ns h 1 2 3 4 60\n@ NS ns\nns A 192.0.2.1\nwww A 10.1.2.3\n",
            )],
        )
        .unwrap();
    let dead = hierarchy.dns.serve(8, &[]).unwrap();
    dead.set_behaviour(Behaviour {
        silent: true,
        ..Behaviour::default()
    });
    let extra = format!(
        "\n[[resolver.forward]]\nname = \"corp.lab\"\nservers = [\"{}\"]\nmode = \"only\"\n\n[[resolver.forward]]\nname = \"example.test\"\nservers = [\"{}\"]\nmode = \"first\"\n",
        forwarder.addr, dead.addr
    );
    let lab = Lab::new().unwrap();
    let suite = suite(&lab, &hierarchy, &extra);
    let corp = ask(&suite, "www.corp.lab.", RecordType::A);
    assert_eq!(addresses(&corp), vec!["10.1.2.3"]);
    assert!(forwarder.queries() >= 1);
    let fallen_back = ask(&suite, "www.example.test.", RecordType::A);
    assert_eq!(addresses(&fallen_back), vec!["192.0.2.80"]);
    assert!(dead.queries() >= 1, "the forwarder was tried first");
}

#[test]
fn expired_data_is_served_stale_when_the_upstreams_die() {
    let hierarchy = Hierarchy::start("", "short 1 A 192.0.2.99\n");
    let lab = Lab::new().unwrap();
    let suite = suite(&lab, &hierarchy, "resolution_timeout = \"1s\"");
    let fresh = ask(&suite, "short.example.test.", RecordType::A);
    assert_eq!(addresses(&fresh), vec!["192.0.2.99"]);
    hierarchy.server(3).set_behaviour(Behaviour {
        silent: true,
        ..Behaviour::default()
    });
    std::thread::sleep(Duration::from_millis(2100));
    let stale = ask(&suite, "short.example.test.", RecordType::A);
    assert_eq!(addresses(&stale), vec!["192.0.2.99"]);
    assert_eq!(stale.answers[0].ttl, 30, "RFC 8767 stale TTL");
    // With EDNS, the answer says it is stale (RFC 8914, code 3).
    let mut message =
        sextant_systest::question_with("short.example.test.", RecordType::A, Some(1232)).unwrap();
    message.metadata.recursion_desired = true;
    let stale = exchange(suite.dns, &message, false).unwrap();
    assert_eq!(
        sextant_systest::extended_error(&stale).map(|e| e.0),
        Some(3)
    );
}

#[test]
fn answers_match_unbound_on_the_same_lab() {
    let hierarchy = Hierarchy::start("", "");
    let lab = Lab::new().unwrap();
    let suite = suite(&lab, &hierarchy, "");
    let hints = lab.write("unbound/root.hints", &hierarchy.hints()).unwrap();
    let unbound = sextant_systest::Peer::unbound(&lab.path().join("unbound"), &hints).unwrap();
    let questions = [
        ("www.example.test.", RecordType::A),
        ("www.example.test.", RecordType::AAAA),
        ("alias.example.test.", RecordType::A),
        ("nope.example.test.", RecordType::A),
        ("www.example.test.", RecordType::MX),
        ("deep.er.sub.example.test.", RecordType::A),
        ("er.sub.example.test.", RecordType::A),
        ("www.other.test.", RecordType::A),
        ("missing.test.", RecordType::A),
        ("example.test.", RecordType::NS),
        ("example.test.", RecordType::SOA),
    ];
    for (name, rtype) in questions {
        let ours = ask(&suite, name, rtype);
        let mut message = Message::query();
        message.metadata.recursion_desired = true;
        message.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
        let theirs = exchange(unbound.addr, &message, false).unwrap();
        assert_eq!(
            ours.metadata.response_code,
            theirs.metadata.response_code,
            "{name} {rtype}: RCODE\n{}",
            std::fs::read_to_string(lab.path().join("unbound/unbound.log")).unwrap_or_default()
        );
        let rdata = |m: &Message| {
            let mut set: Vec<String> = m
                .answers
                .iter()
                .map(|r| format!("{} {} {}", r.name.to_lowercase(), r.record_type(), r.data))
                .collect();
            set.sort();
            set
        };
        assert_eq!(
            rdata(&ours),
            rdata(&theirs),
            "{name} {rtype}: answer section"
        );
        let soa = |m: &Message| {
            m.authorities
                .iter()
                .any(|r| r.record_type() == RecordType::SOA)
        };
        assert_eq!(soa(&ours), soa(&theirs), "{name} {rtype}: SOA in authority");
    }
}

#[test]
fn resolves_through_a_real_nsd_in_the_hierarchy() {
    // Root and TLD from the lab servers; example.test from NSD on host 3, port 53.
    let dns = DnsLab::new();
    let ip = |n: u8| dns.ip(n).to_string();
    let root = format!(
        "$TTL 86400\n@ SOA a.root-servers.lab. n.lab. 1 1800 900 604800 86400\n@ NS a.root-servers.lab.\na.root-servers.lab. A {}\ntest. NS ns.test.\nns.test. A {}\n",
        ip(1),
        ip(2)
    );
    let tld = format!(
        "$TTL 86400\n@ SOA ns h 1 1800 900 604800 300\n@ NS ns\nns A {}\nexample NS ns1.example\nns1.example A {}\n",
        ip(2),
        ip(3)
    );
    let _servers = [
        dns.serve(1, &[(".", &root)]).unwrap(),
        dns.serve(2, &[("test.", &tld)]).unwrap(),
    ];
    let lab = Lab::new().unwrap();
    let zone = lab
        .write(
            "nsd/example.test.zone",
            &format!(
                "$TTL 300\n@ SOA ns1 h 1 1800 900 604800 60\n@ NS ns1\nns1 A {}\nwww A 192.0.2.80\nalias CNAME www\n",
                ip(3)
            ),
        )
        .unwrap();
    let _nsd = sextant_systest::Peer::nsd_on(
        &lab.path().join("nsd"),
        SocketAddr::from((dns.ip(3), 53)),
        &[("example.test", &zone)],
        "",
        None,
    )
    .unwrap();
    let config = lab
        .resolver_config(&dns.hints(&[("a.root-servers.lab.", 1)]), "")
        .unwrap();
    let suite = lab.start_resolver_suite(&config).unwrap();
    let www = ask(&suite, "www.example.test.", RecordType::A);
    assert_eq!(addresses(&www), vec!["192.0.2.80"]);
    let alias = ask(&suite, "alias.example.test.", RecordType::A);
    assert_eq!(alias.answers.len(), 2);
    let nx = ask(&suite, "nope.example.test.", RecordType::A);
    assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);
}

/// SIGTERM while a query is with a backend: the listener stops reading, but the
/// answer still goes out before it exits (its lanes to the backends outlive its
/// sockets by the drain; they used to be cancelled first, and such a query got
/// SERVFAIL).
#[test]
fn a_query_in_flight_at_sigterm_still_gets_its_answer() {
    let hierarchy = Hierarchy::start("", "");
    let lab = Lab::new().unwrap();
    let suite = suite(&lab, &hierarchy, "");
    // Slow, but within the lab's 300 ms upstream timeout.
    hierarchy.server(3).set_behaviour(Behaviour {
        delay: Some(Duration::from_millis(200)),
        ..Behaviour::default()
    });
    let mut message = Message::query();
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(
        Name::from_ascii("www.example.test.").unwrap(),
        RecordType::A,
    ));
    let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    client
        .send_to(&message.to_vec().unwrap(), suite.dns)
        .unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let listener = suite.listener;
    let stopping = std::thread::spawn(move || listener.terminate(Duration::from_secs(10)));

    let mut buffer = [0u8; 1500];
    let (len, _) = client
        .recv_from(&mut buffer)
        .expect("an answer after SIGTERM");
    let answer = Message::from_vec(&buffer[..len]).unwrap();
    assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
    assert_eq!(addresses(&answer), vec!["192.0.2.80"]);
    assert!(
        stopping.join().unwrap().unwrap(),
        "the listener exits cleanly once the answer is out"
    );
}

/// DNS Cookies upstream: BIND and Knot (mod-cookies) as the authorities of two
/// zones of the lab give server cookies; the resolver learns them and sends them
/// back, and nothing it receives from them is taken for spoofed.
#[test]
fn the_resolver_speaks_cookies_with_bind_and_knot() {
    let hierarchy = Hierarchy::start(
        "bind NS ns.bind\nns.bind A {ip5}\nknot NS ns.knot\nns.knot A {ip6}\n",
        "",
    );
    let lab = Lab::new().unwrap();
    let leaf = |apex: &str, address: &str| {
        lab.write(
            &format!("peers/{apex}.zone"),
            &format!("$TTL 300\n@ SOA ns h 1 1800 900 604800 60\n@ NS ns\nns A {}\nwww A {address}\nmail A {address}\n",
                hierarchy.dns.ip(if apex.starts_with("bind") { 5 } else { 6 })),
        )
        .unwrap()
    };
    let (bind_zone, knot_zone) = (
        leaf("bind.test", "192.0.2.5"),
        leaf("knot.test", "192.0.2.6"),
    );
    let _bind = sextant_systest::Peer::bind_on(
        &lab.path().join("bind"),
        SocketAddr::from((hierarchy.dns.ip(5), 53)),
        &[("bind.test", &bind_zone)],
    )
    .unwrap();
    let _knot = sextant_systest::Peer::knot_on(
        &lab.path().join("knot"),
        SocketAddr::from((hierarchy.dns.ip(6), 53)),
        &[("knot.test", &knot_zone)],
    )
    .unwrap();
    let metrics = SocketAddr::from(([127, 0, 0, 1], sextant_systest::free_port().unwrap()));
    let suite = suite(&lab, &hierarchy, &format!("metrics = \"{metrics}\""));
    for (name, address) in [
        ("www.bind.test.", "192.0.2.5"),
        ("www.knot.test.", "192.0.2.6"),
        ("mail.bind.test.", "192.0.2.5"),
        ("mail.knot.test.", "192.0.2.6"),
    ] {
        assert_eq!(
            addresses(&ask(&suite, name, RecordType::A)),
            vec![address],
            "{name}"
        );
    }
    let text = sextant_systest::scrape_metrics(metrics).unwrap();
    let learned = sextant_systest::metric(&text, "sextant_resolver_server_cookies_total");
    assert!(learned >= 4.0, "server cookies learned: {learned}\n{text}");
    assert_eq!(
        sextant_systest::metric(&text, "sextant_resolver_cookie_mismatches_total"),
        0.0
    );
}

/// Once a server has given a cookie, an answer from it without ours is spoofed:
/// a poisoned answer with the right ID and question but no cookie, sent before the
/// real one, is ignored.
#[test]
fn an_answer_without_our_cookie_is_taken_for_spoofed() {
    let hierarchy = Hierarchy::start("", "");
    let cookies = Behaviour {
        answer_cookies: true,
        ..Behaviour::default()
    };
    hierarchy.server(3).set_behaviour(cookies.clone());
    let lab = Lab::new().unwrap();
    let metrics = SocketAddr::from(([127, 0, 0, 1], sextant_systest::free_port().unwrap()));
    let suite = suite(&lab, &hierarchy, &format!("metrics = \"{metrics}\""));
    assert_eq!(
        addresses(&ask(&suite, "www.example.test.", RecordType::A)),
        vec!["192.0.2.80"]
    );
    let poison: Record = Record::from_rdata(
        Name::from_ascii("x.").unwrap(),
        300,
        RData::A("6.6.6.6".parse().unwrap()),
    );
    hierarchy.server(3).set_behaviour(Behaviour {
        spoof_without_cookie: Some(poison),
        ..cookies
    });
    assert_eq!(
        addresses(&ask(&suite, "deep.er.sub.example.test.", RecordType::A)),
        vec!["192.0.2.81"],
        "the spoofed answer was taken"
    );
    let text = sextant_systest::scrape_metrics(metrics).unwrap();
    assert!(sextant_systest::metric(&text, "sextant_resolver_cookie_mismatches_total") >= 1.0);
}

#[test]
fn a_random_name_flood_stays_inside_the_cache_budgets() {
    use sextant_systest::procstat::rss_mib;
    // Budgets small enough for 60,000 new names to fill both caches several times.
    const BUDGET: u64 = 16 << 20;
    let hierarchy = Hierarchy::start("", "");
    let lab = Lab::new().unwrap();
    let config = lab
        .resolver_config(&hierarchy.hints(), &format!("cache_bytes = {BUDGET}\n"))
        .unwrap();
    let text = std::fs::read_to_string(&config).unwrap().replacen(
        "[listener]\n",
        &format!("[listener]\npacket_cache_bytes = {BUDGET}\n"),
        1,
    );
    std::fs::write(&config, text).unwrap();
    let suite = lab.start_resolver_suite(&config).unwrap();
    let pids = [suite.listener.pid(), suite.resolver.as_ref().unwrap().pid()];
    let rss = || pids.iter().map(|p| rss_mib(*p)).sum::<f64>();
    let idle = rss();
    // 60,000 names never seen, each NXDOMAIN from the zone's server: every one a new
    // entry in both caches. Sent in bursts of 100, each burst waited for.
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut peak = idle;
    let mut answered = 0;
    let mut buffer = [0u8; 2048];
    for burst in 0..600u32 {
        for i in 0..100u16 {
            let mut message = Message::query();
            message.metadata.id = i;
            message.metadata.recursion_desired = true;
            let name = format!("r{burst}-{i}.example.test.");
            message.add_query(Query::query(
                Name::from_ascii(&name).unwrap(),
                RecordType::A,
            ));
            socket
                .send_to(&message.to_vec().unwrap(), suite.dns)
                .unwrap();
        }
        for _ in 0..100 {
            if socket.recv_from(&mut buffer).is_err() {
                break;
            }
            answered += 1;
        }
        if burst % 50 == 0 {
            peak = peak.max(rss());
        }
    }
    peak = peak.max(rss());
    // What the caches may hold, counted as they count it, with room for the
    // allocator's rounding; and what the traffic itself costs (measured with both
    // caches off: about 7 MiB in the resolver, most of it the allocator keeping
    // freed pages). When entries were weighed by their payload bytes alone, a
    // random-name flood at 10k q/s took the suite to 322 MB for 128 MiB of budgets.
    let budgets = 2.0 * (BUDGET as f64) / f64::from(1 << 20);
    let bound = idle + budgets * 1.5 + 12.0;
    eprintln!(
        "idle {idle:.1} MiB, peak {peak:.1} MiB (bound {bound:.1}), answered {answered}/60000"
    );
    assert!(answered > 50_000, "the flood was not answered: {answered}");
    assert!(
        peak <= bound,
        "peak {peak:.1} MiB over the bound {bound:.1} MiB (idle {idle:.1}, budgets {budgets} MiB)"
    );
}

#[test]
fn client_and_upstream_exchanges_are_logged_in_dnstap() {
    use crate::dnstap::{dnstap_yaml, entries};
    let hierarchy = Hierarchy::start("", "");
    let lab = Lab::new().unwrap();
    let config = lab
        .resolver_config(
            &hierarchy.hints(),
            "\n[resolver.dnstap]\nfile = \"resolver.fstrm\"\n",
        )
        .unwrap();
    // The listener logs the client's side of the same question.
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "\n[resolver]\n",
        "\n[listener.dnstap]\nfile = \"listener.fstrm\"\n\n[resolver]\n",
    );
    std::fs::write(&config, text).unwrap();
    let suite = lab.start_resolver_suite(&config).unwrap();
    let answer = ask(&suite, "www.example.test.", RecordType::A);
    assert_eq!(addresses(&answer), ["192.0.2.80"]);
    let Suite {
        listener, resolver, ..
    } = suite;
    assert!(listener.terminate(Duration::from_secs(10)).unwrap());
    assert!(
        resolver
            .unwrap()
            .terminate(Duration::from_secs(10))
            .unwrap()
    );

    let client = dnstap_yaml(&lab.path().join("listener.fstrm"));
    assert_eq!(entries(&client, "CLIENT_QUERY"), 1, "{client}");
    assert_eq!(entries(&client, "CLIENT_RESPONSE"), 1, "{client}");
    assert!(
        client.contains("- 'www.example.test. 300 IN A 192.0.2.80'"),
        "{client}"
    );

    // Root, test. and example.test. were asked, each exchange logged both ways
    // with the zone the server was asked as an authority for.
    let upstream = dnstap_yaml(&lab.path().join("resolver.fstrm"));
    let queries = entries(&upstream, "RESOLVER_QUERY");
    assert!(queries >= 3, "{upstream}");
    assert_eq!(
        entries(&upstream, "RESOLVER_RESPONSE"),
        queries,
        "{upstream}"
    );
    for zone in [".", "test.", "example.test."] {
        assert!(
            upstream.contains(&format!("query_zone: {zone}\n")),
            "{zone}: {upstream}"
        );
    }
    let server = hierarchy.dns.ip(3).to_string();
    assert!(
        upstream.contains(&format!("response_address: \"{server}\"")),
        "{upstream}"
    );
}

#[test]
fn a_traced_query_is_one_trace_across_the_listener_the_resolver_and_its_upstreams() {
    use crate::trace::Collector;
    let collector = Collector::start();
    let hierarchy = Hierarchy::start("", "");
    let lab = Lab::new().unwrap();
    let config = lab
        .resolver_config(
            &hierarchy.hints(),
            &format!(
                "\n[trace]\notlp = \"http://{}\"\nalways_names = [\"www.example.test\"]\n",
                collector.address
            ),
        )
        .unwrap();
    let suite = lab.start_resolver_suite(&config).unwrap();
    // The traced query, from a cold cache: root, test. and example.test. asked.
    assert_eq!(
        addresses(&ask(&suite, "www.example.test.", RecordType::A)),
        ["192.0.2.80"]
    );
    // Not traced (no rule picks it, the rate is 0), nor are its upstream queries.
    assert_eq!(
        addresses(&ask(&suite, "www.other.test.", RecordType::A)),
        ["192.0.2.44"]
    );
    // Stopping flushes what each daemon still holds.
    let Suite {
        listener, resolver, ..
    } = suite;
    assert!(listener.terminate(Duration::from_secs(15)).unwrap());
    assert!(
        resolver
            .unwrap()
            .terminate(Duration::from_secs(15))
            .unwrap()
    );
    sextant_systest::eventually(Duration::from_secs(15), "spans from both daemons", || {
        let spans = collector.spans();
        spans.iter().any(|s| s.service == "sextant-listener")
            && spans.iter().any(|s| s.service == "sextant-resolver")
    })
    .unwrap();

    let spans = collector.spans();
    let one = |name: &str| {
        let found: Vec<_> = spans.iter().filter(|s| s.name == name).collect();
        assert_eq!(found.len(), 1, "{name}: {spans:#?}");
        found[0].clone()
    };
    let root = one("dns.query");
    assert_eq!(root.service, "sextant-listener");
    assert!(root.parent.is_empty(), "{root:?}");
    assert_eq!(
        root.attribute("dns.question.name"),
        Some("www.example.test.")
    );
    assert_eq!(root.attribute("dns.rcode"), Some("NOERROR"));
    let backend = one("backend");
    assert_eq!(backend.parent, root.span_id);
    assert_eq!(backend.attribute("sextant.backend"), Some("resolver"));
    let resolve = one("resolver.resolve");
    assert_eq!(resolve.service, "sextant-resolver");
    assert_eq!(resolve.parent, backend.span_id);
    let upstream: Vec<_> = spans.iter().filter(|s| s.name == "upstream").collect();
    assert!(upstream.len() >= 3, "{spans:#?}");
    for span in &upstream {
        assert_eq!(span.parent, resolve.span_id, "{span:?}");
    }
    let zones: Vec<_> = upstream
        .iter()
        .filter_map(|s| s.attribute("dns.zone"))
        .collect();
    for zone in [".", "test.", "example.test."] {
        assert!(zones.contains(&zone), "{zone}: {zones:?}");
    }
    let server = hierarchy.dns.ip(3).to_string();
    assert!(
        upstream
            .iter()
            .any(|s| s.attribute("server.address") == Some(server.as_str()))
    );
    // One trace: the untraced query left no span.
    assert!(
        spans.iter().all(|s| s.trace_id == root.trace_id),
        "{spans:#?}"
    );
}

#[test]
fn sextantctl_trace_prints_the_resolvers_upstream_exchanges_under_the_listener_span() {
    use crate::trace::{sextantctl_trace, span_line};
    let hierarchy = Hierarchy::start("", "");
    let lab = Lab::new().unwrap();
    let config = lab.resolver_config(&hierarchy.hints(), "").unwrap();
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "[listener]\n",
        "[listener]\ncontrol = \"unix:listener.sock\"\n",
    );
    std::fs::write(&config, text).unwrap();
    let suite = lab.start_resolver_suite(&config).unwrap();
    // From a cold cache: the root, test. and example.test. servers are asked.
    let printed = sextantctl_trace(&config, suite.dns, &["www.example.test", "A"]);
    assert!(
        printed.starts_with(";; www.example.test. A: NOERROR, 1 answer record(s)"),
        "{printed}"
    );
    let (_, root) = span_line(&printed, "dns.query");
    let (_, backend) = span_line(&printed, "backend");
    let (_, resolve) = span_line(&printed, "resolver.resolve");
    let (_, upstream) = span_line(&printed, "upstream");
    assert!(
        root < backend && backend < resolve && resolve < upstream,
        "{printed}"
    );
    for zone in [".", "test.", "example.test."] {
        assert!(
            printed
                .lines()
                .any(|l| l.contains("upstream [sextant-resolver]")
                    && l.contains(&format!("dns.zone={zone} "))),
            "{zone}: {printed}"
        );
    }
    let leaf = format!("server.address={}", hierarchy.dns.ip(3));
    assert!(printed.contains(&leaf), "{printed}");
    // Asked again, the answer comes from the resolver's cache: no upstream span.
    let printed = sextantctl_trace(&config, suite.dns, &["www.example.test", "A"]);
    span_line(&printed, "resolver.resolve");
    assert!(!printed.contains("upstream ["), "{printed}");
}

#[test]
fn a_resolver_stopping_or_dying_under_load_costs_no_answer() {
    use crate::backend_pool::{Load, all_up};
    let hierarchy = Hierarchy::start("", "");
    let lab = Lab::new().unwrap();
    let config = lab.resolver_config(&hierarchy.hints(), "").unwrap();
    let text = std::fs::read_to_string(&config).unwrap();
    let first = text.replace(
        "[listener]\n",
        "[listener]\nresolver = [\"unix:resolver.sock\", \"unix:resolver2.sock\"]\npacket_cache_bytes = 0\ncontrol = \"unix:listener.sock\"\n",
    );
    std::fs::write(&config, &first).unwrap();
    let second = lab
        .write(
            "sextant2.toml",
            &text.replace(
                "grpc = \"unix:resolver.sock\"\nready_file = \"resolver.ready.json\"",
                "grpc = \"unix:resolver2.sock\"\nready_file = \"resolver2.ready.json\"",
            ),
        )
        .unwrap();
    let start_second = || {
        sextant_systest::Daemon::start(
            "sextant-resolver",
            &second,
            &lab.path().join("resolver2.ready.json"),
            lab.path(),
        )
        .unwrap()
    };
    let one = lab.start_resolver(&config).unwrap();
    let two = start_second();
    let (_listener, dns) = lab.start_listener(&config).unwrap();
    sextant_systest::eventually(Duration::from_secs(10), "both resolvers up", || {
        all_up(&config)
    })
    .unwrap();

    let load = Load::start(dns, 4, "www.example.test.", "192.0.2.80");
    load.wait_for(300);
    // A crash: the first resolver's streams break under the queries.
    one.kill();
    load.wait_for(300);
    let one = lab.start_resolver(&config).unwrap();
    sextant_systest::eventually(Duration::from_secs(10), "the first is back", || {
        all_up(&config)
    })
    .unwrap();
    load.wait_for(300);
    // A planned stop of the second: NOT_SERVING, its streams ended.
    assert!(two.terminate(Duration::from_secs(10)).unwrap());
    load.wait_for(300);
    load.finish_without_failures();
    drop(one);
}
