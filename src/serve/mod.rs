//! `qdet serve`: the detector as an HTTP service, for the programs that already call one.
//!
//! - [`deepstack`]: the DeepStack / CodeProject.AI detection API NVRs speak;
//! - [`native`]: qdet's own API (`detect`'s options, JSON / labelme / YOLO answers), models,
//!   health and metrics;
//! - [`body`]: reading uploads within the size and time limits, and the token check;
//! - [`work`]: one image through the detector, as `detect` runs it;
//! - [`queue`]: the inference workers and their bounded queue (503 when full);
//! - [`metrics`]: the Prometheus text; [`error`]: every failure's status code; [`heap`]:
//!   the memory of a burst given back once idle;
//! - [`server`]: connections, their timeouts, and the graceful stop; [`hyper_errors`]: JSON
//!   bodies for the answers hyper makes itself.
//!
//! The server is hyper's HTTP/1.1 connection driver under an axum router, on a small tokio
//! runtime that only moves bytes: every model is loaded and warmed before the port opens,
//! images are decoded and detected on the workers, and SIGTERM or Ctrl-C closes the port,
//! lets the requests in flight finish and returns.

mod body;
mod deepstack;
mod error;
mod heap;
mod hyper_errors;
mod metrics;
mod native;
mod queue;
mod server;
mod work;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;

use crate::detector::Detector;
use error::ApiError;

/// How long requests in flight get to finish after SIGTERM before the server gives up on them.
const DRAIN: Duration = Duration::from_secs(30);

/// What `qdet serve`'s flags decide.
pub(crate) struct Config {
    pub bind: SocketAddr,
    pub threads: usize,
    pub queue: usize,
    pub max_body: usize,
    /// Bytes of uploads read or waiting at once; over it, new uploads get 503 unread.
    pub max_inflight_bytes: usize,
    /// A request that waited longer for a worker is answered 503 instead of run.
    pub deadline: Option<Duration>,
    pub token: Option<String>,
    /// For the request headers and, separately, for the body.
    pub read_timeout: Duration,
    /// `/v1/models` shows each model's path, not only its file name.
    pub show_paths: bool,
}

/// A model served under a name.
pub(crate) struct Served {
    pub name: String,
    pub det: Detector,
}

impl Served {
    /// Runs the model once on a grey image of its input size, so the first request does not
    /// pay for building the plan.
    pub(crate) fn warm(&self) -> crate::Result<()> {
        let (h, w) = self.det.target();
        let grey = crate::image_io::RgbImage { width: w, height: h, data: vec![114; w * h * 3] };
        self.det.detect(&grey).map(|_| ())
    }
}

pub(super) struct State {
    /// The default model first.
    models: Vec<Arc<Served>>,
    pool: queue::Pool,
    metrics: metrics::Metrics,
    token: Option<String>,
    max_body: usize,
    budget: body::Budget,
    heap: heap::Heap,
    read_timeout: Duration,
    show_paths: bool,
}

type AppState = Arc<State>;

impl State {
    /// The model named `name`, or the default one.
    fn model(&self, name: Option<&str>) -> Result<Arc<Served>, ApiError> {
        let found = match name {
            None | Some("") => self.models.first(),
            Some(n) => self.models.iter().find(|m| m.name == n),
        };
        found.cloned().ok_or_else(|| {
            let names: Vec<&str> = self.models.iter().map(|m| m.name.as_str()).collect();
            ApiError::NotFound(format!("no model {:?} (served: {})", name.unwrap_or(""), names.join(", ")))
        })
    }
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/vision/detection", post(deepstack::detection))
        .route("/v1/vision/custom/{name}", post(deepstack::custom))
        .route("/v1/detect", post(native::detect))
        .route("/v1/models", get(native::models))
        .route("/healthz", get(native::healthz))
        .route("/metrics", get(native::metrics))
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(axum::middleware::from_fn_with_state(state.clone(), count))
        .with_state(state)
}

/// Counts every answer by route template and status, and times it.
async fn count(axum::extract::State(state): axum::extract::State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = req.extensions().get::<MatchedPath>().map_or("other", |p| p.as_str()).to_string();
    // Monitoring polls do not keep the server from being quiet.
    let _open = (route != "/metrics" && route != "/healthz").then(|| state.heap.open());
    let response = next.run(req).await;
    state.metrics.count_request(&route, response.status().as_u16(), start.elapsed().as_secs_f64());
    response
}

/// Gives the heap back to the system once the server has been quiet for a second after a
/// burst (see [`heap`]).
async fn trim_when_idle(state: AppState) {
    let mut watch = heap::IdleWatch::default();
    let mut every = tokio::time::interval(Duration::from_millis(500));
    loop {
        every.tick().await;
        if watch.should_trim(state.heap.activity(), state.heap.due()) {
            let state = state.clone();
            let _ = tokio::task::spawn_blocking(move || state.heap.trim()).await;
        }
    }
}

/// Serves `models` (loaded and warmed, the default first) until SIGTERM or Ctrl-C, then
/// drains. `on_listen` is told the bound address (the port when `--bind` says `:0`).
pub(crate) fn run(config: Config, models: Vec<Served>, on_listen: impl FnOnce(SocketAddr)) -> anyhow::Result<()> {
    let pool =
        queue::Pool::new(config.threads, config.queue, config.deadline).context("starting the inference workers")?;
    let state = Arc::new(State {
        models: models.into_iter().map(Arc::new).collect(),
        pool,
        metrics: metrics::Metrics::default(),
        token: config.token.clone(),
        max_body: config.max_body,
        budget: body::Budget::new(config.max_inflight_bytes),
        heap: heap::Heap::default(),
        read_timeout: config.read_timeout,
        show_paths: config.show_paths,
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("qdet-http")
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let served = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(config.bind)
            .await
            .with_context(|| format!("cannot listen on {}", config.bind))?;
        on_listen(listener.local_addr()?);
        tokio::spawn(trim_when_idle(state.clone()));
        server::serve(listener, router(state.clone()), config.read_timeout).await;
        anyhow::Ok(())
    });
    state.pool.close();
    runtime.shutdown_timeout(Duration::from_secs(1));
    served
}
