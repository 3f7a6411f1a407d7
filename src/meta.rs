//! Model metadata: class names, stride, input size and task, as Ultralytics exports them,
//! plus the class-name files (`names.txt`, `data.yaml`) users give for models without it.

use std::collections::BTreeMap;
use std::path::Path;

use yaml_rust2::Yaml;

use crate::error::{Error, Result};
use crate::python::{self, PyValue};

/// What qdet needs to know about a model beyond its graph.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ModelMeta {
    /// Class names indexed by class id; empty when the model carries none.
    pub names: Vec<String>,
    pub stride: Option<u32>,
    /// Training/export input size as (height, width).
    pub imgsz: Option<(u32, u32)>,
    pub task: Option<String>,
    pub end2end: bool,
    /// Every `metadata_props` entry as stored, for tools that rewrite the model.
    pub props: BTreeMap<String, String>,
}

impl ModelMeta {
    /// Reads Ultralytics' keys out of the raw `metadata_props`. Keys that fail to parse are
    /// reported as errors, because silently losing class names gives wrong labels.
    pub fn from_props(props: BTreeMap<String, String>, path: &Path) -> Result<ModelMeta> {
        let lit = |key: &str| -> Result<Option<PyValue>> {
            match props.get(key) {
                None => Ok(None),
                Some(text) => python::parse(text)
                    .map(Some)
                    .map_err(|e| Error::format(path, format!("metadata {key:?} = {text:?}: {e}"))),
            }
        };
        let names = match lit("names")? {
            None => Vec::new(),
            Some(v) => names_from_value(&v).map_err(|r| Error::format(path, format!("metadata \"names\": {r}")))?,
        };
        let stride = lit("stride")?.and_then(|v| v.as_i64()).filter(|&s| s > 0).map(|s| s as u32);
        let imgsz = match lit("imgsz")? {
            Some(PyValue::List(v)) if v.len() == 2 => match (v[0].as_i64(), v[1].as_i64()) {
                (Some(h), Some(w)) if h > 0 && w > 0 => Some((h as u32, w as u32)),
                _ => None,
            },
            Some(v) => v.as_i64().filter(|&s| s > 0).map(|s| (s as u32, s as u32)),
            None => None,
        };
        let task = props.get("task").cloned();
        let end2end = lit("end2end")?.and_then(|v| v.as_bool()).unwrap_or(false);
        Ok(ModelMeta { names, stride, imgsz, task, end2end, props })
    }

    /// The label for a class id: its name, or the id itself when the model has no names.
    pub fn label(&self, class: usize) -> String {
        self.names.get(class).cloned().unwrap_or_else(|| class.to_string())
    }
}

/// Turns `{0: 'a', 1: 'b'}` or `['a', 'b']` into a dense list; gaps get their numeric id.
fn names_from_value(v: &PyValue) -> std::result::Result<Vec<String>, String> {
    let pairs: Vec<(usize, String)> = match v {
        PyValue::Dict(items) => items
            .iter()
            .map(|(k, v)| {
                let id = k
                    .as_i64()
                    .filter(|&i| (0..MAX_CLASSES as i64).contains(&i))
                    .ok_or("class ids must be small non-negative integers")?;
                let name = v.as_str().ok_or("class names must be strings")?;
                Ok((id as usize, name.to_string()))
            })
            .collect::<std::result::Result<_, &str>>()?,
        PyValue::List(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| v.as_str().map(|s| (i, s.to_string())).ok_or("class names must be strings"))
            .collect::<std::result::Result<_, &str>>()?,
        _ => return Err("expected a dict or a list of class names".into()),
    };
    Ok(dense(pairs))
}

fn dense(pairs: Vec<(usize, String)>) -> Vec<String> {
    let n = pairs.iter().map(|(i, _)| i + 1).max().unwrap_or(0);
    let mut names: Vec<String> = (0..n).map(|i| i.to_string()).collect();
    for (i, name) in pairs {
        names[i] = name;
    }
    names
}

