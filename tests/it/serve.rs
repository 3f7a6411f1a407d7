//! `qdet serve` over real HTTP: a spawned server on a free loopback port and reqwest as the
//! client. Answers are checked against what `qdet detect` writes for the same images; the
//! error, overload, auth and shutdown cases against their documented status codes.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use reqwest::blocking::{multipart, Client, Response};
use serde_json::Value;

use crate::hostile_inputs::png_bomb;
use crate::util::*;

const IMAGES: [&str; 3] = ["val_0000.jpg", "val_0003.jpg", "val_0007.jpg"];

fn int8_model() -> String {
    root().join("models/shapes-yolov8n.int8.onnx").to_string_lossy().into_owned()
}

fn client() -> Client {
    Client::builder().timeout(Duration::from_secs(60)).build().unwrap()
}

fn form(bytes: Vec<u8>, file_name: &str) -> multipart::Form {
    multipart::Form::new().part("image", multipart::Part::bytes(bytes).file_name(file_name.to_string()))
}

fn body_json(r: Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.text().unwrap();
    (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}")))
}

/// Runs `qdet detect` on IMAGES with labelme and YOLO outputs into `out`.
fn detect_outputs(model: &str, out: &Path) {
    let mut args = vec!["detect", "--model", model, "--save-txt", "--out", out.to_str().unwrap()];
    let paths: Vec<String> = IMAGES.iter().map(|i| val(i).to_string_lossy().into_owned()).collect();
    args.extend(paths.iter().map(String::as_str));
    let o = qdet(&args, out.parent().unwrap());
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn both_apis_answer_what_detect_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("predict");
    detect_outputs(&int8_model(), &out);
    let server = Server::start(&["--model", &int8_model(), "--model", &format!("fp32={}", model()), "--threads", "2"]);
    let c = client();
    for name in IMAGES {
        let bytes = std::fs::read(val(name)).unwrap();
        let mut want = json(&out.join(name).with_extension("json"));
        // labelme: byte for byte the file `detect` wrote, but for imagePath (the upload's name).
        let url = server.url(&format!("/v1/detect?format=labelme&filename={name}"));
        let (status, got) = body_json(c.post(url).body(bytes.clone()).send().unwrap());
        assert_eq!(status, 200, "{got}");
        want["imagePath"] = Value::String(name.into());
        assert_eq!(got, want, "{name}");
        // The same as multipart, named by the form's file name.
        let r = c.post(server.url("/v1/detect?format=labelme")).multipart(form(bytes.clone(), name)).send().unwrap();
        assert_eq!(body_json(r).1, want, "{name} as multipart");
        // YOLO txt: detect's --save-txt file.
        let r = c.post(server.url("/v1/detect?format=yolo")).body(bytes.clone()).send().unwrap();
        assert_eq!(r.status().as_u16(), 200);
        assert_eq!(r.text().unwrap(), read(&out.join("labels").join(name).with_extension("txt")), "{name}");
        // qdet's JSON: the same boxes, with class ids, names and stage times.
        let (_, native) = body_json(c.post(server.url("/v1/detect")).body(bytes.clone()).send().unwrap());
        let rects = rects(&want);
        let dets = native["detections"].as_array().unwrap();
        assert_eq!(dets.len(), rects.len(), "{native}");
        for (d, (label, r)) in dets.iter().zip(&rects) {
            assert_eq!(d["name"].as_str(), Some(label.as_str()));
            let b: Vec<f64> = d["box"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
            assert!(b.iter().zip(r).all(|(a, b)| (a - b).abs() < 1e-3), "{b:?} vs {r:?}");
        }
        assert!(native["ms"]["inference"].as_f64().unwrap() > 0.0, "{native}");
        check_deepstack(&c, &server, bytes, name, &want);
    }
}

/// DeepStack's answer: detect's boxes above 0.45, in whole pixels, with CodeProject.AI's fields.
fn check_deepstack(c: &Client, server: &Server, bytes: Vec<u8>, name: &str, labelme: &Value) {
    let (status, got) =
        body_json(c.post(server.url("/v1/vision/detection")).multipart(form(bytes, name)).send().unwrap());
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["success"], true);
    assert_eq!(got["code"], 200);
    for key in ["inferenceMs", "processMs", "analysisRoundTripMs"] {
        assert!(got[key].is_u64(), "{key} in {got}");
    }
    assert!(got["moduleId"].is_string() && got["command"] == "detect", "{got}");
    let scores: Vec<f64> = labelme["shapes"].as_array().unwrap().iter().map(|s| s["score"].as_f64().unwrap()).collect();
    let want: Vec<(String, [f64; 4])> =
        rects(labelme).into_iter().zip(scores).filter(|(_, s)| *s > 0.45).map(|(r, _)| r).collect();
    let preds = got["predictions"].as_array().unwrap();
    assert_eq!(preds.len(), want.len(), "{name}: {got}");
    for (p, (label, r)) in preds.iter().zip(&want) {
        assert_eq!(p["label"].as_str(), Some(label.as_str()));
        let px = ["x_min", "y_min", "x_max", "y_max"].map(|k| p[k].as_i64().unwrap_or_else(|| panic!("{k} in {p}")));
        assert!(px.iter().zip(r).all(|(a, b)| (*a as f64 - b).abs() <= 0.5), "{name}: {px:?} vs {r:?}");
    }
}

