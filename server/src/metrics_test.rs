use super::*;

#[test]
fn histogram_buckets_are_cumulative_and_end_with_inf() {
    let mut h = Histogram::default();
    h.observe(Duration::from_micros(50));
    h.observe(Duration::from_millis(3));
    h.observe(Duration::from_secs(60));
    let mut out = String::new();
    h.render(&mut out, "x", "node=\"0\"");
    assert!(
        out.contains("x_bucket{node=\"0\",le=\"0.0001\"} 1\n"),
        "{out}"
    );
    assert!(
        out.contains("x_bucket{node=\"0\",le=\"0.005\"} 2\n"),
        "{out}"
    );
    assert!(out.contains("x_bucket{node=\"0\",le=\"10\"} 2\n"), "{out}");
    assert!(
        out.contains("x_bucket{node=\"0\",le=\"+Inf\"} 3\n"),
        "{out}"
    );
    assert!(out.contains("x_count{node=\"0\"} 3\n"), "{out}");
}

fn view<'a>(links: &'a BTreeMap<NodeId, bool>, transport: &'a TransportStats) -> NodeView<'a> {
    NodeView {
        node: NodeId(2),
        links,
        transport: Some(transport),
        wan: None,
        router_dropped: 0,
        incarnation: Some(7),
    }
}

fn links(up: &[(u16, bool)]) -> BTreeMap<NodeId, bool> {
    up.iter().map(|&(id, up)| (NodeId(id), up)).collect()
}

#[test]
fn render_names_every_family_with_node_and_keyspace_labels() {
    let mut ks = KeyspaceMetrics {
        keyspace: "kv".into(),
        protocol: "multipaxos".into(),
        ..KeyspaceMetrics::default()
    };
    ks.requests.insert("put", 4);
    ks.replies.insert("ok", 3);
    ks.protocol_counters.add("elections_started", 2);
    ks.protocol_counters.set("live_slots", 7);
    ks.fsync_latency.observe(Duration::from_micros(800));
    ks.storage.insert("log_bytes", 4096);
    let transport = TransportStats::default();
    let peers = links(&[(0, true), (1, false)]);
    let text = render(&view(&peers, &transport), &[ks]);
    for needle in [
        "meridian_requests_total{node=\"2\",keyspace=\"kv\",op=\"put\"} 4",
        "meridian_replies_total{node=\"2\",keyspace=\"kv\",outcome=\"ok\"} 3",
        "meridian_protocol_events_total{node=\"2\",keyspace=\"kv\",protocol=\"multipaxos\",name=\"elections_started\"} 2",
        "meridian_protocol_state{node=\"2\",keyspace=\"kv\",protocol=\"multipaxos\",name=\"live_slots\"} 7",
        "meridian_fsync_latency_seconds_count{node=\"2\",keyspace=\"kv\"} 1",
        "meridian_transport_total{node=\"2\",event=\"frames_sent\"} 0",
        "meridian_transport_total{node=\"2\",event=\"duplicate_refused\"} 0",
        "# TYPE meridian_commit_latency_seconds histogram",
        "meridian_peer_connected{node=\"2\",peer=\"0\"} 1",
        "meridian_peer_connected{node=\"2\",peer=\"1\"} 0",
        "meridian_peers_connected{node=\"2\"} 1",
        "meridian_multipaxos_leader{node=\"2\",keyspace=\"kv\"} -1",
        "meridian_keyspace_ready{node=\"2\",keyspace=\"kv\"} 0",
        "meridian_router_dropped_total{node=\"2\"} 0",
        "meridian_storage_state{node=\"2\",keyspace=\"kv\",name=\"log_bytes\"} 4096",
        "meridian_incarnation{node=\"2\"} 7",
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
    // A gauge is not reported as a counter, nor a counter as a gauge.
    assert!(!text.contains("meridian_protocol_events_total{node=\"2\",keyspace=\"kv\",protocol=\"multipaxos\",name=\"live_slots\"}"));
    assert!(!text.contains("meridian_protocol_state{node=\"2\",keyspace=\"kv\",protocol=\"multipaxos\",name=\"elections_started\"}"));
}

/// Prometheus conventions: every sample's family has a TYPE; counters end in `_total`
/// (histograms' series in `_bucket`/`_sum`/`_count`), and nothing is `untyped`.
#[test]
fn every_family_is_typed_and_counters_end_in_total() {
    let mut keyspaces = Vec::new();
    for protocol in ["multipaxos", "epaxos", "dynamo"] {
        keyspaces.push(KeyspaceMetrics {
            keyspace: protocol.into(),
            protocol: protocol.into(),
            ..KeyspaceMetrics::default()
        });
    }
    let transport = TransportStats::default();
    let peers = links(&[(0, true), (1, true)]);
    let text = render(&view(&peers, &transport), &keyspaces);
    let mut types = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        let mut parts = line["# TYPE ".len()..].split(' ');
        let (name, kind) = (parts.next().unwrap(), parts.next().unwrap());
        assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
        if kind == "counter" {
            assert!(name.ends_with("_total"), "{line}");
        }
        assert!(
            types.insert(name.to_owned(), kind).is_none(),
            "twice: {line}"
        );
    }
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let series = line.split(['{', ' ']).next().unwrap();
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                series
                    .strip_suffix(s)
                    .filter(|f| types.get(*f) == Some(&"histogram"))
            })
            .unwrap_or(series);
        assert!(types.contains_key(family), "untyped sample {line}");
    }
}

