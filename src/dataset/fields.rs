//! Splitting one CSV line into fields. A line without quotes (nearly every line of a file of
//! numbers) is split where its commas are, found eight bytes at a time and read in place; a line
//! with a quote goes through the `csv` crate's parser (quotes, `""` escapes), refusing a quoted
//! field that is not closed on its line.

use super::scoring::RowProblem;

/// Splits lines into fields; reused from line to line, so that it allocates only at first.
pub struct FieldSplitter {
    reader: csv_core::Reader,
    out: Vec<u8>,
    ends: Vec<usize>,
    fields: usize,
    /// The last line had no quote: its fields are its own bytes, each ending where `commas` says
    /// (at a comma, or at the line's end for the last).
    plain: bool,
    commas: Vec<usize>,
}

impl Default for FieldSplitter {
    fn default() -> Self {
        Self {
            reader: csv_core::ReaderBuilder::new()
                .terminator(csv_core::Terminator::Any(b'\n'))
                .build(),
            out: vec![0; 1024],
            ends: vec![0; 64],
            fields: 0,
            plain: false,
            commas: Vec::new(),
        }
    }
}

impl FieldSplitter {
    /// Splits `line` (without its terminator); returns the number of fields.
    pub fn split(&mut self, line: &[u8]) -> Result<usize, RowProblem> {
        if plain_field_ends(line, &mut self.commas) {
            self.plain = true;
            self.fields = self.commas.len();
            return Ok(self.fields);
        }
        self.plain = false;
        check_quotes(line)?;
        self.reader.reset();
        let (mut out_at, mut ends_at) = (0, 0);
        for (mut input, last) in [(line, false), (&b"\n"[..], true)] {
            loop {
                let (result, read, wrote, ended) = self.reader.read_record(
                    input,
                    &mut self.out[out_at..],
                    &mut self.ends[ends_at..],
                );
                input = &input[read..];
                out_at += wrote;
                ends_at += ended;
                match result {
                    csv_core::ReadRecordResult::InputEmpty if last => {
                        return Err(RowProblem::OpenQuote);
                    }
                    csv_core::ReadRecordResult::InputEmpty => break,
                    csv_core::ReadRecordResult::OutputFull => {
                        let len = self.out.len() * 2;
                        self.out.resize(len, 0);
                    }
                    csv_core::ReadRecordResult::OutputEndsFull => {
                        let len = self.ends.len() * 2;
                        self.ends.resize(len, 0);
                    }
                    csv_core::ReadRecordResult::Record if last && input.is_empty() => {
                        self.fields = ends_at;
                        return Ok(ends_at);
                    }
                    // A terminator inside the line cannot happen (lines are split at `\n`);
                    // treat anything unexpected as an unreadable line rather than guess.
                    csv_core::ReadRecordResult::Record | csv_core::ReadRecordResult::End => {
                        return Err(RowProblem::OpenQuote);
                    }
                }
            }
        }
        Err(RowProblem::OpenQuote)
    }

    /// Field `i` of `line`, the last line split (a quoted field comes unquoted).
    pub fn field<'a>(&'a self, line: &'a [u8], i: usize) -> &'a [u8] {
        if self.plain {
            let start = if i == 0 { 0 } else { self.commas[i - 1] + 1 };
            &line[start..self.commas[i]]
        } else {
            let start = if i == 0 { 0 } else { self.ends[i - 1] };
            &self.out[start..self.ends[i]]
        }
    }

    /// The number of fields of the last line split.
    pub fn field_count(&self) -> usize {
        self.fields
    }
}

/// Where each field of `line` ends (at a comma, or at the line's end for the last), into
/// `ends`; `false` when the line holds a quote (its fields need the CSV parser).
fn plain_field_ends(line: &[u8], ends: &mut Vec<usize>) -> bool {
    ends.clear();
    let (words, rest) = line.as_chunks::<8>();
    for (w, word) in words.iter().enumerate() {
        let word = u64::from_le_bytes(*word);
        if bytes_equal_to(word, b'"') != 0 {
            return false;
        }
        let mut commas = bytes_equal_to(word, b',');
        while commas != 0 {
            ends.push(w * 8 + commas.trailing_zeros() as usize / 8);
            commas &= commas - 1;
        }
    }
    let at = words.len() * 8;
    for (i, &b) in rest.iter().enumerate() {
        match b {
            b'"' => return false,
            b',' => ends.push(at + i),
            _ => {}
        }
    }
    ends.push(line.len());
    true
}