#[test]
fn custom_models_options_and_service_endpoints() {
    let server = Server::start(&["--model", &int8_model(), "--model", &format!("fp32={}", model())]);
    let c = client();
    let bytes = std::fs::read(val("val_0000.jpg")).unwrap();
    let f = form(bytes.clone(), "a.jpg").text("min_confidence", "0.9");
    let (status, got) = body_json(c.post(server.url("/v1/vision/custom/fp32")).multipart(f).send().unwrap());
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["command"], "custom");
    assert!(got["predictions"].as_array().unwrap().iter().all(|p| p["confidence"].as_f64().unwrap() > 0.9), "{got}");
    let (_, all) = body_json(c.post(server.url("/v1/detect?model=fp32&conf=0.01")).body(bytes.clone()).send().unwrap());
    let (_, star) = body_json(
        c.post(server.url("/v1/detect?model=fp32&conf=0.01&classes=3&max_det=1")).body(bytes).send().unwrap(),
    );
    assert!(all["detections"].as_array().unwrap().len() > 1, "{all}");
    let star = star["detections"].as_array().unwrap();
    assert!(star.len() == 1 && star[0]["class"] == 3, "{star:?}");
    assert_eq!(c.get(server.url("/healthz")).send().unwrap().status().as_u16(), 200);
    let (_, models) = body_json(c.get(server.url("/v1/models")).send().unwrap());
    assert_eq!(models["default"], "shapes-yolov8n.int8");
    assert_eq!(models["models"][0]["precision"], "int8");
    assert_eq!(models["models"][1]["name"], "fp32");
    assert_eq!(models["models"][1]["imgsz"], serde_json::json!([320, 320]));
    let metrics = c.get(server.url("/metrics")).send().unwrap().text().unwrap();
    for want in [
        "qdet_requests_total{route=\"/v1/vision/custom/{name}\",status=\"200\"} 1",
        "qdet_requests_total{route=\"/v1/detect\",status=\"200\"} 2",
        "qdet_stage_duration_seconds_count{stage=\"inference\"} 3",
        "qdet_queue_depth 0",
        "qdet_in_flight 0",
    ] {
        assert!(metrics.contains(want), "{want} not in {metrics}");
    }
}

/// Status and `error` of a failed request; every error is DeepStack-shaped.
fn failure(r: Response) -> (u16, String) {
    let (status, v) = body_json(r);
    assert_eq!(v["success"], false, "{v}");
    (status, v["error"].as_str().unwrap().to_string())
}