/// Counters nothing has counted yet are reported at zero, so a rate over them works from
/// the first scrape.
#[test]
fn counters_at_zero_are_reported() {
    let ks = KeyspaceMetrics {
        keyspace: "e".into(),
        protocol: "epaxos".into(),
        ..KeyspaceMetrics::default()
    };
    let transport = TransportStats::default();
    let peers = links(&[(0, true)]);
    let text = render(&view(&peers, &transport), &[ks]);
    for needle in [
        "meridian_requests_total{node=\"2\",keyspace=\"e\",op=\"cas\"} 0",
        "meridian_replies_total{node=\"2\",keyspace=\"e\",outcome=\"timeout\"} 0",
        "meridian_host_events_total{node=\"2\",keyspace=\"e\",event=\"fsyncs\"} 0",
        "meridian_protocol_events_total{node=\"2\",keyspace=\"e\",protocol=\"epaxos\",name=\"fast_path\"} 0",
        "meridian_protocol_events_total{node=\"2\",keyspace=\"e\",protocol=\"epaxos\",name=\"slow_path\"} 0",
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
}

#[test]
fn readiness_needs_a_majority_and_on_multipaxos_a_reachable_leader() {
    let transport = TransportStats::default();
    let mut mp = KeyspaceMetrics {
        keyspace: "mp".into(),
        protocol: "multipaxos".into(),
        ..KeyspaceMetrics::default()
    };
    let ep = KeyspaceMetrics {
        keyspace: "ep".into(),
        protocol: "epaxos".into(),
        ..KeyspaceMetrics::default()
    };
    let alone = links(&[(0, false), (1, false)]);
    let err = readiness(&view(&alone, &transport), &ep).unwrap_err();
    assert!(err.contains("1 of 3 replicas reachable, 2 needed"), "{err}");
    let one = links(&[(0, true), (1, false)]);
    assert!(readiness(&view(&one, &transport), &ep).is_ok());
    let err = readiness(&view(&one, &transport), &mp).unwrap_err();
    assert!(err.contains("no leader known"), "{err}");
    mp.protocol_counters.set("leader_known", 1);
    mp.protocol_counters.set("leader", 1);
    let err = readiness(&view(&one, &transport), &mp).unwrap_err();
    assert!(err.contains("leader 1 unreachable"), "{err}");
    mp.protocol_counters.set("leader", 0);
    assert!(readiness(&view(&one, &transport), &mp).is_ok());
    mp.protocol_counters.set("leader", 2); // this node leads
    assert!(readiness(&view(&one, &transport), &mp).is_ok());
    mp.protocol_counters.set("rejoining", 1);
    assert!(readiness(&view(&one, &transport), &mp)
        .unwrap_err()
        .contains("rejoining"));
    assert_eq!(unready(&view(&one, &transport), &[mp, ep]).len(), 1);
}

/// The protocol name lists cover every counter and gauge the engine's cores name with a
/// literal, each in the right list.
#[test]
fn protocol_name_lists_match_the_engine_sources() {
    let engine = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../engine/src");
    for protocol in ["multipaxos", "epaxos", "tempo", "dynamo"] {
        let (counters, gauges) = protocol_names(protocol);
        let mut files = vec![engine.join(protocol)];
        let mut seen = 0;
        while let Some(path) = files.pop() {
            if path.is_dir() {
                files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
                continue;
            }
            let name = path.to_string_lossy().into_owned();
            if !name.ends_with(".rs") || name.ends_with("_test.rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for (call, list, kind) in [
                ("metrics.incr(\"", counters, "counter"),
                ("metrics.add(\"", counters, "counter"),
                ("metrics.set(\"", gauges, "gauge"),
            ] {
                for piece in text.split(call).skip(1) {
                    let counted = piece.split('"').next().unwrap();
                    seen += 1;
                    assert!(
                        list.contains(&counted),
                        "{protocol} {kind} {counted:?} ({name}) is missing from metrics.rs"
                    );
                }
            }
        }
        assert!(seen > 5, "the scan found the {protocol} sources");
    }
}

#[tokio::test]
async fn the_endpoint_answers_metrics_and_health_and_404s_the_rest() {
    let healthy = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let flag = healthy.clone();
    let render: RenderFn = Arc::new(move || {
        let ok = flag.load(Ordering::Relaxed);
        Box::pin(async move {
            Page {
                metrics: "meridian_up 1\n".to_owned(),
                unready: if ok {
                    Vec::new()
                } else {
                    vec!["keyspace kv: no leader known".to_owned()]
                },
            }
        })
    });
    let (addr, task) = spawn("127.0.0.1:0".parse().unwrap(), render).await.unwrap();
    let get = |path: &'static str| async move {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        response
    };
    let ok = get("/metrics").await;
    assert!(ok.starts_with("HTTP/1.1 200 OK"), "{ok}");
    assert!(ok.ends_with("meridian_up 1\n"), "{ok}");
    let health = get("/health").await;
    assert!(health.starts_with("HTTP/1.1 200 OK"), "{health}");
    healthy.store(false, Ordering::Relaxed);
    let health = get("/health").await;
    assert!(health.starts_with("HTTP/1.1 503"), "{health}");
    assert!(
        health.ends_with("keyspace kv: no leader known\n"),
        "{health}"
    );
    for path in ["/nope", "/", "/metrics/x", "/healthz"] {
        assert!(get(path).await.starts_with("HTTP/1.1 404"), "{path}");
    }
    task.abort();
}

/// With WAN emulation the page carries its datagram counters and how far off their
/// release times the datagrams left, late and early apart.
#[test]
fn wan_emulation_reports_datagrams_and_release_offsets() {
    let wan = WanStats::default();
    wan.sent.store(40, Ordering::Relaxed);
    wan.late_us.store(2_000, Ordering::Relaxed);
    wan.early_us.store(100, Ordering::Relaxed);
    let transport = TransportStats::default();
    let peers = links(&[]);
    let text = render(
        &NodeView {
            wan: Some(&wan),
            ..view(&peers, &transport)
        },
        &[],
    );
    for needle in [
        "meridian_wan_datagrams_total{node=\"2\",event=\"sent\"} 40",
        "meridian_wan_release_offset_us_total{node=\"2\",side=\"late\"} 2000",
        "meridian_wan_release_offset_us_total{node=\"2\",side=\"early\"} 100",
    ] {
        assert!(text.contains(needle), "{needle} missing from\n{text}");
    }
}