/// The high bit of each byte of `word` that equals `byte`; every other bit 0. (Exact: a byte's
/// low seven bits, plus 0x7f, carry into its high bit, never into the next byte.)
fn bytes_equal_to(word: u64, byte: u8) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    let x = word ^ (u64::from(byte) * 0x0101_0101_0101_0101);
    !(((x & LOW7) + LOW7) | x | LOW7)
}

/// Where quotes may be (RFC 4180): a field is quoted only when its first byte is `"`, a `"`
/// inside it is doubled, and its closing `"` is followed by a `,` or the end of the line. The
/// `csv` crate's parser forgives the rest (`"12"3` reads as `123`); a row to score must not.
fn check_quotes(line: &[u8]) -> Result<(), RowProblem> {
    let mut bytes = line.iter().copied().peekable();
    let mut field_start = true;
    while let Some(b) = bytes.next() {
        match b {
            b',' => field_start = true,
            b'"' if field_start => loop {
                match bytes.next() {
                    None => return Err(RowProblem::OpenQuote),
                    Some(b'"') if bytes.peek() == Some(&b'"') => {
                        bytes.next();
                    }
                    Some(b'"') => match bytes.next() {
                        None => return Ok(()),
                        Some(b',') => break,
                        Some(_) => return Err(RowProblem::StrayQuote),
                    },
                    Some(_) => {}
                }
            },
            b'"' => return Err(RowProblem::StrayQuote),
            _ => field_start = false,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The fields the `csv` crate reads from `line` (None: it reads no record, or fails).
    fn csv_crate_fields(line: &[u8]) -> Option<Vec<Vec<u8>>> {
        let mut with_end = line.to_vec();
        with_end.push(b'\n');
        let record = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(&with_end[..])
            .byte_records()
            .next()?
            .ok()?;
        Some(record.iter().map(<[u8]>::to_vec).collect())
    }

    fn fields(splitter: &FieldSplitter, line: &[u8]) -> Vec<Vec<u8>> {
        (0..splitter.field_count())
            .map(|i| splitter.field(line, i).to_vec())
            .collect()
    }

    #[test]
    fn byte_matches_are_exact_in_every_position() {
        for at in 0..8 {
            for other in 0..=255u8 {
                let mut bytes = [other; 8];
                bytes[at] = b',';
                let mask = bytes_equal_to(u64::from_le_bytes(bytes), b',');
                let expected: u64 = (0..8)
                    .filter(|&i| bytes[i] == b',')
                    .map(|i| 0x80 << (8 * i))
                    .sum();
                assert_eq!(mask, expected, "{bytes:?}");
            }
        }
    }

    #[test]
    fn quoted_fields_are_unquoted_and_lines_ending_in_a_comma_have_an_empty_last_field() {
        let mut s = FieldSplitter::default();
        let line = b"1,\"a,\"\"b\"\"\",,";
        assert_eq!(s.split(line), Ok(4));
        assert_eq!(fields(&s, line), [&b"1"[..], b"a,\"b\"", b"", b""]);
        let line = b"0123456789,abcdefgh,,x";
        assert_eq!(s.split(line), Ok(4));
        assert_eq!(
            fields(&s, line),
            [&b"0123456789"[..], b"abcdefgh", b"", b"x"]
        );
    }

    proptest! {
        /// Any line the `csv` crate reads as one record splits into the same fields: lines of
        /// any length (the eight-byte words and the rest), with and without quotes.
        #[test]
        // (No byte-order mark: the csv crate drops one at the start of its input.)
        fn lines_split_like_the_csv_crate(line in "[a-c0-9.,\" \u{e9}]{0,40}") {
            let line = line.as_bytes();
            let mut splitter = FieldSplitter::default();
            let got = splitter.split(line);
            match (got, csv_crate_fields(line)) {
                (Ok(n), Some(expected)) => {
                    prop_assert_eq!(n, expected.len());
                    prop_assert_eq!(fields(&splitter, line), expected);
                }
                // The csv crate reads an empty line as no record at all.
                (Ok(n), None) => prop_assert!(line.is_empty() && n == 1),
                // Quotes the csv crate forgives (`"12"3`, an unclosed one) are refused here.
                (Err(_), _) => prop_assert!(line.contains(&b'"')),
            }
        }

        /// Without quotes, every byte but the comma is part of a field: the fields joined with
        /// commas give the line back.
        #[test]
        fn plain_lines_split_at_every_comma(line in proptest::collection::vec(any::<u8>().prop_filter("no quote", |&b| b != b'"'), 0..100)) {
            let mut splitter = FieldSplitter::default();
            let n = splitter.split(&line).unwrap();
            prop_assert_eq!(n, line.iter().filter(|&&b| b == b',').count() + 1);
            prop_assert_eq!(fields(&splitter, &line).join(&b','), line);
        }
    }
}
