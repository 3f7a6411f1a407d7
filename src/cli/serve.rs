//! `qdet serve`: its flags, loading and warming every model, and starting the server of
//! [`crate::serve`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;

use super::common::setup_threads;
use crate::detector::Detector;
use crate::options::parse_imgsz;
use crate::postprocess::NmsOptions;
use crate::serve::{Config, Served};

#[derive(Args)]
pub(super) struct ServeArgs {
    /// A model to serve, `NAME=PATH` or `PATH` (named after the file's stem); repeat for more.
    /// The first is the default (`/v1/vision/detection`); the others are `/v1/vision/custom/NAME`.
    #[arg(long = "model", required = true, value_parser = parse_model, value_name = "[NAME=]PATH")]
    models: Vec<(String, PathBuf)>,
    /// Address to listen on, `HOST:PORT` (`0.0.0.0:32168`, `localhost:8080`); the default is
    /// loopback only (CodeProject.AI's port).
    #[arg(long, default_value = "127.0.0.1:32168", value_parser = crate::options::parse_bind)]
    bind: SocketAddr,
    /// Inference workers, each detecting one image at a time [default: all cores].
    #[arg(long)]
    threads: Option<usize>,
    /// Requests that may wait for a worker; more are answered 503 at once [default: 2 x threads].
    #[arg(long)]
    queue: Option<usize>,
    /// Largest request body in bytes; larger ones are answered 413.
    #[arg(long, default_value_t = 20_000_000, value_name = "BYTES")]
    max_body: usize,
    /// Bytes of uploads being read or waiting for a worker at once, each counted at its
    /// declared length (--max-body when it declares none); an upload that does not fit now is
    /// answered 503 before its body is read [default: 4 x --max-body].
    #[arg(long, value_name = "BYTES")]
    max_inflight_bytes: Option<usize>,
    /// Answer 503 to a request that waited longer than this for a worker, instead of
    /// detecting late (an NVR has given up on it by then) [default: no deadline].
    #[arg(long, value_name = "MS")]
    deadline_ms: Option<u64>,
    /// Require this token: as `Authorization: Bearer TOKEN` or the `api_key` DeepStack clients send.
    #[arg(long)]
    token: Option<String>,
    /// Seconds a client gets to send its request headers, and again its body.
    #[arg(long, default_value_t = 10)]
    read_timeout: u64,
    /// Inference size for dynamic models, `640` or `H,W` [default: the model's metadata imgsz, else 640].
    #[arg(long, value_parser = parse_imgsz)]
    imgsz: Option<(usize, usize)>,
    /// `/v1/models` shows each model's full path (by default only its file name).
    #[arg(long)]
    show_paths: bool,
}

/// `--model`: `NAME=PATH`, or `PATH` named after its stem.
fn parse_model(s: &str) -> Result<(String, PathBuf), String> {
    let named =
        s.split_once('=').filter(|(n, _)| !n.is_empty() && n.chars().all(|c| c.is_alphanumeric() || "-_.".contains(c)));
    let (name, path) = match named {
        Some((n, p)) => (n.to_string(), PathBuf::from(p)),
        None => {
            let path = PathBuf::from(s);
            let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            (stem, path)
        }
    };
    if name.is_empty() || path.as_os_str().is_empty() {
        return Err(format!("{s:?} is not PATH or NAME=PATH"));
    }
    Ok((name, path))
}

pub(super) fn serve(a: ServeArgs) -> anyhow::Result<ExitCode> {
    if a.threads == Some(0) {
        bail!("--threads must be at least 1");
    }
    for (i, (name, _)) in a.models.iter().enumerate() {
        if a.models[..i].iter().any(|(n, _)| n == name) {
            bail!("two models are named {name:?}: name them with --model NAME=PATH");
        }
    }
    let max_inflight_bytes = a.max_inflight_bytes.unwrap_or(a.max_body.saturating_mul(4));
    if max_inflight_bytes < a.max_body {
        bail!("--max-inflight-bytes {max_inflight_bytes} is below --max-body {}: no upload of the largest size would ever be read", a.max_body);
    }
    // One image per worker, as `detect` runs over a folder; and one team of all the threads
    // for the kernels, which an inference takes whenever no other holds it: a lone request
    // runs on every core, as `qdet bench --threads N` does, and concurrent ones on one each.
    let threads = setup_threads(a.threads, None, usize::MAX)?;
    // `setup_threads` left the kernels' threads unsplit (one image per thread): this is the
    // first split.
    let _ = crate::kernels::threads::set_threads_for(threads, 1);
    let mut models = Vec::new();
    for (name, path) in &a.models {
        let start = Instant::now();
        let det =
            Detector::load(path, a.imgsz, NmsOptions::default()).with_context(|| format!("loading model {name:?}"))?;
        let served = Served { name: name.clone(), det };
        served.warm().with_context(|| format!("warming model {name:?}"))?;
        let (h, w) = served.det.target();
        eprintln!(
            "qdet serve: model {name} ({}, {w}x{h}) ready in {:.1} s",
            path.display(),
            start.elapsed().as_secs_f64()
        );
        models.push(served);
    }
    let config = Config {
        bind: a.bind,
        threads,
        queue: a.queue.unwrap_or(2 * threads),
        max_body: a.max_body,
        max_inflight_bytes,
        deadline: a.deadline_ms.map(Duration::from_millis),
        token: a.token,
        read_timeout: Duration::from_secs(a.read_timeout.max(1)),
        show_paths: a.show_paths,
    };
    let (t, q) = (config.threads, config.queue);
    crate::serve::run(config, models, |addr| {
        eprintln!("qdet serve: listening on http://{addr} ({t} workers, queue {q})");
    })?;
    eprintln!("qdet serve: stopped");
    Ok(ExitCode::SUCCESS)
}
