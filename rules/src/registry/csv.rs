//! A small CSV reader after RFC 4180, for registry sheets: fields separated by commas; a field in
//! double quotes may hold commas, line breaks and `""` for a quote. Unquoted fields are trimmed.
//! LF or CRLF line ends; a UTF-8 byte-order mark (as Excel writes) is skipped; blank lines and
//! lines starting with `#` are skipped. Every field keeps its line and column (in characters,
//! 1-based), so a problem can be shown where it is. A malformed record is reported and skipped
//! and reading goes on at the next line.
//!
//! The separators are ASCII, so the reader walks bytes; multi-byte characters (Chinese names and
//! addresses) pass through whole.

/// One field and where it starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    pub value: String,
    pub line: usize,
    pub column: usize,
}

/// One record: its fields, and the line it starts on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub line: usize,
    pub fields: Vec<Field>,
}

/// A record that could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CsvError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

struct Reader<'t> {
    text: &'t str,
    bytes: &'t [u8],
    pos: usize,
    line: usize,
    /// Byte offset where the current line starts.
    line_start: usize,
}

impl Reader<'_> {
    fn column(&self, pos: usize) -> usize {
        self.text[self.line_start..pos].chars().count() + 1
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    /// Moves past one byte, keeping count of lines.
    fn bump(&mut self) {
        if self.bytes[self.pos] == b'\n' {
            self.line += 1;
            self.line_start = self.pos + 1;
        }
        self.pos += 1;
    }

    fn skip_line(&mut self) {
        while let Some(b) = self.peek() {
            self.bump();
            if b == b'\n' {
                break;
            }
        }
    }

    fn skip_blanks(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.bump();
        }
    }

    /// At a record's end: a line end (consumed) or the end of the text.
    fn end_of_record(&mut self) -> bool {
        match self.peek() {
            None => true,
            Some(b'\n') => {
                self.bump();
                true
            }
            Some(b'\r') if self.bytes.get(self.pos + 1) == Some(&b'\n') => {
                self.bump();
                self.bump();
                true
            }
            _ => false,
        }
    }

    /// Whether the line from here holds nothing, or is a comment.
    fn blank_or_comment(&self) -> bool {
        let rest = &self.text[self.pos..];
        let line = rest.split('\n').next().unwrap_or_default().trim();
        line.is_empty() || line.starts_with('#')
    }

    fn quoted(&mut self) -> Result<String, CsvError> {
        let (line, column) = (self.line, self.column(self.pos));
        self.bump();
        let mut value = String::new();
        let mut start = self.pos;
        loop {
            match self.peek() {
                None => {
                    return Err(CsvError { line, column, message: "this quote is never closed".into() });
                }
                Some(b'"') if self.bytes.get(self.pos + 1) == Some(&b'"') => {
                    value.push_str(&self.text[start..=self.pos]);
                    self.bump();
                    self.bump();
                    start = self.pos;
                }
                Some(b'"') => {
                    value.push_str(&self.text[start..self.pos]);
                    self.bump();
                    return Ok(value.replace("\r\n", "\n"));
                }
                Some(_) => self.bump(),
            }
        }
    }

    /// One record from here; on an error the rest of the line is skipped.
    fn record(&mut self) -> Result<Record, CsvError> {
        let line = self.line;
        let mut fields = Vec::new();
        loop {
            self.skip_blanks();
            let (field_line, column) = (self.line, self.column(self.pos));
            let value = if self.peek() == Some(b'"') {
                let value = self.quoted()?;
                self.skip_blanks();
                if !matches!(self.peek(), None | Some(b',' | b'\n' | b'\r')) {
                    return Err(CsvError {
                        line: self.line,
                        column: self.column(self.pos),
                        message: "text after a closing quote (write `\"\"` for a quote inside quotes)".into(),
                    });
                }
                value
            } else {
                let start = self.pos;
                while let Some(b) = self.peek() {
                    match b {
                        b',' | b'\n' => break,
                        b'\r' if self.bytes.get(self.pos + 1) == Some(&b'\n') => break,
                        b'"' => {
                            return Err(CsvError {
                                line: self.line,
                                column: self.column(self.pos),
                                message: "a quote inside an unquoted field (quote the whole field and write `\"\"` for the quote)".into(),
                            });
                        }
                        _ => self.bump(),
                    }
                }
                self.text[start..self.pos].trim().to_string()
            };
            fields.push(Field { value, line: field_line, column });
            if self.peek() == Some(b',') {
                self.bump();
                continue;
            }
            if self.end_of_record() {
                return Ok(Record { line, fields });
            }
        }
    }
}