#[test]
fn bad_requests_get_4xx_with_the_reason() {
    let server = Server::start(&["--model", &int8_model(), "--max-body", "200000"]);
    let c = client();
    let jpeg = std::fs::read(val("val_0000.jpg")).unwrap();
    let detection = server.url("/v1/vision/detection");
    let (s, e) = failure(c.post(&detection).multipart(form(b"hello".to_vec(), "a.jpg")).send().unwrap());
    assert!(s == 400 && e.contains("not a supported image format"), "{s} {e}");
    let (s, e) = failure(c.post(&detection).multipart(form(png_bomb(), "bomb.png")).send().unwrap());
    assert!(s == 400 && e.contains("--max-pixels"), "{s} {e}");
    let f = multipart::Form::new().part("picture", multipart::Part::bytes(jpeg.clone()).file_name("a.jpg"));
    let (s, e) = failure(c.post(&detection).multipart(f).send().unwrap());
    assert!(s == 400 && e.contains("`image`"), "{s} {e}");
    let (s, e) = failure(
        c.post(&detection).multipart(form(jpeg.clone(), "a.jpg").text("min_confidence", "high")).send().unwrap(),
    );
    assert!(s == 400 && e.contains("min_confidence"), "{s} {e}");
    // A multipart body cut off before its closing boundary.
    let mut cut = b"--XyZ\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.jpg\"\r\n\r\n".to_vec();
    cut.extend_from_slice(&jpeg[..1000]);
    let r = c.post(&detection).header("content-type", "multipart/form-data; boundary=XyZ").body(cut).send().unwrap();
    let (s, e) = failure(r);
    assert!(s == 400 && e.contains("multipart"), "{s} {e}");
    let (s, e) = failure(c.post(&detection).body(jpeg.clone()).send().unwrap());
    assert!(s == 400 && e.contains("multipart"), "{s} {e}");
    let (s, e) =
        failure(c.post(server.url("/v1/vision/custom/nope")).multipart(form(jpeg.clone(), "a.jpg")).send().unwrap());
    assert!(s == 404 && e.contains("nope"), "{s} {e}");
    let (s, _) = failure(c.post(server.url("/v1/detect?model=nope")).body(jpeg.clone()).send().unwrap());
    assert_eq!(s, 404);
    for q in ["conf=2", "format=xml", "imgsz=0", "classes=a", "max_det=-1"] {
        let (s, e) = failure(c.post(server.url(&format!("/v1/detect?{q}"))).body(jpeg.clone()).send().unwrap());
        assert_eq!(s, 400, "{q}: {e}");
    }
    let (s, e) = failure(c.post(server.url("/v1/detect")).body(vec![0u8; 300_000]).send().unwrap());
    assert!(s == 413 && e.contains("--max-body"), "{s} {e}");
    // A whole multipart body with its length, as curl sends it (reqwest's blocking multipart
    // streams its body and reports the early answer as a send error instead).
    let mut big = b"--XyZ\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.jpg\"\r\n\r\n".to_vec();
    big.extend(vec![7u8; 300_000]);
    big.extend(b"\r\n--XyZ--\r\n");
    let r = c.post(&detection).header("content-type", "multipart/form-data; boundary=XyZ").body(big).send().unwrap();
    assert_eq!(failure(r).0, 413);
    assert_eq!(c.get(server.url("/nope")).send().unwrap().status().as_u16(), 404);
    // The server is still fine.
    assert_eq!(c.post(&detection).multipart(form(jpeg, "a.jpg")).send().unwrap().status().as_u16(), 200);
}

