//! Reading rows to score from CSV, one physical line at a time, so that no row is ever lost:
//! every data line is either a row or one reported error. A quoted field may not span lines, so
//! a stray `"` spoils its own line only and never swallows the lines after it.
//!
//! Each feature cell follows the rules `/predict` applies to a JSON field (a number, finite,
//! ≥ 0), except that an empty cell (or `NaN`, `NA`) is a missing value for the model's imputer,
//! as in training.

use std::fmt;
use std::io::{self, BufRead};
use std::path::Path;

use ndarray::Array2;

use super::DatasetError;
pub use super::fields::FieldSplitter;

/// The longest line accepted; a longer one is one invalid row (its bytes are not kept).
pub const MAX_LINE_BYTES: usize = 1 << 20;
/// How much of a bad cell an error message quotes.
const MAX_QUOTED_CHARS: usize = 40;

/// Where a row to score came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowAt {
    /// A CSV line (1 is the header).
    Line(u64),
    /// A Parquet row: its row group and its index in that group (both from 0).
    Parquet { row_group: usize, row: u64 },
}

impl fmt::Display for RowAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RowAt::Line(line) => write!(f, "line {line}"),
            RowAt::Parquet { row_group, row } => write!(f, "row group {row_group}, row {row}"),
        }
    }
}

/// What is wrong with one feature cell (or the id cell).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CellProblem {
    #[error("{0:?} is not a number")]
    NotANumber(String),
    #[error("{0:?} is not a finite number")]
    NotFinite(String),
    #[error("{0} is negative (features must be >= 0, as /predict requires)")]
    Negative(f64),
    #[error("is not valid UTF-8")]
    NotUtf8,
}

/// One bad cell of a row.
#[derive(Debug, Clone, PartialEq)]
pub struct CellError {
    pub column: String,
    pub problem: CellProblem,
}

/// Why a row was not scored.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RowProblem {
    #[error("has {got} fields where the header has {expected}")]
    FieldCount { got: usize, expected: usize },
    #[error("a quoted field is not closed on this line (a stray '\"'?)")]
    OpenQuote,
    #[error(
        "a '\"' inside a field that is not quoted, or after a closing one (quote the field and double its '\"')"
    )]
    StrayQuote,
    #[error("is longer than {max} bytes")]
    TooLong { max: usize },
    #[error("{}", cell_list(.0))]
    Cells(Vec<CellError>),
}

fn cell_list(cells: &[CellError]) -> String {
    let parts: Vec<String> = cells
        .iter()
        .map(|c| format!("column {:?}: {}", c.column, c.problem))
        .collect();
    parts.join("; ")
}

/// A row that was not scored, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct RowError {
    pub at: RowAt,
    pub problem: RowProblem,
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.problem)
    }
}

/// A cell quoted in an error message, cut short when long.
fn quoted(cell: &str) -> String {
    match cell.char_indices().nth(MAX_QUOTED_CHARS) {
        Some((end, _)) => format!("{}...", &cell[..end]),
        None => cell.to_string(),
    }
}

/// One feature value to score, by `/predict`'s rules: finite and ≥ 0; `NaN` is a missing value
/// (an empty CSV cell, a Parquet null) that the model's imputer fills.
pub fn check_value(value: f64) -> Result<f64, CellProblem> {
    check_value_as(value, false)
}

/// [`check_value`], taking negative values too when `allow_negative` (an ONNX model's rule).
pub fn check_value_as(value: f64, allow_negative: bool) -> Result<f64, CellProblem> {
    if value.is_nan() {
        Ok(value)
    } else if value.is_infinite() {
        Err(CellProblem::NotFinite(value.to_string()))
    } else if value < 0.0 && !allow_negative {
        Err(CellProblem::Negative(value))
    } else {
        Ok(value)
    }
}

/// One CSV feature cell: empty, `NaN` or `NA` is missing (`NaN`); anything else must be a
/// number accepted by [`check_value`].
pub fn parse_value(cell: &[u8]) -> Result<f64, CellProblem> {
    parse_value_as(cell, false)
}

