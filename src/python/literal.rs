//! A parser for the Python literals Ultralytics writes into ONNX `metadata_props`.
//!
//! Ultralytics stores `str(value)` of Python objects (`{0: 'person', 1: "o'clock"}`,
//! `[640, 640]`, `True`), so class names can hold either quote style, escapes and
//! unicode. A regex gets these wrong; a small recursive-descent parser does not.

use std::fmt;

/// A parsed Python literal.
#[derive(Debug, Clone, PartialEq)]
pub enum PyValue {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<PyValue>),
    Dict(Vec<(PyValue, PyValue)>),
}

/// Where and why a literal failed to parse.
#[derive(Debug, Clone, PartialEq)]
pub struct ParseError {
    pub offset: usize,
    pub reason: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.reason, self.offset)
    }
}

impl std::error::Error for ParseError {}

impl PyValue {
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            PyValue::Int(i) => Some(*i),
            PyValue::Float(f) if f.fract() == 0.0 => Some(*f as i64),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            PyValue::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            PyValue::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// Looks a key up in a dict by its string form.
    pub fn get(&self, key: &str) -> Option<&PyValue> {
        match self {
            PyValue::Dict(items) => items.iter().find(|(k, _)| k.as_str() == Some(key)).map(|(_, v)| v),
            _ => None,
        }
    }
}

/// Parses one complete Python literal; trailing characters other than whitespace are an error.
pub fn parse(text: &str) -> Result<PyValue, ParseError> {
    let mut p = Parser { s: text.as_bytes(), text, pos: 0 };
    let v = p.value()?;
    p.ws();
    if p.pos != p.s.len() {
        return Err(p.err("unexpected trailing characters"));
    }
    Ok(v)
}