#[test]
fn the_token_is_required_when_set() {
    let server = Server::start(&["--model", &int8_model(), "--token", "s3cret"]);
    let c = client();
    let jpeg = std::fs::read(val("val_0000.jpg")).unwrap();
    let detection = server.url("/v1/vision/detection");
    let (s, _) = failure(c.post(&detection).multipart(form(jpeg.clone(), "a.jpg")).send().unwrap());
    assert_eq!(s, 401);
    // The key comes before the image, as DeepStack's Python client and Frigate send it
    // (requests writes `data` fields before `files`).
    let keyed = |key: &str| {
        multipart::Form::new()
            .text("api_key", key.to_string())
            .part("image", multipart::Part::bytes(jpeg.clone()).file_name("a.jpg"))
    };
    let (s, _) = failure(c.post(&detection).multipart(keyed("wrong")).send().unwrap());
    assert_eq!(s, 401);
    let r = c.post(&detection).multipart(keyed("s3cret")).send().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // After the image, the key comes too late: the image is not read without it.
    let (s, e) =
        failure(c.post(&detection).multipart(form(jpeg.clone(), "a.jpg").text("api_key", "s3cret")).send().unwrap());
    assert!(s == 401 && e.contains("before the image"), "{s} {e}");
    let r = c.post(&detection).bearer_auth("s3cret").multipart(form(jpeg.clone(), "a.jpg")).send().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(c.post(server.url("/v1/detect")).body(jpeg.clone()).send().unwrap().status().as_u16(), 401);
    let r = c.post(server.url("/v1/detect")).bearer_auth("s3cret").body(jpeg).send().unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

/// A 4000 x 3000 JPEG of noise: long enough to decode that requests pile up behind it.
pub(crate) fn large_jpeg() -> Vec<u8> {
    let (w, h) = (4000u32, 3000u32);
    let mut state = 0x2545_f491u32;
    let data: Vec<u8> = (0..w * h * 3)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state >> 24) as u8
        })
        .collect();
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
        .encode(&data, w, h, image::ExtendedColorType::Rgb8)
        .unwrap();
    out
}

#[test]
fn a_full_queue_answers_503_at_once() {
    let server = Server::start(&["--model", &int8_model(), "--threads", "1", "--queue", "1", "--max-body", "50000000"]);
    let big = std::sync::Arc::new(large_jpeg());
    let url = server.url("/v1/detect");
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let (big, url) = (big.clone(), url.clone());
            std::thread::spawn(move || {
                let r = client().post(url).body(big.to_vec()).send().unwrap();
                (r.status().as_u16(), r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string()))
            })
        })
        .collect();
    let answers: Vec<(u16, Option<String>)> = clients.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(answers.iter().any(|(s, _)| *s == 200), "{answers:?}");
    assert!(answers.iter().any(|(s, _)| *s == 503), "{answers:?}");
    assert!(answers.iter().all(|(s, retry)| *s == 200 || (*s == 503 && retry.as_deref() == Some("1"))), "{answers:?}");
    let metrics = client().get(server.url("/metrics")).send().unwrap().text().unwrap();
    assert!(metrics.contains("status=\"503\""), "{metrics}");
}

#[test]
fn slow_headers_are_dropped() {
    let server = Server::start(&["--model", &int8_model(), "--read-timeout", "1"]);
    let mut s = TcpStream::connect(server.addr()).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = Vec::new();
    // The server closes the connection (with or without a 408) instead of waiting.
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    assert!(buf.is_empty() || text.starts_with("HTTP/1.1 408"), "{text}");
}

#[cfg(unix)]
#[test]
fn sigterm_finishes_the_request_in_flight_and_exits_0() {
    let mut server = Server::start(&["--model", &int8_model()]);
    let jpeg = std::fs::read(val("val_0000.jpg")).unwrap();
    let mut s = TcpStream::connect(server.addr()).unwrap();
    let head = format!("POST /v1/detect?format=yolo HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n", jpeg.len());
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(&jpeg[..jpeg.len() / 2]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: kill(2) on the child's own pid.
    assert_eq!(unsafe { libc::kill(server.child.id() as i32, libc::SIGTERM) }, 0);
    std::thread::sleep(Duration::from_millis(300));
    assert!(TcpStream::connect(server.addr()).is_err(), "still accepting after SIGTERM");
    s.write_all(&jpeg[jpeg.len() / 2..]).unwrap();
    let mut answer = String::new();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\r\n\r\n3 0.9"), "{answer}");
    let status = server.child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{}", server.log());
    assert!(server.log().contains("stopped"), "{}", server.log());
}
