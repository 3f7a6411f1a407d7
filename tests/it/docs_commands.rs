//! The `qdet` commands the README and docs/ show still parse: every flag they name exists and
//! takes the value shown. Each command line (in `sh` blocks, and the README's inline ones) is
//! run with `--help` appended, so nothing executes; clap stops at the first unknown flag or
//! unparsable value, before `--help`. Optional parts `[--flag value]` are checked too;
//! placeholders become values (`N` -> 2, `[NAME=]PATH` -> PATH, `...` -> a word).

use std::path::Path;

use crate::util::*;

/// `qdet ...` lines of fenced blocks of `text`, and with `inline`, of backquoted spans.
fn commands(text: &str, inline: bool) -> Vec<String> {
    let mut out = Vec::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            if let Some(c) = line.trim().strip_prefix("$ ").or(Some(line.trim())).filter(|c| c.starts_with("qdet ")) {
                out.push(c.to_string());
            }
        } else if inline {
            out.extend(line.split('`').skip(1).step_by(2).filter(|s| s.starts_with("qdet ")).map(String::from));
        }
    }
    out
}

/// The arguments of a documented command line, placeholders filled in.
fn args(command: &str) -> Vec<String> {
    let without_comment = command.split(" #").next().unwrap_or(command);
    without_comment
        .split_whitespace()
        .skip(1)
        .map(|t| t.replace("[NAME=]", "").replace(['[', ']'], ""))
        .filter(|t| !t.is_empty())
        .map(|t| match t.as_str() {
            "N" => "2".to_string(),
            "..." => "more".to_string(),
            _ => t,
        })
        .collect()
}

#[test]
fn every_documented_command_parses() {
    let mut files: Vec<_> = std::fs::read_dir(root().join("docs")).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files.insert(0, root().join("README.md"));
    let mut checked = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let readme = file.ends_with("README.md");
        for c in commands(&text, readme) {
            let mut a = args(&c);
            // `qdet COMMAND --help` and the like name no real subcommand.
            if a.first().is_some_and(|s| s.chars().all(|ch| ch.is_ascii_uppercase())) {
                continue;
            }
            a.push("--help".into());
            let refs: Vec<&str> = a.iter().map(String::as_str).collect();
            let o = qdet(&refs, Path::new("."));
            assert!(o.status.success(), "{}: `{c}` does not parse:\n{}", file.display(), stderr(&o));
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} documented commands found");
}
