//! Shared by every integration test: running the `qdet` binary, fixture paths, reading its
//! outputs, and the reference detections with their matching rule.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use qdet::Detection;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

/// The repository (`cargo test` also runs the binaries from here).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The fixture model, as an argument of `--model`.
pub fn model() -> String {
    root().join("models/shapes-yolov8n.onnx").to_string_lossy().into_owned()
}

/// An image of the fixture dataset's val split.
pub fn val(name: &str) -> PathBuf {
    root().join("datasets/shapes/images/val").join(name)
}

/// The hand-written fixtures of the dataset commands.
pub fn fixtures() -> PathBuf {
    root().join("tests/data/dataset")
}

/// The `qdet` binary `cargo test` built, to add arguments to.
pub fn command() -> Command {
    Command::new(env!("CARGO_BIN_EXE_qdet"))
}

/// Runs `qdet args` in `cwd`.
pub fn qdet(args: &[&str], cwd: &Path) -> Output {
    command().args(args).current_dir(cwd).output().expect("qdet runs")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The `--json` summary of a run.
pub fn summary(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("no JSON summary ({e}): {}", stderr(o)))
}

/// Copies a fixture folder into `dest` (tests never write into the repository).
pub fn copy_tree(from: &Path, dest: &Path) {
    for entry in walkdir::WalkDir::new(from) {
        let entry = entry.unwrap();
        let to = dest.join(entry.path().strip_prefix(from).unwrap());
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&to).unwrap();
        } else {
            std::fs::copy(entry.path(), &to).unwrap();
        }
    }
}

pub fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

pub fn json(p: &Path) -> Value {
    serde_json::from_str(&read(p)).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A JSON file of the repository (`rel` to its root) as `T`.
pub fn load_json<T: DeserializeOwned>(rel: &str) -> T {
    let p = root().join(rel);
    serde_json::from_str(&read(&p)).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The files below `dir`, relative and sorted: the results of a run, without the marker
/// `detect` leaves in its output folder (`.qdet-output`, tested in `cli_detect`).
pub fn tree(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = walkdir::WalkDir::new(dir)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file() && e.file_name() != ".qdet-output")
        .map(|e| e.path().strip_prefix(dir).unwrap().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// The class names of an Ultralytics dataset yaml (`names:` as a list or as `id: name`), read
/// with yaml-rust2 itself rather than qdet's reader.
pub fn yaml_names(p: &Path) -> Vec<String> {
    use yaml_rust2::{Yaml, YamlLoader};
    let docs = YamlLoader::load_from_str(&read(p)).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let name = |y: &Yaml| -> String {
        y.as_str().unwrap_or_else(|| panic!("{}: a name is not a string: {y:?}", p.display())).to_string()
    };
    match &docs[0]["names"] {
        Yaml::Array(items) => items.iter().map(name).collect(),
        Yaml::Hash(map) => {
            let mut pairs: Vec<(i64, String)> =
                map.iter().map(|(k, v)| (k.as_i64().expect("class ids as keys"), name(v))).collect();
            pairs.sort();
            assert!(pairs.iter().enumerate().all(|(i, (id, _))| *id == i as i64), "{}: ids {pairs:?}", p.display());
            pairs.into_iter().map(|(_, n)| n).collect()
        }
        other => panic!("{}: names is {other:?}", p.display()),
    }
}

/// The rectangles of a labelme file as (label, [x1, y1, x2, y2]).
pub fn rects(file: &Value) -> Vec<(String, [f64; 4])> {
    file["shapes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let p = s["points"].as_array().unwrap();
            let xy = |i: usize, j: usize| p[i][j].as_f64().unwrap();
            (s["label"].as_str().unwrap().to_string(), [xy(0, 0), xy(0, 1), xy(1, 0), xy(1, 1)])
        })
        .collect()
}

/// A small PNG: background grey-blue, with filled rectangles `[x1, y1, x2, y2)` in colours.
pub fn write_png(path: &Path, w: u32, h: u32, rects: &[([u32; 4], [u8; 3])]) {
    let mut img = image::RgbImage::from_pixel(w, h, image::Rgb([40, 60, 80]));
    for (r, c) in rects {
        for y in r[1]..r[3] {
            for x in r[0]..r[2] {
                img.put_pixel(x, y, image::Rgb(*c));
            }
        }
    }
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    img.save(path).unwrap();
}

/// Boxes must agree to within one pixel of the source image.
pub const BOX_TOL_PX: f32 = 1.0;
/// Confidences must agree to within this.
pub const CONF_TOL: f32 = 2e-3;

/// Reference detections (tests/data/parity/*.json, tests/data/arch/*.json).
#[derive(Deserialize)]
pub struct Reference {
    pub conf: f32,
    pub images: std::collections::BTreeMap<String, RefImage>,
}

#[derive(Deserialize)]
pub struct RefImage {
    pub width: usize,
    pub height: usize,
    pub detections: Vec<RefDet>,
}

#[derive(Deserialize, Clone, Debug)]
pub struct RefDet {
    pub class: usize,
    pub conf: f32,
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
}

pub fn load_reference(rel: &str) -> Reference {
    load_json(rel)
}

fn close(d: &Detection, r: &RefDet, box_tol: f32, conf_tol: f32) -> bool {
    d.class == r.class
        && (d.score - r.conf).abs() <= conf_tol
        && d.bbox.iter().zip(r.bbox).all(|(a, b)| (a - b).abs() <= box_tol)
}

/// Pairs qdet's detections with the reference's. Every detection clearly above the
/// threshold on either side must have a partner; ones within `conf_tol` of the threshold
/// may legitimately exist on one side only. Returns a list of problems (empty when equal).
pub fn compare(image: &Path, got: &[Detection], want: &[RefDet], thr: f32, box_tol: f32, conf_tol: f32) -> Vec<String> {
    let mut problems = Vec::new();
    let mut used = vec![false; got.len()];
    for r in want {
        let partner = (0..got.len()).find(|&i| !used[i] && close(&got[i], r, box_tol, conf_tol));
        match partner {
            Some(i) => used[i] = true,
            None if r.conf <= thr + conf_tol => {}
            None => problems.push(format!("{}: reference {:?} has no match in {:?}", image.display(), r, got)),
        }
    }
    for (i, d) in got.iter().enumerate() {
        if !used[i] && d.score > thr + conf_tol {
            problems.push(format!("{}: qdet {:?} is not in the reference {:?}", image.display(), d, want));
        }
    }
    problems
}

/// A `qdet serve` process on a free loopback port, killed when dropped.
pub struct Server {
    pub child: std::process::Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Server {
    /// Starts `qdet serve --bind 127.0.0.1:0 ARGS` and waits until it listens (every model
    /// loaded and warm).
    pub fn start(args: &[&str]) -> Server {
        Server::start_with_env(args, &[])
    }

    /// As [`Server::start`], with environment variables set for the server.
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Server {
        use std::io::BufRead;
        let mut child = command()
            .args(["serve", "--bind", "127.0.0.1:0"])
            .args(args)
            .envs(env.iter().copied())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("qdet serve starts");
        let stderr = child.stderr.take().unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let _ = tx.send(rest.split_whitespace().next().unwrap_or_default().to_string());
                }
                sink.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        let base = rx.recv_timeout(std::time::Duration::from_secs(120)).unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("qdet serve did not start: {}", log.lock().unwrap())
        });
        Server { child, base, log }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `host:port`, for raw TCP clients.
    pub fn addr(&self) -> String {
        self.base.trim_start_matches("http://").to_string()
    }

    /// What the server wrote to stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