/// Every record of `text`, in order, or what was wrong with it.
pub fn records(text: &str) -> Vec<Result<Record, CsvError>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut r = Reader { text, bytes: text.as_bytes(), pos: 0, line: 1, line_start: 0 };
    let mut out = Vec::new();
    while r.pos < r.bytes.len() {
        if r.blank_or_comment() {
            r.skip_line();
            continue;
        }
        let result = r.record();
        if result.is_err() {
            r.skip_line();
        }
        out.push(result);
    }
    out
}

/// A field as CSV writes it: quoted when it holds a comma, quote, line break or edge blanks.
pub fn quote(field: &str) -> std::borrow::Cow<'_, str> {
    let needs = field.contains([',', '"', '\n', '\r']) || field.trim() != field || field.starts_with('#');
    if needs {
        format!("\"{}\"", field.replace('"', "\"\"")).into()
    } else {
        field.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(text: &str) -> Vec<Result<Vec<String>, (usize, usize)>> {
        records(text)
            .into_iter()
            .map(|r| {
                r.map(|r| r.fields.into_iter().map(|f| f.value).collect()).map_err(|e| (e.line, e.column))
            })
            .collect()
    }

    fn ok(fields: &[&str]) -> Result<Vec<String>, (usize, usize)> {
        Ok(fields.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn reads_quotes_line_breaks_chinese_and_crlf() {
        let text = "\u{feff}device,name,address\r\n\
                    b1,1号锅炉,\"东城大道 88 号, 东城街道\"\r\n\
                    \n\
                    # a comment\n\
                    b2 , \"2号 \"\"大\"\" 锅炉\" ,\"两行\n地址\"\n\
                    b3,,";
        assert_eq!(
            values(text),
            [
                ok(&["device", "name", "address"]),
                ok(&["b1", "1号锅炉", "东城大道 88 号, 东城街道"]),
                ok(&["b2", "2号 \"大\" 锅炉", "两行\n地址"]),
                ok(&["b3", "", ""]),
            ]
        );
        let r = records(text);
        let b2 = r[2].as_ref().unwrap();
        assert_eq!(b2.line, 5);
        assert_eq!((b2.fields[1].line, b2.fields[1].column), (5, 6));
        let b3 = r[3].as_ref().unwrap();
        assert_eq!(b3.line, 7, "the quoted line break counts");
    }

    #[test]
    fn a_bad_record_is_reported_where_it_is_and_reading_goes_on() {
        let text = "a,b\n1,x\"y\n2,\"z\" w\n3,\"东\"\n4,\"never closed\n5,ok\n";
        assert_eq!(values(text), [ok(&["a", "b"]), Err((2, 4)), Err((3, 7)), ok(&["3", "东"]), Err((5, 3))]);
        let errors: Vec<String> =
            records(text).into_iter().filter_map(|r| r.err()).map(|e| e.message).collect();
        assert!(errors[0].contains("quote inside an unquoted field"), "{errors:?}");
        assert!(errors[1].contains("after a closing quote"), "{errors:?}");
        assert!(errors[2].contains("never closed"), "{errors:?}");
        assert_eq!(values("东城,\"南城\"x\n"), [Err((1, 8))], "columns count characters, not bytes");
    }

    #[test]
    fn quoting_round_trips() {
        for field in ["plain", "a,b", "say \"hi\"", "two\nlines", " padded", "#hash", "东城街道"] {
            let text = format!("{},{}\n", quote(field), quote("x"));
            assert_eq!(values(&text), [ok(&[field, "x"])], "{field}");
        }
    }
}
