//! Pascal VOC XML annotations (one `<annotation>` per image), as written by the VOC devkit,
//! LabelImg, CVAT and labelme's VOC export.
//!
//! Read leniently where real exporters differ (labelme writes empty `<difficult/>`, CVAT may
//! write a zero `<size>`, coordinates may be integers or floats) and strictly where a guess
//! would give a wrong box: a missing or non-numeric coordinate is an error naming the line.

use std::path::Path;

use roxmltree::{Document, Node};

use crate::error::{Error, Result};

/// One annotation file.
#[derive(Debug, Clone, PartialEq)]
pub struct VocAnnotation {
    /// `<filename>`, the image's file name (usually in `../JPEGImages/`).
    pub filename: Option<String>,
    /// `<path>`, where the annotating tool found the image (often on another machine).
    pub path: Option<String>,
    /// `(width, height)` from `<size>`; `None` when missing, empty or zero, so the caller
    /// reads it from the image instead.
    pub size: Option<(u32, u32)>,
    pub objects: Vec<VocObject>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct VocObject {
    pub name: String,
    /// `<difficult>1</difficult>`; an empty or missing tag is 0, as in the VOC devkit.
    pub difficult: bool,
    /// `[xmin, ymin, xmax, ymax]` exactly as written (not clipped, not shifted).
    pub bbox: [f64; 4],
    /// 1-based line of the `<object>` element, for messages.
    pub line: u32,
}

/// Reads and parses one VOC XML file.
pub fn read(path: &Path) -> Result<VocAnnotation> {
    let text = crate::input::read_text(path, crate::input::TEXT_LIMIT)?;
    parse(&text, path)
}

/// Parses the text of a VOC XML file; `path` is only used in error messages.
pub fn parse(text: &str, path: &Path) -> Result<VocAnnotation> {
    let doc =
        Document::parse(text).map_err(|e| Error::format(path, format!("line {}: invalid XML: {e}", e.pos().row)))?;
    let lines = Lines::of(text);
    let bad = |node: Node, reason: String| Error::format(path, format!("line {}: {reason}", lines.of_node(node)));
    let root = doc.root_element();
    if root.tag_name().name() != "annotation" {
        return Err(bad(
            root,
            format!("not a Pascal VOC file: the root element is <{}>, not <annotation>", root.tag_name().name()),
        ));
    }
    let mut size = None;
    if let Some(s) = child(root, "size") {
        let dim = |tag: &str| -> Result<Option<f64>> {
            match child(s, tag) {
                None => Ok(None),
                Some(n) => number(n).map_err(|r| bad(n, r)),
            }
        };
        // A zero or empty size means "unknown" in CVAT and labelImg exports: read the image.
        if let (Some(w), Some(h)) = (dim("width")?, dim("height")?) {
            for (v, tag) in [(w, "width"), (h, "height")] {
                if v > f64::from(MAX_SIDE) {
                    let n = child(s, tag).unwrap_or(s);
                    return Err(bad(n, format!("<{tag}> {v} is larger than any image (at most {MAX_SIDE})")));
                }
            }
            if w >= 1.0 && h >= 1.0 {
                size = Some((w.round() as u32, h.round() as u32));
            }
        }
    }
    let mut objects = Vec::new();
    for obj in root.children().filter(|n| n.has_tag_name("object")) {
        let name = child(obj, "name").and_then(|n| n.text()).map(str::trim).unwrap_or("");
        if name.is_empty() {
            return Err(bad(obj, "<object> without a <name>".into()));
        }
        let difficult = match child(obj, "difficult") {
            None => false,
            Some(n) => match n.text().map(str::trim).unwrap_or("") {
                "" | "0" | "false" => false,
                "1" | "true" => true,
                other => return Err(bad(n, format!("<difficult> must be 0 or 1, not {other:?}"))),
            },
        };
        let bndbox = child(obj, "bndbox").ok_or_else(|| bad(obj, format!("object {name:?} has no <bndbox>")))?;
        let mut bbox = [0.0; 4];
        for (v, tag) in bbox.iter_mut().zip(["xmin", "ymin", "xmax", "ymax"]) {
            let n =
                child(bndbox, tag).ok_or_else(|| bad(bndbox, format!("object {name:?}: <bndbox> has no <{tag}>")))?;
            *v = number(n)
                .map_err(|r| bad(n, r))?
                .ok_or_else(|| bad(n, format!("object {name:?}: <{tag}> is empty")))?;
        }
        objects.push(VocObject { name: name.to_string(), difficult, bbox, line: lines.of_node(obj) });
    }
    let text_of =
        |tag: &str| child(root, tag).and_then(|n| n.text()).map(str::trim).filter(|t| !t.is_empty()).map(String::from);
    Ok(VocAnnotation { filename: text_of("filename"), path: text_of("path"), size, objects })
}

/// The first child element named `tag` (direct children only: `<part>` boxes inside an
/// `<object>` have their own `<bndbox>` and must not be taken for the object's).
fn child<'a, 'i>(node: Node<'a, 'i>, tag: &str) -> Option<Node<'a, 'i>> {
    node.children().find(|n| n.has_tag_name(tag))
}

/// The element's number, `None` when it is empty; `500`, `500.0` and ` 500 ` all read as 500.
fn number(node: Node) -> std::result::Result<Option<f64>, String> {
    let t = node.text().map(str::trim).unwrap_or("");
    if t.is_empty() {
        return Ok(None);
    }
    match t.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(Some(v)),
        _ => Err(format!("<{}> is not a number: {t:?}", node.tag_name().name())),
    }
}