/// [`parse_value`], taking negative values too when `allow_negative`.
pub fn parse_value_as(cell: &[u8], allow_negative: bool) -> Result<f64, CellProblem> {
    if let Some(v) = plain_number(cell) {
        return Ok(v);
    }
    let cell = std::str::from_utf8(cell)
        .map_err(|_| CellProblem::NotUtf8)?
        .trim();
    if cell.is_empty() || cell.eq_ignore_ascii_case("nan") || cell.eq_ignore_ascii_case("na") {
        return Ok(f64::NAN);
    }
    match cell.parse::<f64>() {
        Ok(v) if v.is_nan() => Err(CellProblem::NotANumber(quoted(cell))),
        Ok(v) if v.is_infinite() => Err(CellProblem::NotFinite(quoted(cell))),
        Ok(v) => check_value_as(v, allow_negative),
        Err(_) => Err(CellProblem::NotANumber(quoted(cell))),
    }
}

/// The value of a cell that is a plain number (it starts with a digit, ends a number and is
/// finite, so it is not negative either), read by a parser several times faster than the
/// standard library's and with the same, correctly rounded, result; `None` for every other
/// cell (spaces, signs, `NaN`, errors), which [`parse_value_as`] reads the long way.
fn plain_number(cell: &[u8]) -> Option<f64> {
    if !cell.first().is_some_and(u8::is_ascii_digit) {
        return None;
    }
    fast_float2::parse::<f64, _>(cell)
        .ok()
        .filter(|v| v.is_finite())
}

/// Reads physical lines (split at `\n`, a trailing `\r` dropped) with a bounded length.
pub struct LineReader<R> {
    inner: R,
    line: u64,
}

/// One physical line appended to a buffer by [`LineReader::next_line`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line {
    /// Its line number, from 1.
    pub number: u64,
    /// Where its bytes start and end in the buffer (empty when too long).
    pub start: usize,
    pub end: usize,
    /// It was longer than [`MAX_LINE_BYTES`]; its bytes were skipped.
    pub too_long: bool,
}

impl<R: BufRead> LineReader<R> {
    pub fn new(inner: R) -> Self {
        Self { inner, line: 0 }
    }

    /// Appends the next line to `buf`, or returns `None` at the end of the input.
    pub fn next_line(&mut self, buf: &mut Vec<u8>) -> io::Result<Option<Line>> {
        let start = buf.len();
        let mut too_long = false;
        let found = self.read_line_with(|chunk| {
            if too_long {
                return;
            }
            if buf.len() - start + chunk.len() > MAX_LINE_BYTES {
                too_long = true;
                buf.truncate(start);
            } else {
                buf.extend_from_slice(chunk);
            }
        })?;
        if !found {
            return Ok(None);
        }
        if buf.len() > start && buf.last() == Some(&b'\r') {
            buf.pop();
        }
        self.line += 1;
        Ok(Some(Line {
            number: self.line,
            start,
            end: buf.len(),
            too_long,
        }))
    }

    /// Passes over the next line without keeping it (counted as [`Self::next_line`] counts);
    /// returns whether it is blank (nothing but a `\r`), or `None` at the end of the input.
    pub fn skip_line(&mut self) -> io::Result<Option<bool>> {
        let (mut len, mut last_cr) = (0usize, false);
        let found = self.read_line_with(|chunk| {
            if let Some(&last) = chunk.last() {
                len = len.saturating_add(chunk.len());
                last_cr = last == b'\r';
            }
        })?;
        if !found {
            return Ok(None);
        }
        self.line += 1;
        Ok(Some(len == 0 || (len == 1 && last_cr)))
    }

    /// Hands the next line to `take` in the pieces the reader's buffer holds (without its
    /// `\n`); `false` when the input had ended before it.
    fn read_line_with(&mut self, mut take: impl FnMut(&[u8])) -> io::Result<bool> {
        let mut any = false;
        loop {
            let available = match self.inner.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if available.is_empty() {
                return Ok(any);
            }
            any = true;
            let (chunk, used, done) = match memchr::memchr(b'\n', available) {
                Some(i) => (&available[..i], i + 1, true),
                None => (available, available.len(), false),
            };
            take(chunk);
            self.inner.consume(used);
            if done {
                return Ok(true);
            }
        }
    }
}

/// The columns of a scoring CSV that matter: the model's features, in the model's order, and
/// the optional `id`.
#[derive(Debug, Clone)]
pub struct ScoringColumns {
    names: Vec<String>,
    feature_idx: Vec<usize>,
    id_idx: Option<usize>,
    fields: usize,
    /// Whether negative feature values are taken (an ONNX model's rule; ours refuses them).
    pub allow_negative: bool,
}

