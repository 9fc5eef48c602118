//! Per-endpoint analytics through a real Envoy: requests of known statuses and body sizes
//! to two operations and to an unknown path, read back from `/stats/prometheus` with the
//! labels `envoy/envoy.yaml` extracts.

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use apiguard_harness::{locate, HttpVersion, Policy, Reply, Stats};
use bytes::Bytes;
use http::Request;

use crate::events::wait_for;
use crate::fixture::Proxy;

/// A sample of an operation's series, as the shipped config labels it.
fn series(stats: &Stats, family: &str, operation: &str, more: &str) -> Option<f64> {
    stats.get(&format!(
        "apiguard_operation_{family}{{operation=\"{operation}\"{more}}}"
    ))
}

fn requests(stats: &Stats, operation: &str, class: &str) -> Option<f64> {
    series(
        stats,
        "requests",
        operation,
        &format!(",status_class=\"{class}\""),
    )
}

/// A histogram's cumulative count at bucket `le` (as Envoy prints the bound).
fn bucket(stats: &Stats, family: &str, operation: &str, le: &str) -> Option<f64> {
    series(
        stats,
        &format!("{family}_bucket"),
        operation,
        &format!(",le=\"{le}\""),
    )
}

#[test]
fn requests_are_counted_per_operation_and_status_class_with_latency_and_body_sizes() {
    // The petstore policy asks for analytics (`stats: {analytics: true}`).
    let proxy = Proxy::start(Policy::File(locate::policy("petstore")));
    let http = proxy.client(HttpVersion::Http1);
    let answer = |reply: &Reply| {
        let request = Request::get("/v1/pets")
            .header(Reply::HEADER, reply.header_value())
            .body(Bytes::new())
            .unwrap();
        http.send(request).unwrap()
    };
    // listPets: two 200s with a 2-byte body, one 503 with 300 bytes.
    let empty = Reply {
        body: Some("[]".to_owned()),
        ..Reply::default()
    };
    for _ in 0..2 {
        assert_eq!(answer(&empty).status, 200);
    }
    let failing = Reply {
        status: Some(503),
        body: Some("x".repeat(300)),
        ..Reply::default()
    };
    assert_eq!(answer(&failing).status, 503);

    // createPet: a 900-byte body in three chunks, answered 201 (the filter holds it, so the
    // host reports all it holds each time: counted once, it stays under the 1024 bucket,
    // summed per report it would not); and a 20-byte body the contract refuses (400).
    let pet = format!(r#"{{"name":"{}"}}"#, "R".repeat(64));
    let pet = format!("{pet:<900}");
    assert_eq!(pet.len(), 900);
    let created = Reply {
        status: Some(201),
        body: Some("{}".to_owned()),
        ..Reply::default()
    };
    let chunks = [&pet[..300], &pet[300..600], &pet[600..]]
        .map(|chunk| Bytes::from(chunk.to_owned()))
        .to_vec();
    let post = Request::post("/v1/pets")
        .header("content-type", "application/json")
        .header(Reply::HEADER, created.header_value())
        .body(())
        .unwrap();
    let response = http.send_chunked(post, chunks).unwrap();
    assert_eq!(response.status, 201, "{response:?}");
    let invalid = Request::post("/v1/pets")
        .header("content-type", "application/json")
        .body(Bytes::from(r#"{"name": 5, "x": 1}"#.to_owned() + " "))
        .unwrap();
    let response = http.send(invalid).unwrap();
    assert_eq!(response.status, 400, "{response:?}");

    // An unknown path: refused (404) and counted under `_unknown`.
    assert_eq!(proxy.get("/v1/admin").status, 404);

    // A client that goes away with 10 of the 100 body bytes it announced: no response
    // began, and what had arrived is counted.
    let mut gone = TcpStream::connect(proxy.envoy.listener()).unwrap();
    let head = "POST /v1/pets HTTP/1.1\r\nhost: petstore\r\ncontent-type: application/json\r\n\
                content-length: 100\r\n\r\n";
    gone.write_all(format!("{head}{{\"name\": \"").as_bytes())
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    drop(gone);
    wait_for("the stream the client left to end", || {
        let stats = proxy.envoy.stats().unwrap();
        (requests(&stats, "createPet", "none") == Some(1.0)).then_some(())
    });

    let stats = proxy.envoy.stats().unwrap();
    let counts = [
        ("listPets", "2xx", 2.0),
        ("listPets", "5xx", 1.0),
        ("createPet", "2xx", 1.0),
        ("createPet", "4xx", 1.0),
        ("_unknown", "4xx", 1.0),
    ];
    for (operation, class, count) in counts {
        assert_eq!(
            requests(&stats, operation, class),
            Some(count),
            "{operation} {class}"
        );
    }
    // A class an operation never answered with has no series: counters are defined when
    // first used, so a large contract costs stats only for what gets traffic.
    assert_eq!(requests(&stats, "listPets", "4xx"), None);
    assert_eq!(requests(&stats, "showPetById", "2xx"), None);

    // Envoy publishes histograms at its stats flush (5 s).
    let stats = wait_for("the histograms of all three labels", || {
        let stats = proxy.envoy.stats().unwrap();
        let count = |op| series(&stats, "duration_ms_count", op, "");
        (count("listPets") == Some(3.0)
            && count("createPet") == Some(3.0)
            && count("_unknown") == Some(1.0))
        .then_some(stats)
    });
    // Every request of this test ends well under 5 s (a local upstream; the client that
    // left, after 300 ms).
    for operation in ["listPets", "createPet", "_unknown"] {
        let all = series(&stats, "duration_ms_count", operation, "");
        assert_eq!(bucket(&stats, "duration_ms", operation, "5000"), all);
    }
    // Body sizes in the byte buckets: GETs carry no body (`le` 0.5).
    let sizes = [
        (
            "request_bytes",
            "listPets",
            [("0.5", 3.0), ("64", 3.0), ("1024", 3.0)],
        ),
        (
            "response_bytes",
            "listPets",
            [("0.5", 0.0), ("64", 2.0), ("1024", 3.0)],
        ),
        (
            "request_bytes",
            "createPet",
            [("0.5", 0.0), ("64", 2.0), ("1024", 3.0)],
        ),
        (
            "request_bytes",
            "_unknown",
            [("0.5", 1.0), ("64", 1.0), ("1024", 1.0)],
        ),
    ];
    for (family, operation, buckets) in sizes {
        for (le, count) in buckets {
            assert_eq!(
                bucket(&stats, family, operation, le),
                Some(count),
                "{family} {operation} le={le}"
            );
        }
    }
}