/// Reads class names from `data.yaml` (Ultralytics: `names` as a list or an id->name map)
/// or from a text file with one name per line (blank lines ignored).
pub fn read_names_file(path: &Path) -> Result<Vec<String>> {
    let text = crate::input::read_text(path, crate::input::TEXT_LIMIT)?;
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    if ext == "yaml" || ext == "yml" {
        names_from_yaml(&text).map_err(|r| Error::format(path, r))
    } else {
        Ok(text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect())
    }
}

/// Most classes a model or dataset may name: class ids are indices into a list of names, so a
/// file claiming `nc: 1000000000` must not make qdet allocate a billion of them (COCO has 80,
/// Objects365 365, the largest open-vocabulary sets a few thousand).
pub const MAX_CLASSES: usize = 100_000;

/// Class names from the text of an Ultralytics dataset yaml.
pub fn names_from_yaml(text: &str) -> std::result::Result<Vec<String>, String> {
    let doc = &crate::yaml::load(text)?;
    let names = &doc["names"];
    let scalar = |y: &Yaml| -> Option<String> {
        match y {
            Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
            Yaml::Integer(i) => Some(i.to_string()),
            Yaml::Boolean(b) => Some(b.to_string()),
            _ => None,
        }
    };
    match names {
        Yaml::Array(items) => items
            .iter()
            .map(|y| scalar(y).ok_or_else(|| "every entry of \"names\" must be a string".to_string()))
            .collect(),
        Yaml::Hash(map) => {
            let pairs = map
                .iter()
                .map(|(k, v)| {
                    let id = k
                        .as_i64()
                        .filter(|&i| (0..MAX_CLASSES as i64).contains(&i))
                        .ok_or("\"names\" keys must be class ids")?;
                    let name = scalar(v).ok_or("\"names\" values must be strings")?;
                    Ok((id as usize, name))
                })
                .collect::<std::result::Result<Vec<_>, &str>>()?;
            Ok(dense(pairs))
        }
        Yaml::BadValue => Err("no \"names\" key".into()),
        _ => Err("\"names\" must be a list or a map".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    // Values copied from the metadata_props of a real Ultralytics 8.4 ONNX export.
    #[test]
    fn ultralytics_export_metadata() {
        let m = ModelMeta::from_props(
            props(&[
                ("names", "{0: 'person', 1: 'bicycle', 2: \"o'clock\"}"),
                ("stride", "32"),
                ("imgsz", "[640, 640]"),
                ("task", "detect"),
                ("batch", "1"),
            ]),
            Path::new("m.onnx"),
        )
        .unwrap();
        assert_eq!(m.names, vec!["person", "bicycle", "o'clock"]);
        assert_eq!(m.stride, Some(32));
        assert_eq!(m.imgsz, Some((640, 640)));
        assert_eq!(m.task.as_deref(), Some("detect"));
        assert!(!m.end2end);
        assert_eq!(m.label(2), "o'clock");
        assert_eq!(m.label(7), "7");
    }

    #[test]
    fn sparse_ids_and_rectangular_imgsz() {
        let m = ModelMeta::from_props(props(&[("names", "{0: 'a', 2: 'c'}"), ("imgsz", "[384, 640]")]), Path::new("m"))
            .unwrap();
        assert_eq!(m.names, vec!["a", "1", "c"]);
        assert_eq!(m.imgsz, Some((384, 640)));
    }

    #[test]
    fn broken_names_is_an_error_naming_the_file() {
        let e = ModelMeta::from_props(props(&[("names", "{0: 'a'")]), Path::new("best.onnx")).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("best.onnx") && msg.contains("names"), "{msg}");
    }

    #[test]
    fn yaml_names_list_and_map() {
        assert_eq!(names_from_yaml("names: [cat, dog]\n").unwrap(), vec!["cat", "dog"]);
        assert_eq!(
            names_from_yaml("path: .\nnames:\n  0: cat\n  1: \"o'clock\"\n  2: 3\n").unwrap(),
            vec!["cat", "o'clock", "3"]
        );
        assert!(names_from_yaml("train: x\n").is_err());
        assert!(names_from_yaml("names: [cat\n").is_err());
    }
}
