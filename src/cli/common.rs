//! What every command shares: threads, progress bars, flag parsers with their range checks,
//! stdout that survives a closed pipe, and the exit status.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};

use crate::progress::Event;

/// Exit status when the run finished but some inputs could not be processed.
const EXIT_SOME_FAILED: u8 = 2;

/// 0 when everything was processed, 2 when some inputs were skipped (and reported).
pub(super) fn exit_status(some_failed: bool) -> ExitCode {
    if some_failed {
        ExitCode::from(EXIT_SOME_FAILED)
    } else {
        ExitCode::SUCCESS
    }
}

/// Sets up the rayon pool (decoding) and the inference threads; returns how many images go
/// through inference at once (`inflight` when given, else one per thread).
///
/// By default every thread gets its own image: on 2 cores that gave 1.72x the images/s of
/// one image on 2 tract threads for the COCO yolov8n at 640 and 1.85x for the fixture model
/// at 320 (docs/performance.md, "Throughput"), because tract's intra-op threading scales poorly there.
/// A single image gets all threads instead, for the lowest latency.
pub(super) fn setup_threads(threads: Option<usize>, inflight: Option<usize>, images: usize) -> anyhow::Result<usize> {
    let n = threads.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    if n == 0 || inflight == Some(0) {
        bail!("--threads and --inflight must be at least 1");
    }
    let inflight = inflight.unwrap_or(n).min(n).min(images.max(1));
    rayon::ThreadPoolBuilder::new().num_threads(n).build_global().context("starting the worker pool")?;
    let per_image = n / inflight;
    if per_image > 1 {
        use tract_linalg::multithread::{set_default_executor, Executor};
        set_default_executor(Executor::multithread(per_image));
        // The command's first and only split of the kernels' threads.
        let _ = crate::kernels::threads::set_threads_for(per_image, inflight);
    }
    Ok(inflight)
}

/// `text` (an error or a problem the library reports) with the flag that changes it, where
/// there is one: the library says what is wrong in its own terms, the command knows its
/// flags: a file kept because it exists (`--overwrite`) and the decoder's pixel limit
/// (`--max-pixels`, after the limit's number).
pub(super) fn with_flag_hint(text: impl std::fmt::Display) -> String {
    const HINT: &str = " (pass --overwrite to replace it)";
    let mut text = text.to_string();
    if text.ends_with("already exists") {
        return text + HINT;
    }
    if let Some(at) = text.find(crate::image_io::PIXEL_LIMIT) {
        let number = at + crate::image_io::PIXEL_LIMIT.len();
        let end = text[number..].find(|c: char| !c.is_ascii_digit()).map_or(text.len(), |n| number + n);
        text.insert_str(end, " (--max-pixels)");
    }
    text
}

/// A progress bar on stderr counting `unit`, shown only when stderr is a terminal (logs and
/// pipes get the per-file messages and the summary only).
pub(super) fn progress_bar(len: u64, unit: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    if let Ok(style) =
        ProgressStyle::with_template(&format!("{{bar:40}} {{pos}}/{{len}} {unit}, {{per_sec}}, eta {{eta}}"))
    {
        bar.set_style(style);
    }
    bar
}

/// Moves `bar` on a batch command's progress events and names a skipped input at once.
pub(super) fn ticker(bar: &ProgressBar) -> impl Fn(Event) + Sync + '_ {
    move |event| match event {
        Event::Stage(name, n) => {
            bar.set_position(0);
            bar.set_length(n as u64);
            bar.set_message(name);
        }
        Event::Step(problem) => {
            if let Some(p) = problem {
                bar.suspend(|| eprintln!("qdet: skipped {}", with_flag_hint(p)));
            }
            bar.inc(1);
        }
    }
}

/// Writes `text` to stdout. A closed stdout (`qdet ... | head`) is the reader's choice, not
/// an error: the run's files are written and its exit status stands.
pub(super) fn print_stdout(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e).context("writing to stdout"),
        _ => Ok(()),
    }
}

/// `value` as pretty JSON on stdout, closed pipes tolerated as in [`print_stdout`].
pub(super) fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    print_stdout(&(serde_json::to_string_pretty(value)? + "\n"))
}

/// Ultralytics' val table: `%22s` then `%11s` columns, "all" (images, instances, P, R, mAP50,
/// mAP50-95) first, then the classes for a multi-class model (`nc` > 1), as Ultralytics lists them.
pub(super) fn metrics_table(all: (usize, usize, [f64; 4]), classes: &[crate::val::ClassRow], nc: usize) -> String {
    let g3 = |v: f64| crate::python::format_g(v, 3);
    let row = |name: &str, images: usize, inst: usize, v: [f64; 4]| {
        format!("{name:>22}{images:>11}{inst:>11}{:>11}{:>11}{:>11}{:>11}\n", g3(v[0]), g3(v[1]), g3(v[2]), g3(v[3]))
    };
    let mut t = format!(
        "{:>22}{:>11}{:>11}{:>11}{:>11}{:>11}{:>11}\n",
        "Class", "Images", "Instances", "Box(P", "R", "mAP50", "mAP50-95)"
    );
    t += &row("all", all.0, all.1, all.2);
    if nc > 1 {
        for c in classes {
            let m = &c.metrics;
            t += &row(&c.name, m.images, m.instances, [m.precision, m.recall, m.map50, m.map50_95]);
        }
    }
    t
}
