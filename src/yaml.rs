//! Loading the YAML files users hand qdet (dataset `data.yaml`, class lists) within bounds:
//! YAML aliases expand into copies, so 437 bytes of nested anchors ("billion laughs") load
//! as gigabytes. The event stream is walked first, counting the nodes the document expands
//! to (an alias counts as the size of what it names) and its nesting depth; only a document
//! within both limits is built.

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;
use yaml_rust2::{Yaml, YamlLoader};

/// Nodes a document may expand to, aliases included: a dataset yaml has tens to thousands.
pub const MAX_NODES: u64 = 1_000_000;
/// Nesting depth of sequences and mappings.
pub const MAX_DEPTH: usize = 64;

/// The first document of `text`, or why it was refused.
pub fn load(text: &str) -> Result<Yaml, String> {
    let mut budget = Budget::default();
    Parser::new_from_str(text).load(&mut budget, true).map_err(|e| format!("invalid YAML: {e}"))?;
    if let Some(why) = budget.refused {
        return Err(why);
    }
    let mut docs = YamlLoader::load_from_str(text).map_err(|e| format!("invalid YAML: {e}"))?;
    if docs.is_empty() {
        return Err("empty YAML file".into());
    }
    Ok(docs.swap_remove(0))
}

#[derive(Default)]
struct Budget {
    /// Nodes so far, aliases expanded.
    nodes: u64,
    /// Each open collection's anchor id and the node count where it started.
    open: Vec<(usize, u64)>,
    /// Expanded size of each anchor seen, by id.
    sizes: Vec<u64>,
    refused: Option<String>,
}

impl Budget {
    fn anchored(&mut self, id: usize, size: u64) {
        if id > 0 {
            if self.sizes.len() <= id {
                self.sizes.resize(id + 1, 0);
            }
            self.sizes[id] = size;
        }
    }
}

impl MarkedEventReceiver for Budget {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.refused.is_some() {
            return;
        }
        match ev {
            Event::Scalar(_, _, id, _) => {
                self.nodes += 1;
                self.anchored(id, 1);
            }
            Event::SequenceStart(id, _) | Event::MappingStart(id, _) => {
                self.open.push((id, self.nodes));
                self.nodes += 1;
                if self.open.len() > MAX_DEPTH {
                    self.refused = Some(format!("line {}: nested more than {MAX_DEPTH} levels deep", mark.line()));
                }
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some((id, start)) = self.open.pop() {
                    let size = self.nodes - start;
                    self.anchored(id, size);
                }
            }
            Event::Alias(id) => self.nodes = self.nodes.saturating_add(self.sizes.get(id).copied().unwrap_or(1)),
            _ => {}
        }
        if self.refused.is_none() && self.nodes > MAX_NODES {
            self.refused = Some(format!(
                "line {}: its aliases expand to more than {MAX_NODES} values (a YAML alias bomb?)",
                mark.line()
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Nine levels of ten aliases each: 10^9 values if expanded.
    fn laughs() -> String {
        let mut s =
            String::from("a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
        for (prev, name) in
            ["a", "b", "c", "d", "e", "f", "g", "h"].iter().zip(["b", "c", "d", "e", "f", "g", "h", "i"])
        {
            let refs = vec![format!("*{prev}"); 10].join(",");
            s += &format!("{name}: &{name} [{refs}]\n");
        }
        s
    }

    #[test]
    fn alias_bombs_are_refused_before_expanding() {
        let text = laughs();
        assert!(text.len() < 500, "{} bytes", text.len());
        let err = load(&text).unwrap_err();
        assert!(err.contains("alias") && err.contains("line"), "{err}");
    }

    #[test]
    fn ordinary_aliases_and_documents_load() {
        let y = load("base: &b {x: 1}\nother: *b\nnames: [a, b]\n").unwrap();
        assert_eq!(y["other"]["x"].as_i64(), Some(1));
        assert_eq!(y["names"][1].as_str(), Some("b"));
        assert_eq!(load("").unwrap_err(), "empty YAML file");
    }

    #[test]
    fn deep_nesting_is_refused() {
        let text = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert!(load(&text).unwrap_err().contains("nested"));
        let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(load(&ok).is_ok());
    }
}