impl ScoringColumns {
    /// Reads the header line: every feature must be a column (any order; extra columns are
    /// ignored); an `id` column is passed through. With `positional` (a model whose features
    /// have no names), the columns but `id` are the features, in order.
    pub fn from_header(
        path: &Path,
        line: &[u8],
        feature_names: &[String],
        positional: bool,
    ) -> Result<Self, DatasetError> {
        let line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
        if line.trim_ascii().is_empty() {
            return Err(DatasetError::NoHeader {
                path: path.to_path_buf(),
            });
        }
        let mut splitter = FieldSplitter::default();
        let fields = splitter.split(line).map_err(|p| DatasetError::Csv {
            path: path.to_path_buf(),
            line: 1,
            message: format!("the header: {p}"),
        })?;
        let header = (0..fields)
            .map(|i| {
                std::str::from_utf8(splitter.field(line, i))
                    .map(|h| h.trim().to_string())
                    .map_err(|_| DatasetError::Csv {
                        path: path.to_path_buf(),
                        line: 1,
                        message: format!("header field {} is not valid UTF-8", i + 1),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if positional {
            Self::by_position(path, &header, feature_names.len())
        } else {
            Self::from_names(path, &header, feature_names)
        }
    }

    /// The columns by position, for a model whose features have no names: every column but
    /// `id`, in order, and exactly as many as the model's width.
    pub fn by_position(path: &Path, header: &[String], width: usize) -> Result<Self, DatasetError> {
        let names: Vec<String> = header.iter().filter(|h| *h != "id").cloned().collect();
        if names.len() != width {
            return Err(DatasetError::Csv {
                path: path.to_path_buf(),
                line: 1,
                message: format!(
                    "the model's {width} features have no names, so they are read by position, \
                     but the file has {} columns besides id",
                    names.len()
                ),
            });
        }
        Self::from_names(path, header, &names)
    }

    /// Maps column names (a CSV header, a Parquet schema) onto the model's features.
    pub fn from_names(
        path: &Path,
        header: &[String],
        feature_names: &[String],
    ) -> Result<Self, DatasetError> {
        if header.is_empty() || (header.len() == 1 && header[0].is_empty()) {
            return Err(DatasetError::NoHeader {
                path: path.to_path_buf(),
            });
        }
        for (i, name) in header.iter().enumerate() {
            if header[..i].contains(name) {
                return Err(DatasetError::DuplicateColumn {
                    path: path.to_path_buf(),
                    column: name.clone(),
                });
            }
        }
        let feature_idx = feature_names
            .iter()
            .map(|f| {
                header
                    .iter()
                    .position(|h| h == f)
                    .ok_or_else(|| DatasetError::MissingColumn {
                        path: path.to_path_buf(),
                        column: f.clone(),
                        available: header.join(", "),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            names: feature_names.to_vec(),
            feature_idx,
            id_idx: header.iter().position(|h| h == "id"),
            fields: header.len(),
            allow_negative: false,
        })
    }

    /// The model's feature names, in its order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Where each feature is among the columns.
    pub fn feature_index(&self) -> &[usize] {
        &self.feature_idx
    }

    /// Where the `id` column is, if there is one.
    pub fn id_index(&self) -> Option<usize> {
        self.id_idx
    }

    /// Parses one data line: on success appends one value per feature to `values` and returns
    /// the id cell (when there is an `id` column); on failure appends nothing.
    pub fn parse_line<'s>(
        &self,
        splitter: &'s mut FieldSplitter,
        line: &'s [u8],
        values: &mut Vec<f64>,
    ) -> Result<Option<&'s str>, RowProblem> {
        let got = splitter.split(line)?;
        if got != self.fields {
            return Err(RowProblem::FieldCount {
                got,
                expected: self.fields,
            });
        }
        let start = values.len();
        let mut bad = Vec::new();
        for (&idx, name) in self.feature_idx.iter().zip(&self.names) {
            match parse_value_as(splitter.field(line, idx), self.allow_negative) {
                Ok(v) => values.push(v),
                Err(problem) => bad.push(CellError {
                    column: name.clone(),
                    problem,
                }),
            }
        }
        let splitter: &'s FieldSplitter = splitter;
        let id = match self.id_idx {
            Some(i) => match std::str::from_utf8(splitter.field(line, i)) {
                Ok(id) => Some(id),
                Err(_) => {
                    bad.push(CellError {
                        column: "id".to_string(),
                        problem: CellProblem::NotUtf8,
                    });
                    None
                }
            },
            None => None,
        };
        if bad.is_empty() {
            debug_assert_eq!(splitter.field_count(), self.fields);
            Ok(id)
        } else {
            values.truncate(start);
            Err(RowProblem::Cells(bad))
        }
    }
}

/// Rows to score, read whole: an id per row (the `id` column, or the row's number), the
/// feature matrix, and the rows that could not be read.
#[derive(Debug)]
pub struct ScoringRows {
    pub ids: Vec<String>,
    pub features: Array2<f64>,
    pub invalid: Vec<RowError>,
}

/// Reads a whole file of rows to score (for inputs known to be small, such as the load
/// generator's; `ml-serving score` streams instead). Blank lines are not rows.
pub fn load_for_scoring(
    path: &Path,
    feature_names: &[String],
) -> Result<ScoringRows, DatasetError> {
    let io_error = |source| DatasetError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io_error)?;
    let mut lines = LineReader::new(io::BufReader::new(file));
    let mut buf = Vec::new();
    let header = lines.next_line(&mut buf).map_err(io_error)?;
    let columns = match header {
        Some(line) if !line.too_long => {
            ScoringColumns::from_header(path, &buf[line.start..line.end], feature_names, false)?
        }
        Some(_) => {
            return Err(DatasetError::Csv {
                path: path.to_path_buf(),
                line: 1,
                message: format!("the header is longer than {MAX_LINE_BYTES} bytes"),
            });
        }
        None => {
            return Err(DatasetError::NoHeader {
                path: path.to_path_buf(),
            });
        }
    };
    let mut splitter = FieldSplitter::default();
    let (mut ids, mut values, mut invalid) = (Vec::new(), Vec::new(), Vec::new());
    let mut rows = 0u64;
    loop {
        buf.clear();
        let Some(line) = lines.next_line(&mut buf).map_err(io_error)? else {
            break;
        };
        if line.start == line.end && !line.too_long {
            continue;
        }
        rows += 1;
        let at = RowAt::Line(line.number);
        if line.too_long {
            invalid.push(RowError {
                at,
                problem: RowProblem::TooLong {
                    max: MAX_LINE_BYTES,
                },
            });
            continue;
        }
        match columns.parse_line(&mut splitter, &buf[line.start..line.end], &mut values) {
            Ok(id) => ids.push(id.map_or_else(|| rows.to_string(), str::to_string)),
            Err(problem) => invalid.push(RowError { at, problem }),
        }
    }
    if rows == 0 {
        return Err(DatasetError::NoRows {
            path: path.to_path_buf(),
        });
    }
    let features = Array2::from_shape_vec((ids.len(), feature_names.len()), values)
        .expect("one value per feature per row");
    Ok(ScoringRows {
        ids,
        features,
        invalid,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn names() -> Vec<String> {
        vec!["a".to_string(), "b".to_string()]
    }

    fn columns(header: &str) -> ScoringColumns {
        ScoringColumns::from_header(Path::new("t.csv"), header.as_bytes(), &names(), false).unwrap()
    }

    fn parse(
        columns: &ScoringColumns,
        line: &str,
    ) -> Result<(Vec<f64>, Option<String>), RowProblem> {
        let mut splitter = FieldSplitter::default();
        let mut values = Vec::new();
        let id = columns
            .parse_line(&mut splitter, line.as_bytes(), &mut values)?
            .map(str::to_string);
        Ok((values, id))
    }

    #[test]
    fn values_follow_the_predict_rules_and_empty_cells_are_missing() {
        assert_eq!(parse_value(b" 1.5 "), Ok(1.5));
        assert_eq!(parse_value(b"0"), Ok(0.0));
        assert!(parse_value(b"").unwrap().is_nan());
        assert!(parse_value(b"NA").unwrap().is_nan());
        assert!(parse_value(b"nan").unwrap().is_nan());
        assert_eq!(parse_value(b"-1"), Err(CellProblem::Negative(-1.0)));
        assert_eq!(
            parse_value(b"inf"),
            Err(CellProblem::NotFinite("inf".to_string()))
        );
        assert_eq!(
            parse_value(b"1e999"),
            Err(CellProblem::NotFinite("1e999".to_string()))
        );
        assert_eq!(
            parse_value(b"-nan"),
            Err(CellProblem::NotANumber("-nan".to_string()))
        );
        assert_eq!(parse_value(b"\xff1"), Err(CellProblem::NotUtf8));
        assert_eq!(check_value(-0.0), Ok(-0.0));
    }

    #[test]
    fn a_row_with_two_bad_cells_is_one_error_naming_both() {
        let c = columns("id,a,b");
        let err = parse(&c, "7,x,-2").unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(&err, RowProblem::Cells(cells) if cells.len() == 2),
            "{text}"
        );
        assert!(
            text.contains("column \"a\": \"x\" is not a number"),
            "{text}"
        );
        assert!(text.contains("column \"b\": -2 is negative"), "{text}");
    }

    #[test]
    fn quotes_commas_and_columns_in_any_order() {
        let c = columns("b,note,id,a");
        assert_eq!(
            parse(&c, "2,\"x, \"\"y\"\"\",\"case 8, left\",1").unwrap(),
            (vec![1.0, 2.0], Some("case 8, left".to_string()))
        );
        assert_eq!(
            parse(&c, "2,\"open,id,1"),
            Err(RowProblem::OpenQuote),
            "a stray quote spoils its own line"
        );
        assert_eq!(parse(&c, "2,\"12\"3,id,1"), Err(RowProblem::StrayQuote));
        assert_eq!(parse(&c, "2,12\"3,id,1"), Err(RowProblem::StrayQuote));
        assert_eq!(
            parse(&c, "2,\"\",\"\"\"\",1").unwrap(),
            (vec![1.0, 2.0], Some("\"".to_string()))
        );
        assert_eq!(
            parse(&c, "2,x,id"),
            Err(RowProblem::FieldCount {
                got: 3,
                expected: 4
            })
        );
    }

    #[test]
    fn lines_are_split_at_newlines_with_a_bounded_length() {
        let long = "9".repeat(MAX_LINE_BYTES + 1);
        let text = format!("a\r\n\n{long}\nlast");
        let mut reader = LineReader::new(io::BufReader::with_capacity(7, text.as_bytes()));
        let mut buf = Vec::new();
        let mut got = Vec::new();
        while let Some(line) = reader.next_line(&mut buf).unwrap() {
            got.push((
                line.number,
                String::from_utf8(buf[line.start..line.end].to_vec()).unwrap(),
                line.too_long,
            ));
            buf.clear();
        }
        assert_eq!(
            got,
            [
                (1, "a".to_string(), false),
                (2, String::new(), false),
                (3, String::new(), true),
                (4, "last".to_string(), false)
            ]
        );
    }

    proptest! {
        /// Skipping a line sees it as blank exactly when reading it gives an empty line, and
        /// both count the same lines.
        #[test]
        fn skipped_lines_are_blank_as_read_lines_are(text in "[a\r\n,]{0,40}", capacity in 1usize..8) {
            let mut reader = LineReader::new(io::BufReader::with_capacity(capacity, text.as_bytes()));
            let mut skipper = LineReader::new(io::BufReader::with_capacity(capacity, text.as_bytes()));
            let mut buf = Vec::new();
            while let Some(line) = reader.next_line(&mut buf).unwrap() {
                let blank = line.start == line.end && !line.too_long;
                prop_assert_eq!(skipper.skip_line().unwrap(), Some(blank));
                prop_assert_eq!(skipper.line, line.number);
                buf.clear();
            }
            prop_assert_eq!(skipper.skip_line().unwrap(), None);
        }

        /// A plain number reads as the standard library reads it, to the bit; anything the
        /// fast parser takes, the standard library takes too.
        #[test]
        fn plain_numbers_read_as_the_standard_library_reads_them(cell in "[0-9][0-9.eE+_-]{0,12}|[0-9]{1,25}(\\.[0-9]{0,25})?([eE][+-]?[0-9]{1,3})?") {
            if let Some(v) = plain_number(cell.as_bytes()) {
                let std: f64 = cell.parse().expect("the standard library reads it too");
                prop_assert_eq!(v.to_bits(), std.to_bits(), "{}", cell);
            } else if let Ok(std) = cell.parse::<f64>() {
                prop_assert!(!std.is_finite(), "{} reads as {} but not as a plain number", cell, std);
            }
        }

        /// Any line gets an answer (never a panic), and a success gives one value per feature.
        #[test]
        fn any_line_is_a_row_or_an_error(line in proptest::collection::vec(any::<u8>(), 0..200)) {
            let c = columns("a,id,b");
            let line: Vec<u8> = line.into_iter().filter(|&b| b != b'\n').collect();
            let mut splitter = FieldSplitter::default();
            let mut values = vec![5.0];
            if c.parse_line(&mut splitter, &line, &mut values).is_ok() {
                prop_assert_eq!(values.len(), 3);
            } else {
                prop_assert_eq!(values.len(), 1);
            }
        }
    }
}