struct Parser<'a> {
    s: &'a [u8],
    text: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn err(&self, reason: &str) -> ParseError {
        ParseError { offset: self.pos, reason: reason.to_string() }
    }

    fn ws(&mut self) {
        while self.pos < self.s.len() && self.s[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn value(&mut self) -> Result<PyValue, ParseError> {
        self.ws();
        match self.peek() {
            None => Err(self.err("unexpected end of input")),
            Some(b'{') => self.dict(),
            Some(b'[') => self.seq(b']').map(PyValue::List),
            Some(b'(') => self.seq(b')').map(PyValue::List),
            Some(b'\'') | Some(b'"') => self.string().map(PyValue::Str),
            Some(c) if c == b'-' || c == b'+' || c == b'.' || c.is_ascii_digit() => self.number(),
            Some(c) if c.is_ascii_alphabetic() => self.word(),
            Some(_) => Err(self.err("unexpected character")),
        }
    }

    fn dict(&mut self) -> Result<PyValue, ParseError> {
        self.pos += 1;
        let mut items = Vec::new();
        loop {
            self.ws();
            if self.peek() == Some(b'}') {
                self.pos += 1;
                return Ok(PyValue::Dict(items));
            }
            let k = self.value()?;
            self.ws();
            if self.peek() != Some(b':') {
                return Err(self.err("expected ':' in dict"));
            }
            self.pos += 1;
            let v = self.value()?;
            items.push((k, v));
            self.ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {}
                _ => return Err(self.err("expected ',' or '}' in dict")),
            }
        }
    }

    fn seq(&mut self, close: u8) -> Result<Vec<PyValue>, ParseError> {
        self.pos += 1;
        let mut items = Vec::new();
        loop {
            self.ws();
            if self.peek() == Some(close) {
                self.pos += 1;
                return Ok(items);
            }
            items.push(self.value()?);
            self.ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(c) if c == close => {}
                _ => return Err(self.err("expected ',' or closing bracket")),
            }
        }
    }

    fn string(&mut self) -> Result<String, ParseError> {
        let quote = self.s[self.pos];
        self.pos += 1;
        let mut out = String::new();
        loop {
            // Work on chars, not bytes: names may be any unicode.
            let rest = &self.text[self.pos..];
            let mut chars = rest.chars();
            let c = chars.next().ok_or_else(|| self.err("unterminated string"))?;
            self.pos += c.len_utf8();
            if c as u32 == quote as u32 {
                return Ok(out);
            }
            if c != '\\' {
                out.push(c);
                continue;
            }
            let e = self.text[self.pos..].chars().next().ok_or_else(|| self.err("unterminated escape"))?;
            self.pos += e.len_utf8();
            match e {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                '0' => out.push('\0'),
                '\\' | '\'' | '"' => out.push(e),
                'x' => out.push(self.hex_escape(2)?),
                'u' => out.push(self.hex_escape(4)?),
                'U' => out.push(self.hex_escape(8)?),
                _ => {
                    // Python keeps unknown escapes verbatim.
                    out.push('\\');
                    out.push(e);
                }
            }
        }
    }

    fn hex_escape(&mut self, n: usize) -> Result<char, ParseError> {
        let digits = self.text.get(self.pos..self.pos + n).ok_or_else(|| self.err("short hex escape"))?;
        let code = u32::from_str_radix(digits, 16).map_err(|_| self.err("bad hex escape"))?;
        self.pos += n;
        char::from_u32(code).ok_or_else(|| self.err("escape is not a unicode scalar"))
    }

    fn number(&mut self) -> Result<PyValue, ParseError> {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'+' | b'.' | b'_') {
                self.pos += 1;
            } else {
                break;
            }
        }
        let tok: String = self.text[start..self.pos].chars().filter(|&c| c != '_').collect();
        if let Ok(i) = tok.parse::<i64>() {
            return Ok(PyValue::Int(i));
        }
        match tok.as_str() {
            "inf" | "+inf" => return Ok(PyValue::Float(f64::INFINITY)),
            "-inf" => return Ok(PyValue::Float(f64::NEG_INFINITY)),
            _ => {}
        }
        tok.parse::<f64>()
            .map(PyValue::Float)
            .map_err(|_| ParseError { offset: start, reason: format!("bad number {tok:?}") })
    }

    fn word(&mut self) -> Result<PyValue, ParseError> {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_') {
            self.pos += 1;
        }
        match &self.text[start..self.pos] {
            "None" => Ok(PyValue::None),
            "True" => Ok(PyValue::Bool(true)),
            "False" => Ok(PyValue::Bool(false)),
            "inf" => Ok(PyValue::Float(f64::INFINITY)),
            "nan" => Ok(PyValue::Float(f64::NAN)),
            w => Err(ParseError { offset: start, reason: format!("unknown name {w:?}") }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The strings below are what Python's str() prints for these objects (checked in CPython 3.11).
    #[test]
    fn names_dict_with_both_quote_styles() {
        let v = parse(r#"{0: 'person', 1: "o'clock", 2: 'a\\b', 3: 'caf\xe9'}"#).unwrap();
        let PyValue::Dict(items) = v else { panic!("not a dict") };
        let names: Vec<_> = items.iter().map(|(k, v)| (k.as_i64().unwrap(), v.as_str().unwrap().to_string())).collect();
        assert_eq!(names, vec![(0, "person".into()), (1, "o'clock".into()), (2, "a\\b".into()), (3, "café".into())]);
    }

    #[test]
    fn str_of_string_with_both_quotes_uses_escape() {
        // str({0: 'it\'s "x"'}) in Python prints {0: 'it\'s "x"'}
        let v = parse(r#"{0: 'it\'s "x"'}"#).unwrap();
        assert_eq!(v, PyValue::Dict(vec![(PyValue::Int(0), PyValue::Str("it's \"x\"".into()))]));
    }

    #[test]
    fn scalars_lists_and_args() {
        assert_eq!(parse("[640, 640]").unwrap(), PyValue::List(vec![PyValue::Int(640), PyValue::Int(640)]));
        assert_eq!(parse("32").unwrap(), PyValue::Int(32));
        assert_eq!(parse("32.0").unwrap().as_i64(), Some(32));
        let args = parse("{'batch': 1, 'half': False, 'dynamic': True, 'nms': None, 'conf': 0.25}").unwrap();
        assert_eq!(args.get("half"), Some(&PyValue::Bool(false)));
        assert_eq!(args.get("dynamic").and_then(PyValue::as_bool), Some(true));
        assert_eq!(args.get("nms"), Some(&PyValue::None));
        assert_eq!(args.get("conf"), Some(&PyValue::Float(0.25)));
        assert_eq!(parse("(1, 2,)").unwrap(), PyValue::List(vec![PyValue::Int(1), PyValue::Int(2)]));
        assert_eq!(parse("'\\u4e2d'").unwrap(), PyValue::Str("中".into()));
    }

    #[test]
    fn malformed_literals_are_errors_not_panics() {
        for bad in ["{0: 'a'", "{0 'a'}", "'abc", "[1, 2", "{0: person}", "1 2", "", "'\\x4'"] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
    }
}
