//! The calibration against ONNX Runtime and the observers against PPQ, on the repository's
//! fixtures.

mod calibrate;
mod gptq;
mod observers;
