//! `qdet serve` at its limits: the upload budget, the token before the body, clients that
//! give up, clients at exactly the capacity, the deadline, and the small strictnesses of the
//! API. Every case is a real server on a loopback port; nothing is timed.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use reqwest::blocking::{multipart, Client};
use serde_json::Value;

use crate::serve::large_jpeg;
use crate::util::*;

fn int8_model() -> String {
    root().join("models/shapes-yolov8n.int8.onnx").to_string_lossy().into_owned()
}

fn client() -> Client {
    Client::builder().timeout(Duration::from_secs(60)).build().unwrap()
}

fn jpeg() -> Vec<u8> {
    std::fs::read(val("val_0000.jpg")).unwrap()
}

fn answer(r: reqwest::blocking::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.text().unwrap();
    (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("{status}, not JSON ({e}): {text:?}")))
}

/// The value of a metric line `name value` in the server's `/metrics`.
fn metric(server: &Server, name: &str) -> f64 {
    let text = client().get(server.url("/metrics")).send().unwrap().text().unwrap();
    let line = text.lines().find(|l| l.split_whitespace().next() == Some(name));
    line.and_then(|l| l.split_whitespace().nth(1)?.parse().ok()).unwrap_or_else(|| panic!("no {name} in {text}"))
}

/// Polls `metric` until it equals `want` (the workers finish after the answers leave).
fn await_metric(server: &Server, name: &str, want: f64) {
    let start = Instant::now();
    while metric(server, name) != want {
        assert!(start.elapsed() < Duration::from_secs(20), "{name} stayed {} (want {want})", metric(server, name));
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A raw request's head, sent on a new connection; the body is the caller's.
fn open(server: &Server, head: &str) -> TcpStream {
    let mut s = TcpStream::connect(server.addr()).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s
}

fn read_answer(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

#[test]
fn uploads_over_the_budget_are_refused_before_their_body_is_read() {
    let server = Server::start(&["--model", &int8_model(), "--max-body", "1000000", "--max-inflight-bytes", "1000000"]);
    // A slow upload holds 900000 of the 1000000 bytes (879 of 977 KiB) while it trickles in.
    let mut slow = open(&server, "POST /v1/detect HTTP/1.1\r\nHost: x\r\nContent-Length: 900000\r\n\r\n");
    slow.write_all(&[0u8; 10]).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(metric(&server, "qdet_upload_budget_free_bytes"), (977.0 - 879.0) * 1024.0);
    // 200000 bytes do not fit in the 98 KiB left: refused from the header, unread.
    let r = client().post(server.url("/v1/detect")).body(vec![0u8; 200_000]).send().unwrap();
    let retry = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
    let (status, v) = answer(r);
    assert_eq!((status, retry.as_deref()), (503, Some("1")), "{v}");
    assert!(v["error"].as_str().unwrap().contains("--max-inflight-bytes"), "{v}");
    // A small image still fits, and once the slow upload is gone, so does anything.
    assert_eq!(client().post(server.url("/v1/detect")).body(jpeg()).send().unwrap().status().as_u16(), 200);
    drop(slow);
    await_metric(&server, "qdet_upload_budget_free_bytes", 977.0 * 1024.0);
    let r = client().post(server.url("/v1/detect")).body(vec![0u8; 200_000]).send().unwrap();
    assert_eq!(r.status().as_u16(), 400, "read and refused as an image now");
}

#[test]
fn an_idle_server_gives_a_bursts_memory_back_once() {
    let server = Server::start(&["--model", &int8_model()]);
    // Nothing has gone through yet: an idle server has nothing to give back.
    assert_eq!(metric(&server, "qdet_heap_trims_total"), 0.0);
    // Four 9 MB uploads (read, then refused as images) are over the 32 MiB that make a trim
    // worth its page faults; once the server is idle again it trims, once.
    for _ in 0..4 {
        let r = client().post(server.url("/v1/detect")).body(vec![0u8; 9_000_000]).send().unwrap();
        assert_eq!(r.status().as_u16(), 400);
    }
    await_metric(&server, "qdet_heap_trims_total", 1.0);
    // Small requests after it do not make the next trim due.
    assert_eq!(client().post(server.url("/v1/detect")).body(jpeg()).send().unwrap().status().as_u16(), 200);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(metric(&server, "qdet_heap_trims_total"), 1.0);
}

#[test]
fn the_token_is_checked_before_the_body_is_read() {
    let server = Server::start(&["--model", &int8_model(), "--token", "s3cret"]);
    // 5 MB announced, nothing sent: the 401 comes at once.
    let mut s = open(&server, "POST /v1/detect HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\n\r\n");
    let text = read_answer(&mut s);
    assert!(text.starts_with("HTTP/1.1 401"), "{text}");
    assert!(text.contains("\"success\":false"), "{text}");
    // The key as a query parameter is checked before the body too, and lets it in.
    let r = client().post(server.url("/v1/detect?api_key=s3cret")).body(jpeg()).send().unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

#[test]
fn requests_whose_client_gave_up_are_not_run_and_are_counted() {
    let server = Server::start(&["--model", &int8_model(), "--threads", "1", "--queue", "4", "--max-body", "50000000"]);
    // One slow image holds the only worker.
    let big = large_jpeg();
    let url = server.url("/v1/detect");
    let holder = std::thread::spawn(move || client().post(url).body(big).send().unwrap().status().as_u16());
    await_metric(&server, "qdet_in_flight", 1.0);
    // Three clients send a whole request, wait until it is queued behind the busy worker,
    // and give up.
    let small = jpeg();
    let quitters: Vec<TcpStream> = (0..3)
        .map(|_| {
            let head = format!("POST /v1/detect HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n", small.len());
            let mut s = open(&server, &head);
            s.write_all(&small).unwrap();
            s
        })
        .collect();
    await_metric(&server, "qdet_queue_depth", 3.0);
    drop(quitters);
    assert_eq!(holder.join().unwrap(), 200);
    await_metric(&server, "qdet_requests_abandoned_total", 3.0);
    // Only the one answered image reached the inference stage.
    assert_eq!(metric(&server, "qdet_stage_duration_seconds_count{stage=\"inference\"}"), 1.0);
}

#[test]
fn clients_at_exactly_the_capacity_never_see_a_503() {
    // 1 worker + 1 queue slot: two clients sending back to back always fit.
    let server = Server::start(&["--model", &int8_model(), "--threads", "1", "--queue", "1"]);
    let url = server.url("/v1/detect");
    let clients: Vec<_> = (0..2)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                let (c, body) = (client(), jpeg());
                (0..25).map(|_| c.post(&url).body(body.clone()).send().unwrap().status().as_u16()).collect::<Vec<_>>()
            })
        })
        .collect();
    for c in clients {
        let statuses = c.join().unwrap();
        assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    }
}

