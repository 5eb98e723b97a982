//! Registry sheets as CSV, read with the `csv` crate (RFC 4180: fields separated by commas; a
//! field in double quotes may hold commas, line breaks and `""` for a quote), which splits the
//! records and unquotes the fields. Around it, this module keeps what registry sheets need:
//! - every field keeps its line and column (in characters, 1-based), so a problem can be shown
//!   where it is;
//! - unquoted fields are trimmed; a quoted field may have blanks around it (` "x" `);
//! - a UTF-8 byte-order mark (as Excel writes) is skipped; blank lines and lines starting with
//!   `#` are skipped; LF or CRLF line ends;
//! - what the crate reads leniently is an error here, since it means a broken sheet: a quote
//!   inside an unquoted field, text after a closing quote, a quote never closed. A malformed
//!   record is reported and skipped and reading goes on at the next record.

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

/// Byte offsets to lines and columns.
struct Positions<'t> {
    text: &'t str,
    line_starts: Vec<usize>,
}

impl<'t> Positions<'t> {
    fn new(text: &'t str) -> Positions<'t> {
        let line_starts = [0].into_iter().chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect();
        Positions { text, line_starts }
    }

    fn line_col(&self, offset: usize) -> (usize, usize) {
        let line = self.line_starts.partition_point(|&s| s <= offset);
        let start = self.line_starts[line - 1];
        (line, self.text[start..offset].chars().count() + 1)
    }

    fn error(&self, offset: usize, message: &str) -> CsvError {
        let (line, column) = self.line_col(offset);
        CsvError { line, column, message: message.to_string() }
    }
}

const NEVER_CLOSED: &str = "this quote is never closed";
const AFTER_CLOSING: &str = "text after a closing quote (write `\"\"` for a quote inside quotes)";
const INSIDE_UNQUOTED: &str =
    "a quote inside an unquoted field (quote the whole field and write `\"\"` for the quote)";

/// The byte offset of the quote that closes the one at `open` (`""` is a quote inside).
fn closing_quote(text: &str, open: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut i = open + 1;
    while i < bytes.len() {
        match (bytes[i], bytes.get(i + 1)) {
            (b'"', Some(b'"')) => i += 2,
            (b'"', _) => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// Where the record really starts: the crate gives the end of the one before, ahead of the line
/// ends, blank lines and comment lines it skipped.
fn record_start(text: &str, mut at: usize) -> usize {
    while at < text.len() {
        match text.as_bytes()[at] {
            b'\r' | b'\n' => at += 1,
            b'#' => at = text[at..].find('\n').map_or(text.len(), |i| at + i + 1),
            _ => break,
        }
    }
    at
}

/// A field the crate read as unquoted because blanks stand before its opening quote.
fn unquote_blank_led(trimmed: &str) -> Option<String> {
    let inner = trimmed.strip_prefix('"')?.strip_suffix('"')?;
    (!inner.replace("\"\"", "").contains('"')).then(|| inner.replace("\"\"", "\"").replace("\r\n", "\n"))
}

/// The fields of the record the crate read at byte `start`, with their positions; `None` for a
/// line that holds only blanks or a comment.
fn located(p: &Positions<'_>, start: usize, record: &csv::StringRecord) -> Result<Option<Record>, CsvError> {
    let text = p.text;
    let blank = |c: char| c == ' ' || c == '\t';
    let quoted_at = |at: usize| text[at..].starts_with('"');
    if let Some(first) = record.get(0).filter(|_| !quoted_at(start)) {
        let first = first.trim_start_matches(blank);
        if (record.len() == 1 && first.is_empty()) || first.starts_with('#') {
            return Ok(None);
        }
    }
    let mut fields = Vec::with_capacity(record.len());
    let mut at = start;
    for value in record.iter() {
        let (field, field_at, end) = if quoted_at(at) {
            let close = closing_quote(text, at).ok_or_else(|| p.error(at, NEVER_CLOSED))?;
            let content = text[at + 1..close].replace("\"\"", "\"");
            // The crate appends what follows the closing quote to the field.
            let after = value.get(content.len()..).unwrap_or_default();
            if let Some(i) = after.find(|c: char| !blank(c)) {
                return Err(p.error(close + 1 + i, AFTER_CLOSING));
            }
            (content.replace("\r\n", "\n"), at, close + 1 + after.len())
        } else {
            let first = at + (value.len() - value.trim_start_matches(blank).len());
            let trimmed = value.trim_matches(blank);
            let field = match value.find('"') {
                None => trimmed.to_string(),
                Some(quote) => {
                    unquote_blank_led(trimmed).ok_or_else(|| p.error(at + quote, INSIDE_UNQUOTED))?
                }
            };
            (field, first, at + value.len())
        };
        let (line, column) = p.line_col(field_at);
        fields.push(Field { value: field, line, column });
        at = end + 1;
    }
    Ok(Some(Record { line: p.line_col(start).0, fields }))
}

/// Every record of `text`, in order, or what was wrong with it.
pub fn records(text: &str) -> Vec<Result<Record, CsvError>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let positions = Positions::new(text);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .comment(Some(b'#'))
        .from_reader(text.as_bytes());
    let mut record = csv::StringRecord::new();
    let mut out = Vec::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                // Not for text already in memory as UTF-8; reported rather than dropped.
                out.push(Err(positions.error(reader.position().byte() as usize, &e.to_string())));
                break;
            }
        }
        let start = record_start(text, record.position().map_or(0, |at| at.byte() as usize));
        match located(&positions, start, &record) {
            Ok(Some(r)) => out.push(Ok(r)),
            Ok(None) => {}
            Err(e) => out.push(Err(e)),
        }
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
    fn quoting_edge_cases_keep_their_values_and_positions() {
        let text =
            "\"\",\"\"\"\",\"a,\r\nb\",x\r\n   \r\n\r\n  # indented comment\r\n\"\"\"q\"\"\"  ,  y  ,\n,\n";
        assert_eq!(values(text), [ok(&["", "\"", "a,\nb", "x"]), ok(&["\"q\"", "y", ""]), ok(&["", ""])]);
        let r = records(text);
        let first = r[0].as_ref().unwrap();
        let at: Vec<(usize, usize)> = first.fields.iter().map(|f| (f.line, f.column)).collect();
        assert_eq!(at, [(1, 1), (1, 4), (1, 9), (2, 4)], "a field after a quoted line break");
        let second = r[1].as_ref().unwrap();
        assert_eq!(second.line, 6, "blank and comment lines are skipped but counted");
        assert_eq!((second.fields[1].line, second.fields[1].column), (6, 13));
    }

    #[test]
    fn a_quoted_field_after_blanks_may_not_hold_a_comma() {
        // The crate reads ` "a, b"` as two unquoted fields; Excel never writes a blank before
        // a quote, so only fields without a comma or line break may have one.
        assert_eq!(values("x, \"a b\" \n"), [ok(&["x", "a b"])]);
        assert_eq!(values("x, \"a, b\"\ny\n"), [Err((1, 4)), ok(&["y"])]);
    }

    #[test]
    fn quoting_round_trips() {
        for field in ["plain", "a,b", "say \"hi\"", "two\nlines", " padded", "#hash", "东城街道"] {
            let text = format!("{},{}\n", quote(field), quote("x"));
            assert_eq!(values(&text), [ok(&[field, "x"])], "{field}");
        }
    }
}
