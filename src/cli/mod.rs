//! The `qdet` command line: the clap tree and the dispatch. Each command's flags and its
//! printing live in their own file; the work is in the library modules they call.
//!
//! It is part of the library (hidden from its docs) rather than of the binary so that the
//! rest of the library can stay `pub(crate)`: the binary only calls [`main`].

mod agreement;
mod bench;
mod calibrate;
/// Also the flag parsers `serve` applies to its query parameters, so both say the same.
mod common;
mod dataset;
mod detect;
mod env;
mod serve;
mod signal;
mod val;
mod video;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "qdet",
    version,
    about = "Quantized YOLO detection on the CPU: Ultralytics-exact boxes, labelme and YOLO outputs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Largest image to decode, in pixels (width x height after decoding); larger files are
    /// reported and skipped from their header, before any memory is allocated for them.
    #[arg(long, global = true, default_value_t = crate::image_io::DEFAULT_MAX_PIXELS, value_name = "N")]
    max_pixels: u64,
}

#[derive(Subcommand)]
enum Command {
    /// Detect objects in images and write labelme JSON / YOLO txt / annotated images.
    Detect(detect::DetectArgs),
    /// Convert annotations: labelme JSON, YOLO txt, Pascal VOC XML -> YOLO txt or labelme JSON.
    Convert(dataset::ConvertArgs),
    /// Split images and labels into Ultralytics images/{train,val} + labels/{train,val} with a data.yaml.
    Split(dataset::SplitArgs),
    /// Make augmented copies of labelme-annotated images, with their shapes moved along.
    Augment(dataset::AugmentArgs),
    /// Time models on this machine: latency per stage (p50/p90/p99) and the ratio between them.
    Bench(bench::BenchArgs),
    /// Quantize a model to int8 (QDQ ONNX) from sample images, with per-layer error analysis.
    Calibrate(calibrate::CalibrateArgs),
    /// Score a model on a labelled dataset split: P, R, mAP50, mAP50-95 as Ultralytics computes them;
    /// or, with --reference, its agreement with another model on unlabelled images.
    Val(val::ValArgs),
    /// Serve models over HTTP: the DeepStack / CodeProject.AI detection API and qdet's own.
    Serve(serve::ServeArgs),
}

/// The kernels' options from the environment ([`env`]), for the process. `QDET_CPU` caps
/// tract's kernels too (the few ops it still runs), through tract's own `TRACT_CPU_ISA` unless
/// that is set: tract reads it once, so it is set here, first thing, while the process has
/// one thread.
fn set_up_kernels() {
    let options = env::runtime_options();
    // Nothing has fixed the options before this first thing the command does.
    if let Err(e) = options.apply() {
        eprintln!("qdet: {e}");
    }
    if let (Some(spec), None) = (options.cpu.tract_isa(), std::env::var_os("TRACT_CPU_ISA")) {
        std::env::set_var("TRACT_CPU_ISA", spec);
    }
}

/// Runs the command line; the exit status is the one docs/detect.md tabulates ("Exit status").
pub fn main() -> ExitCode {
    set_up_kernels();
    // clap exits with 2 on a bad flag; docs/detect.md's table says 1 ("nothing done: bad flags").
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { ExitCode::FAILURE } else { ExitCode::SUCCESS };
            // Printing fails only when stdout/stderr is closed; nothing is left to report to.
            let _ = e.print();
            return code;
        }
    };
    crate::image_io::set_max_pixels(cli.max_pixels);
    let result = match cli.command {
        Command::Detect(args) => detect::detect(args),
        Command::Convert(args) => dataset::convert(args),
        Command::Split(args) => dataset::split(args),
        Command::Augment(args) => dataset::augment(args),
        Command::Val(args) => val::val(args),
        Command::Calibrate(args) => calibrate::calibrate(args),
        Command::Bench(args) => bench::bench(args),
        Command::Serve(args) => serve::serve(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("qdet: error: {}", common::with_flag_hint(format!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}
