//! `qdet._qdet`: the detector for Python. The Python package (`python/qdet/`) wraps it: PIL
//! images, batches and the commands that run the bundled `qdet` binary are there; here is
//! what must run without the GIL: decoding and inference.

use std::path::PathBuf;

use numpy::{PyArray1, PyArray2, PyReadonlyArray3, PyUntypedArrayMethods};
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyValueError};
use pyo3::prelude::*;

use qdet::formats::labelme::{LabelmeFile, Shape};
use qdet::{Detection, NmsOptions, RgbImage};

create_exception!(_qdet, QdetError, PyException, "A qdet failure: an unreadable model or image, with the reason.");

fn error(e: impl std::fmt::Display) -> PyErr {
    QdetError::new_err(e.to_string())
}

/// A loaded model with its detection options; calls release the GIL.
#[pyclass(frozen, module = "qdet._qdet")]
struct Detector {
    inner: qdet::Detector,
}

#[pymethods]
impl Detector {
    #[new]
    // The Python signature: one keyword argument per `qdet detect` flag.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (model, conf=0.25, iou=0.7, imgsz=None, classes=None, max_det=300, agnostic=false))]
    fn new(
        py: Python<'_>,
        model: PathBuf,
        conf: f32,
        iou: f32,
        imgsz: Option<(usize, usize)>,
        classes: Option<Vec<usize>>,
        max_det: usize,
        agnostic: bool,
    ) -> PyResult<Detector> {
        for (name, v) in [("conf", conf), ("iou", iou)] {
            if !(0.0..=1.0).contains(&v) {
                return Err(PyValueError::new_err(format!("{name} must be between 0 and 1, not {v}")));
            }
        }
        let mut nms = NmsOptions::default().with_conf(conf).with_iou(iou);
        nms.max_det = max_det;
        nms.agnostic = agnostic;
        nms.classes = classes;
        let inner = py.detach(|| qdet::Detector::load(&model, imgsz, nms)).map_err(error)?;
        Ok(Detector { inner })
    }

    /// Class names by id.
    #[getter]
    fn names(&self) -> Vec<String> {
        self.inner.names().to_vec()
    }

    /// `(height, width)` of the model input.
    #[getter]
    fn imgsz(&self) -> (usize, usize) {
        self.inner.target()
    }

    /// Detections in an image file (EXIF-upright, as `qdet detect` reads it).
    fn detect_path(&self, py: Python<'_>, path: PathBuf) -> PyResult<Detections> {
        py.detach(|| {
            let image = qdet::read_image(&path)?;
            self.run(image)
        })
        .map_err(error)
    }

    /// Detections in encoded image bytes (JPEG, PNG, BMP, TIFF, WebP).
    fn detect_bytes(&self, py: Python<'_>, data: &[u8]) -> PyResult<Detections> {
        py.detach(|| {
            let image = qdet::decode_image(data)
                .map_err(|reason| qdet::Error::Invalid(format!("cannot read the image: {reason}")))?;
            self.run(image)
        })
        .map_err(error)
    }

    /// Detections in an `HxWx3` uint8 array, RGB (`bgr=True`: BGR, as OpenCV gives frames).
    #[pyo3(signature = (array, bgr=false))]
    fn detect_array(&self, py: Python<'_>, array: PyReadonlyArray3<'_, u8>, bgr: bool) -> PyResult<Detections> {
        let shape = array.shape();
        if shape[2] != 3 {
            return Err(PyValueError::new_err(format!(
                "expected an HxWx3 array (RGB, or BGR with bgr=True), got shape {shape:?}"
            )));
        }
        let (height, width) = (shape[0], shape[1]);
        // One copy, in the layout the letterbox reads; from any strides numpy hands over.
        let mut data: Vec<u8> = match array.as_slice() {
            Ok(s) => s.to_vec(),
            Err(_) => array.as_array().iter().copied().collect(),
        };
        py.detach(|| {
            if bgr {
                data.chunks_exact_mut(3).for_each(|p| p.swap(0, 2));
            }
            self.run(RgbImage::new(width, height, data)?)
        })
        .map_err(error)
    }
}

