//! The integration tests, one binary (one link of tract instead of one per file): the `qdet`
//! binary end to end and the library's public API. Tests of the crate's internals are unit
//! tests beside the code they test (`cargo test --lib`).

mod arch_parity;
mod cli_bench;
mod cli_calibrate;
mod cli_detect;
mod dataset_augment;
mod dataset_convert;
mod dataset_split;
mod decode_opencv;
mod docs_commands;
mod docs_samples;
mod families;
mod hostile_inputs;
mod model_load;
mod parity_ultralytics;
mod serve;
mod serve_limits;
mod util;
mod val_agreement;
mod val_cli;
mod val_metrics;
mod video;
mod video_live;
mod video_track;
