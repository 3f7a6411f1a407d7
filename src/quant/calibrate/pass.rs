//! One pass of calibration over its images, on the batch pipeline: decode and letterbox as
//! `detect` does, run a graph on each image, hand the results on in image order.

use std::path::PathBuf;

use crate::detector::{Detector, Prepared};
use crate::error::{Error, Problem, Result};
use crate::image_io::read_rgb;
use crate::pipeline::{self, Clock, Job, Stage};
use crate::progress::{Event, Progress};

/// Everything calibration needs that does not change between passes.
pub(super) struct Setup<'a> {
    pub det: Detector,
    pub images: Vec<PathBuf>,
    pub inflight: usize,
    pub on_event: Progress<'a>,
}

impl Setup<'_> {
    /// Decodes and letterboxes `images` through the batch pipeline, runs `work` on each,
    /// `inflight` at a time, and hands the results to `sink` in image order. Unreadable
    /// images are returned as failures; errors of `work` or `sink` stop the pass.
    pub(super) fn pass<T: Send>(
        &self,
        images: &[PathBuf],
        work: impl Fn(&Prepared) -> Result<T> + Sync,
        mut sink: impl FnMut(usize, T) -> Result<()>,
    ) -> Result<Vec<Problem>> {
        let mut failures = Vec::new();
        let job = PassJob { det: &self.det, images, work };
        pipeline::run(&job, images.len(), self.inflight, |i, result| match result {
            Ok(value) => {
                sink(i, value)?;
                (self.on_event)(Event::Step(None));
                Ok(())
            }
            Err(PassFailure::Image(f)) => {
                (self.on_event)(Event::Step(Some(&f)));
                failures.push(f);
                Ok(())
            }
            Err(PassFailure::Fatal(e)) => Err(e),
        })?;
        Ok(failures)
    }
}

/// One calibration pass over the images, as the batch pipeline runs it.
struct PassJob<'a, W> {
    det: &'a Detector,
    images: &'a [PathBuf],
    work: W,
}

/// An image that cannot be read is skipped; a model that fails on one stops calibration.
enum PassFailure {
    Image(Problem),
    Fatal(Error),
}

impl<T: Send, W: Fn(&Prepared) -> Result<T> + Sync> Job for PassJob<'_, W> {
    type Decoded = Prepared;
    type Output = T;
    type Failure = PassFailure;

    fn decode(&self, index: usize, clock: &mut Clock) -> std::result::Result<Prepared, PassFailure> {
        let path = &self.images[index];
        let img = read_rgb(path).map_err(|e| PassFailure::Image(Problem::new(path.clone(), e.reason())))?;
        clock.lap(Stage::Decode);
        let prepared = self.det.prepare_decoded(&img);
        clock.lap(Stage::Preprocess);
        Ok(prepared)
    }

    fn process(&self, _: usize, prepared: Prepared, clock: &mut Clock) -> std::result::Result<T, PassFailure> {
        let value = (self.work)(&prepared).map_err(PassFailure::Fatal)?;
        clock.lap(Stage::Inference);
        Ok(value)
    }
}