/// The largest `<width>` or `<height>` taken as a size: a million pixels a side.
pub const MAX_SIDE: u32 = 1_000_000;

/// Where each line starts, to give a node's line by binary search: roxmltree's
/// `text_pos_at` counts from the start of the text on every call, which made a file of
/// 40000 objects take 73 s.
struct Lines(Vec<usize>);

impl Lines {
    fn of(text: &str) -> Lines {
        Lines(std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect())
    }

    /// 1-based line of the node's start.
    fn of_node(&self, node: Node) -> u32 {
        self.0.partition_point(|&start| start <= node.range().start) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_difficult_is_zero_and_lines_are_counted() {
        let xml = "<annotation>\n<filename>a.b.jpg</filename>\n<size><width>500</width><height>375.0</height><depth>3</depth></size>\n\
            <object>\n<name> dog </name><difficult/>\n<bndbox><xmin>1</xmin><ymin>2.5</ymin><xmax>30</xmax><ymax>40</ymax></bndbox>\n\
            <part><name>head</name><bndbox><xmin>9</xmin><ymin>9</ymin><xmax>9</xmax><ymax>9</ymax></bndbox></part></object>\n\
            <object><name>cat</name><difficult>1</difficult><bndbox><xmin>0</xmin><ymin>0</ymin><xmax>5</xmax><ymax>5</ymax></bndbox></object>\n\
            </annotation>";
        let a = parse(xml, Path::new("x.xml")).unwrap();
        assert_eq!(a.filename.as_deref(), Some("a.b.jpg"));
        assert_eq!(a.size, Some((500, 375)));
        assert_eq!(a.objects.len(), 2);
        assert_eq!(
            a.objects[0],
            VocObject { name: "dog".into(), difficult: false, bbox: [1.0, 2.5, 30.0, 40.0], line: 4 }
        );
        assert!(a.objects[1].difficult);
        assert_eq!(a.objects[1].line, 8);
    }

    /// Every object's line from one index: linear in the file, not quadratic.
    #[test]
    fn many_objects_get_their_lines() {
        let obj = "<object><name>a</name><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>3</xmax><ymax>4</ymax></bndbox></object>\n";
        let xml = format!("<annotation>\n{}</annotation>", obj.repeat(40_000));
        let a = parse(&xml, Path::new("x.xml")).unwrap();
        assert_eq!(a.objects.len(), 40_000);
        assert_eq!((a.objects[0].line, a.objects[39_999].line), (2, 40_001));
    }

    #[test]
    fn zero_or_missing_size_is_unknown() {
        let a =
            parse("<annotation><size><width>0</width><height>0</height></size></annotation>", Path::new("x")).unwrap();
        assert_eq!(a.size, None);
        let a = parse("<annotation><filename/></annotation>", Path::new("x")).unwrap();
        assert_eq!((a.size, a.filename), (None, None));
    }

    #[test]
    fn errors_name_file_and_line() {
        let cases = [
            ("<annotation>\n<object>\n<name>a</name>\n<bndbox><xmin>1</xmin><ymin>x</ymin><xmax>3</xmax><ymax>4</ymax></bndbox></object></annotation>", "line 4", "not a number"),
            ("<annotation>\n\n<object><name>a</name><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>3</xmax></bndbox></object></annotation>", "line 3", "no <ymax>"),
            ("<annotation>\n<object><name>a</name><difficult>2</difficult></object></annotation>", "line 2", "must be 0 or 1"),
            ("<annotation>\n<object>\n<name>a</name>\n</annotation>", "line 4: invalid XML", "at 4:1"),
            ("<html></html>", "line 1", "not a Pascal VOC"),
            ("<annotation>\n<size><width>640</width>\n<height>99999999999</height></size></annotation>", "line 3", "<height> 99999999999 is larger than any image"),
        ];
        for (xml, line, why) in cases {
            let e = parse(xml, Path::new("ann/b.xml")).unwrap_err().to_string();
            assert!(e.starts_with("ann/b.xml: ") && e.contains(line) && e.contains(why), "{e}");
        }
    }
}
