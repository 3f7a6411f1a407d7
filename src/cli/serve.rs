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
    /// Require this token: as `Authorization: Bearer TOKEN` or the `api_key` DeepStack clients send.
    #[arg(long)]
    token: Option<String>,
    /// Seconds a client gets to send its request headers, and again its body.
    #[arg(long, default_value_t = 10)]
    read_timeout: u64,
    /// Inference size for dynamic models, `640` or `H,W` [default: the model's metadata imgsz, else 640].
    #[arg(long, value_parser = parse_imgsz)]
    imgsz: Option<(usize, usize)>,
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
    // One image per worker, each on one thread, as `detect` runs over a folder.
    let threads = setup_threads(a.threads, None, usize::MAX)?;
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
        token: a.token,
        read_timeout: Duration::from_secs(a.read_timeout.max(1)),
    };
    let (t, q) = (config.threads, config.queue);
    crate::serve::run(config, models, |addr| {
        eprintln!("qdet serve: listening on http://{addr} ({t} workers, queue {q})");
    })?;
    eprintln!("qdet serve: stopped");
    Ok(ExitCode::SUCCESS)
}
