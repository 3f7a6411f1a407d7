//! The sample outputs in docs/ are what the commands print today. Each sample is a fenced
//! block after a `<!-- sample: NAME -->` line: `$ COMMAND` then the output. This test runs
//! every sample's command on the bundled fixture and compares; timings are masked, as they
//! differ from run to run. `QDET_BLESS=1 cargo test --release --test it docs_samples`
//! writes what the commands print into the docs instead.
//!
//! The runs cap the CPU at the AVX2 class (`QDET_CPU=avx2`): every CI machine has AVX2, and
//! the same kernels give the same bits on all of them, so a float printed to 8 digits does
//! not change with the machine the test runs on.

use std::path::Path;

use crate::util::*;

const CPU: (&str, &str) = ("QDET_CPU", "avx2");

/// A documented sample: where it is and how to make its output.
struct Sample {
    doc: &'static str,
    name: &'static str,
    command: &'static str,
    run: fn(&str) -> String,
}

const SAMPLES: [Sample; 3] = [
    Sample {
        doc: "docs/detect.md",
        name: "detect-two-images",
        command: "qdet detect --model models/shapes-yolov8n.onnx datasets/shapes/images/val/val_0001.jpg \
                  datasets/shapes/images/val/val_0002.jpg --save-txt",
        run: run_cli,
    },
    Sample {
        doc: "docs/val.md",
        name: "val-reference",
        command: "qdet val --model models/shapes-yolov8n.int8.onnx --reference models/shapes-yolov8n.onnx \
                  --images datasets/shapes/images/val",
        run: run_cli,
    },
    Sample {
        doc: "docs/serve.md",
        name: "deepstack",
        command: "curl -F image=@datasets/shapes/images/val/val_0001.jpg -F min_confidence=0.5 \
                  http://127.0.0.1:32168/v1/vision/detection",
        run: run_deepstack,
    },
];

/// Runs a `qdet` sample command from a scratch folder that sees the repository's models
/// and datasets under their own names, so the printed paths are the documented ones and
/// outputs land in the scratch folder.
fn run_cli(command: &str) -> String {
    let d = tempfile::tempdir().unwrap();
    for dir in ["models", "datasets"] {
        std::os::unix::fs::symlink(root().join(dir), d.path().join(dir)).unwrap();
    }
    let args: Vec<&str> = command.split_whitespace().skip(1).collect();
    let o = command_in(d.path()).args(&args).output().unwrap();
    assert!(o.status.success(), "{command}: {}", stderr(&o));
    // The table goes to stdout and the rest to stderr; a terminal shows them in this order.
    format!("{}{}", String::from_utf8_lossy(&o.stdout), stderr(&o))
}

fn command_in(dir: &Path) -> std::process::Command {
    let mut c = command();
    c.current_dir(dir).env(CPU.0, CPU.1);
    c
}

/// The DeepStack answer of `qdet serve --model models/shapes-yolov8n.onnx` to the curl call.
fn run_deepstack(_: &str) -> String {
    let model = root().join("models/shapes-yolov8n.onnx");
    let server = Server::start_with_env(&["--model", model.to_str().unwrap()], &[CPU]);
    let form = reqwest::blocking::multipart::Form::new()
        .file("image", root().join("datasets/shapes/images/val/val_0001.jpg"))
        .unwrap()
        .text("min_confidence", "0.5");
    let r = reqwest::blocking::Client::new().post(server.url("/v1/vision/detection")).multipart(form).send().unwrap();
    assert_eq!(r.status(), 200);
    r.text().unwrap() + "\n"
}

/// The text with its timings replaced by `#`: a JSON `...Ms` or `duration` value, and the
/// numbers of a `mean ms per image` line.
fn mask(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let line = match line.find("mean ms per image") {
            Some(i) => format!("{}mean ms per image: #", &line[..i]),
            None => line.to_string(),
        };
        let mut rest = line.as_str();
        while let Some(i) = ["Ms\":", "\"duration\":"].iter().filter_map(|k| rest.find(k).map(|i| i + k.len())).min() {
            out.push_str(&rest[..i]);
            rest = rest[i..].trim_start_matches(|c: char| c.is_ascii_digit());
            out.push('#');
        }
        out.push_str(rest);
        out.push('\n');
    }
    out
}

/// The text of the sample's block (after its `$` line), and where the block's body is.
fn block(doc: &str, name: &str) -> Option<(String, std::ops::Range<usize>)> {
    let marker = format!("<!-- sample: {name} -->");
    let at = doc.find(&marker)?;
    let open = at + doc[at..].find("```")?;
    let body = open + doc[open..].find('\n')? + 1;
    let end = body + doc[body..].find("\n```")? + 1;
    let text = &doc[body..end];
    let output = text.split_once('\n').map(|(_, o)| o).unwrap_or("");
    Some((output.to_string(), body..end))
}

fn shown_command(command: &str) -> String {
    format!("$ {}\n", command.split_whitespace().collect::<Vec<_>>().join(" "))
}

#[test]
fn docs_samples_are_what_the_commands_print() {
    let bless = std::env::var_os("QDET_BLESS").is_some();
    let mut stale = Vec::new();
    for s in &SAMPLES {
        let path = root().join(s.doc);
        let doc = std::fs::read_to_string(&path).unwrap();
        let Some((shown, range)) = block(&doc, s.name) else {
            panic!("{}: no `<!-- sample: {} -->` followed by a fenced block", s.doc, s.name)
        };
        let printed = (s.run)(s.command);
        if bless {
            let mut new = doc.clone();
            new.replace_range(range, &(shown_command(s.command) + &printed));
            std::fs::write(&path, new).unwrap();
        } else if mask(&shown) != mask(&printed) || !doc[range].starts_with(&shown_command(s.command)) {
            stale.push(format!("{} ({}): shown\n{shown}\nprinted\n{printed}", s.doc, s.name));
        }
    }
    assert!(
        stale.is_empty(),
        "stale samples (QDET_BLESS=1 cargo test --release --test it docs_samples rewrites them):\n{}",
        stale.join("\n")
    );
}

#[test]
fn mask_hides_timings_only() {
    assert_eq!(
        mask("{\"count\":4,\"inferenceMs\":47,\"processMs\":48,\"duration\":9}\nx 0.9 mean ms per image: decode 1.0\n"),
        "{\"count\":4,\"inferenceMs\":#,\"processMs\":#,\"duration\":#}\nx 0.9 mean ms per image: #\n"
    );
}