#[test]
fn a_request_that_waited_past_the_deadline_is_answered_503() {
    let server = Server::start(&[
        "--model",
        &int8_model(),
        "--threads",
        "1",
        "--queue",
        "4",
        "--deadline-ms",
        "1",
        "--max-body",
        "50000000",
    ]);
    let big = std::sync::Arc::new(large_jpeg());
    let clients: Vec<_> = (0..3)
        .map(|_| {
            let (big, url) = (big.clone(), server.url("/v1/detect"));
            std::thread::spawn(move || answer(client().post(url).body(big.to_vec()).send().unwrap()))
        })
        .collect();
    let answers: Vec<(u16, Value)> = clients.into_iter().map(|t| t.join().unwrap()).collect();
    let late =
        answers.iter().filter(|(s, v)| *s == 503 && v["error"].as_str().unwrap().contains("--deadline-ms")).count();
    let done = answers.iter().filter(|(s, _)| *s == 200).count();
    // The first to reach the worker runs; the others wait at least its decode.
    assert!(done >= 1 && late >= 1 && done + late == 3, "{answers:?}");
    assert_eq!(metric(&server, "qdet_requests_expired_total"), late as f64);
}

#[test]
fn the_api_is_strict_where_a_mistake_would_pass_unseen() {
    let server = Server::start(&["--model", &int8_model()]);
    let c = client();
    let detection = server.url("/v1/vision/detection");
    // A wrong method gets the JSON every error gets; so do the answers hyper makes itself.
    let (s, v) = answer(c.get(&detection).send().unwrap());
    assert!(s == 405 && v["success"] == false, "{s} {v}");
    let many: String = (0..120).map(|i| format!("X-{i}: a\r\n")).collect();
    for (request, status) in
        [("GARBAGE\r\n\r\n".to_string(), 400), (format!("GET /healthz HTTP/1.1\r\n{many}\r\n"), 431)]
    {
        let text = read_answer(&mut open(&server, &request));
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("{text}"));
        assert!(head.starts_with(&format!("HTTP/1.1 {status} ")), "{text}");
        let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {text}"));
        assert_eq!((v["success"].as_bool(), v["code"].as_u64()), (Some(false), Some(status)), "{text}");
        assert!(head.contains(&format!("content-length: {}", body.len())), "{text}");
    }
    // Booleans are true or false, and a parameter /v1/detect does not take is named.
    let (s, v) = answer(c.post(server.url("/v1/detect?agnostic=maybe")).body(jpeg()).send().unwrap());
    assert!(s == 400 && v["error"].as_str().unwrap().contains("agnostic: \"maybe\" is not true or false"), "{v}");
    let (s, v) = answer(c.post(server.url("/v1/detect?confidence=0.9&conf=0.5")).body(jpeg()).send().unwrap());
    assert!(s == 400 && v["error"].as_str().unwrap().starts_with("unknown query parameter confidence;"), "{v}");
    assert_eq!(c.post(server.url("/v1/detect?agnostic=0&save_conf=yes")).body(jpeg()).send().unwrap().status(), 200);
    // One image per request.
    let two = multipart::Form::new()
        .part("image", multipart::Part::bytes(jpeg()).file_name("a.jpg"))
        .part("image", multipart::Part::bytes(jpeg()).file_name("b.jpg"));
    let (s, v) = answer(c.post(&detection).multipart(two).send().unwrap());
    assert!(s == 400 && v["error"].as_str().unwrap().contains("two `image` fields"), "{v}");
    // max_det caps the DeepStack predictions, keeping the most confident (val_0000 has 3
    // over the default 0.45: star 0.90, circle 0.56, hexagon 0.48).
    let form = |max_det: &str| {
        multipart::Form::new()
            .text("max_det", max_det.to_string())
            .part("image", multipart::Part::bytes(jpeg()).file_name("a.jpg"))
    };
    let (s, v) = answer(c.post(&detection).multipart(form("1")).send().unwrap());
    assert_eq!(s, 200, "{v}");
    let p = v["predictions"].as_array().unwrap();
    assert!(p.len() == 1 && p[0]["label"] == "star", "{v}");
    assert_eq!(answer(c.post(&detection).multipart(form("many")).send().unwrap()).0, 400);
    // Model files by name only: their paths say how the box is laid out.
    let text = c.get(server.url("/v1/models")).send().unwrap().text().unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["models"][0]["file"], "shapes-yolov8n.int8.onnx");
    assert!(!text.contains(root().to_str().unwrap()), "{text}");
    drop(server);
    let server = Server::start(&["--model", &int8_model(), "--show-paths"]);
    let v: Value = serde_json::from_str(&c.get(server.url("/v1/models")).send().unwrap().text().unwrap()).unwrap();
    assert_eq!(v["models"][0]["file"], int8_model());
}
