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

#[test]
fn render_names_every_family_with_node_and_keyspace_labels() {
    let mut ks = KeyspaceMetrics {
        keyspace: "kv".into(),
        protocol: "multipaxos".into(),
        ..KeyspaceMetrics::default()
    };
    ks.requests.insert("put", 4);
    ks.replies.insert("ok", 3);
    ks.protocol_counters.add("elections", 2);
    ks.fsync_latency.observe(Duration::from_micros(800));
    ks.storage.insert("log_bytes", 4096);
    let text = render(NodeId(2), &[ks], Some(&TransportStats::default()), None);
    for needle in [
        "meridian_requests_total{node=\"2\",keyspace=\"kv\",op=\"put\"} 4",
        "meridian_replies_total{node=\"2\",keyspace=\"kv\",outcome=\"ok\"} 3",
        "meridian_protocol{node=\"2\",keyspace=\"kv\",protocol=\"multipaxos\",name=\"elections\"} 2",
        "meridian_fsync_latency_seconds_count{node=\"2\",keyspace=\"kv\"} 1",
        "meridian_storage{node=\"2\",keyspace=\"kv\",name=\"log_bytes\"} 4096",
        "meridian_transport_total{node=\"2\",event=\"frames_sent\"} 0",
        "# TYPE meridian_commit_latency_seconds histogram",
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
}

#[tokio::test]
async fn the_endpoint_answers_get_metrics_and_404s_the_rest() {
    let render: RenderFn = Arc::new(|| Box::pin(async { "meridian_up 1\n".to_owned() }));
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
    assert!(get("/nope").await.starts_with("HTTP/1.1 404"));
    task.abort();
}