impl Detector {
    fn run(&self, image: RgbImage) -> qdet::Result<Detections> {
        let dets = self.inner.detect(&image)?;
        Ok(Detections {
            dets,
            names: self.inner.names().to_vec(),
            width: image.width as u32,
            height: image.height as u32,
        })
    }
}

/// The detections in one image: boxes in its pixels, scores, class ids.
#[pyclass(frozen, module = "qdet._qdet")]
struct Detections {
    dets: Vec<Detection>,
    names: Vec<String>,
    width: u32,
    height: u32,
}

#[pymethods]
impl Detections {
    /// `Nx4` float32 boxes `x1, y1, x2, y2` in pixels of the (upright) image.
    #[getter]
    fn xyxy<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let rows: Vec<Vec<f32>> = self.dets.iter().map(|d| d.bbox.to_vec()).collect();
        if rows.is_empty() {
            return Ok(PyArray2::zeros(py, [0, 4], false));
        }
        PyArray2::from_vec2(py, &rows).map_err(|e| PyValueError::new_err(e.to_string()))
    }

    /// float32 scores.
    #[getter]
    fn conf<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f32>> {
        PyArray1::from_iter(py, self.dets.iter().map(|d| d.score))
    }

    /// int64 class ids.
    #[getter]
    fn cls<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<i64>> {
        PyArray1::from_iter(py, self.dets.iter().map(|d| d.class as i64))
    }

    #[getter]
    fn names(&self) -> Vec<String> {
        self.names.clone()
    }

    /// `(height, width)` of the image.
    #[getter]
    fn shape(&self) -> (u32, u32) {
        (self.height, self.width)
    }

    fn __len__(&self) -> usize {
        self.dets.len()
    }

    /// Row `i` as `(x1, y1, x2, y2, conf, cls, name)`.
    fn row(&self, i: usize) -> PyResult<(f32, f32, f32, f32, f32, usize, String)> {
        let d = self.dets.get(i).ok_or_else(|| pyo3::exceptions::PyIndexError::new_err(i))?;
        let [x1, y1, x2, y2] = d.bbox;
        Ok((x1, y1, x2, y2, d.score, d.class, self.label(d.class)))
    }

    /// The labelme JSON `qdet detect` writes for this image, with `imagePath` as given.
    #[pyo3(signature = (image_path="image.jpg"))]
    fn to_labelme(&self, image_path: &str) -> PyResult<String> {
        let shapes = self.dets.iter().map(|d| Shape::from_detection(d, self.label(d.class))).collect();
        let file = LabelmeFile::new(image_path.to_string(), self.width, self.height, shapes);
        String::from_utf8(file.to_json()).map_err(error)
    }

    /// The YOLO txt lines `qdet detect --save-txt` writes (`save_conf`: with the score).
    #[pyo3(signature = (save_conf=false))]
    fn to_yolo(&self, save_conf: bool) -> String {
        qdet::formats::yolo::detections_to_txt(&self.dets, self.width, self.height, save_conf)
    }
}

impl Detections {
    fn label(&self, class: usize) -> String {
        self.names.get(class).cloned().unwrap_or_else(|| class.to_string())
    }
}

/// Kernel threads per inference, as `qdet --threads` gives one image: fixed by the first
/// call, a later call with another count raises.
#[pyfunction]
fn set_threads(n: usize) -> PyResult<()> {
    qdet::RuntimeOptions::default().with_threads(n.max(1)).apply().map_err(error)
}

#[pymodule]
fn _qdet(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Detector>()?;
    m.add_class::<Detections>()?;
    m.add_function(wrap_pyfunction!(set_threads, m)?)?;
    m.add("QdetError", m.py().get_type::<QdetError>())?;
    Ok(())
}
