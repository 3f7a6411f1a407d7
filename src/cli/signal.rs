//! SIGTERM and Ctrl-C while `detect` reads videos and streams: the first stops every
//! decoder ([`crate::video::stop_all`]), so the frames at hand are finished and every output
//! is closed (the mp4s playable, the JSON lines whole) before the command exits; a second
//! one exits at once. The signals are caught on a thread of their own with tokio, which
//! the command already carries for `serve`.

use std::sync::Once;

use anyhow::Context;

/// Catches the signals from now on (the first call does; later ones return at once).
pub(super) fn stop_videos_on_signal() -> anyhow::Result<()> {
    static ONCE: Once = Once::new();
    let mut result = Ok(());
    ONCE.call_once(|| result = start());
    result
}

fn start() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("catching signals")?;
    let (ready, registered) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("qdet-signals".into())
        .spawn(move || {
            runtime.block_on(async move {
                let mut signals = match Signals::new() {
                    Ok(s) => s,
                    Err(e) => return drop(ready.send(Err(e))),
                };
                let _ = ready.send(Ok(()));
                signals.next().await;
                eprintln!("qdet: stopping: finishing the frames at hand and closing the outputs (again to quit now)");
                crate::video::stop_all();
                signals.next().await;
                std::process::exit(130);
            })
        })
        .context("catching signals")?;
    // Registered before any frame is read: a signal now must not kill the process unclosed.
    registered.recv().context("catching signals")?.context("catching signals")
}

#[cfg(unix)]
struct Signals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl Signals {
    fn new() -> std::io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals { terminate: signal(SignalKind::terminate())?, interrupt: signal(SignalKind::interrupt())? })
    }

    async fn next(&mut self) {
        tokio::select! {
            _ = self.terminate.recv() => {}
            _ = self.interrupt.recv() => {}
        }
    }
}

#[cfg(not(unix))]
struct Signals;

#[cfg(not(unix))]
impl Signals {
    fn new() -> std::io::Result<Signals> {
        Ok(Signals)
    }

    async fn next(&mut self) {
        let _ = tokio::signal::ctrl_c().await;
    }
}
