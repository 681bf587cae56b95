//! Where rows to score come from: CSV (plain, gzip or Zstandard; a file or standard input) or
//! Parquet, read in bounded chunks; with a shard, only that part's rows.

use std::io::BufRead;
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender};

use anyhow::{Context, bail};
use rayon::prelude::*;

use super::format::{self, Format};
use super::parquet_in::{Batch, Layout, ParquetSource};
use super::{CHUNK_BYTES, Chunking, Ids, Rows, Shard};
use crate::dataset::DatasetError;
use crate::dataset::scoring::{
    FieldSplitter, Line, LineReader, MAX_LINE_BYTES, RowAt, RowError, RowProblem, ScoringColumns,
};

/// Chunk buffers kept for reuse: one being read, one waiting, one being scored.
const SPARE_BUFFERS: usize = 3;

/// Rows read from the input, not yet checked.
pub enum Chunk {
    /// CSV lines, parsed in parallel by [`Chunk::par_map`].
    Lines {
        buffers: LineBuffers,
        columns: Arc<ScoringColumns>,
        part_rows: usize,
    },
    /// Parquet batches, a part each, checked in parallel by [`Chunk::par_map`].
    Batches {
        batches: Vec<Batch>,
        layout: Arc<Layout>,
    },
}

/// A chunk's lines; dropped, the buffers go back to the reader for the next chunk, so a run
/// allocates them a few times instead of once per chunk.
pub struct LineBuffers {
    bytes: Vec<u8>,
    lines: Vec<DataLine>,
    back: SyncSender<(Vec<u8>, Vec<DataLine>)>,
}

impl Drop for LineBuffers {
    fn drop(&mut self) {
        let buffers = (
            std::mem::take(&mut self.bytes),
            std::mem::take(&mut self.lines),
        );
        let _ = self.back.try_send(buffers);
    }
}

/// A data line and its row number (from 1, blank lines not counted).
pub struct DataLine {
    line: Line,
    row: u64,
}

pub struct Source {
    kind: Kind,
    total: Option<u64>,
    file_rows: Option<u64>,
}

enum Kind {
    Csv(CsvSource),
    Parquet(ParquetSource),
}

struct CsvSource {
    lines: LineReader<Box<dyn BufRead + Send>>,
    columns: Arc<ScoringColumns>,
    /// Data rows seen so far.
    rows: u64,
    /// The rows (indexes from 0) to score; all when `None`.
    range: Option<std::ops::Range<u64>>,
    chunking: Chunking,
    done: bool,
    /// Buffers of chunks already scored, to reuse.
    spare: Receiver<(Vec<u8>, Vec<DataLine>)>,
    back: SyncSender<(Vec<u8>, Vec<DataLine>)>,
}

impl Source {
    /// Opens `path`; feature values must be ≥ 0 unless `allow_negative` (an ONNX model); with
    /// `positional`, the columns but `id` are the features in order (a model without names).
    #[allow(clippy::too_many_arguments)]
    pub fn open(
        path: &Path,
        format: Format,
        features: &[String],
        allow_negative: bool,
        positional: bool,
        shard: Option<Shard>,
        chunking: Chunking,
    ) -> anyhow::Result<Self> {
        let stdin = path.as_os_str() == "-";
        if format == Format::Parquet {
            if stdin {
                bail!(
                    "Parquet cannot be read from standard input (its index is at the end); give a file"
                );
            }
            let source =
                ParquetSource::open(path, features, allow_negative, positional, shard, chunking)?;
            return Ok(Self {
                total: Some(source.total_rows()),
                file_rows: Some(source.file_rows()),
                kind: Kind::Parquet(source),
            });
        }
        let (range, total) = match shard {
            Some(shard) => {
                if stdin {
                    bail!("--shard needs a file: standard input cannot be counted beforehand");
                }
                let total = count_rows(path, format)?;
                (Some(shard.range(total)), Some(total))
            }
            None => (None, None),
        };
        let reader = format::open_csv(path, format).map_err(|source| DatasetError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut lines = LineReader::new(reader);
        let mut buf = Vec::new();
        let header = lines
            .next_line(&mut buf)
            .map_err(|source| DatasetError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        let columns = match header {
            None => {
                return Err(DatasetError::NoHeader {
                    path: path.to_path_buf(),
                }
                .into());
            }
            Some(line) if line.too_long => bail!(
                "{}: the header is longer than {MAX_LINE_BYTES} bytes",
                path.display()
            ),
            Some(line) => {
                let mut columns = ScoringColumns::from_header(
                    path,
                    &buf[line.start..line.end],
                    features,
                    positional,
                )?;
                columns.allow_negative = allow_negative;
                columns
            }
        };
        let (back, spare) = std::sync::mpsc::sync_channel(SPARE_BUFFERS);
        Ok(Self {
            kind: Kind::Csv(CsvSource {
                lines,
                columns: Arc::new(columns),
                rows: 0,
                range: range.clone(),
                chunking,
                done: false,
                spare,
                back,
            }),
            total: range.map(|r| r.end - r.start).or(total),
            file_rows: total,
        })
    }

    /// The number of rows this run covers, when known beforehand.
    pub fn total_rows(&self) -> Option<u64> {
        self.total
    }

    /// The number of rows of the whole file, when counted (Parquet, or a shard of CSV).
    pub fn file_rows(&self) -> Option<u64> {
        self.file_rows
    }

    /// The next chunk of rows, or `None` at the end.
    pub fn next_chunk(&mut self) -> anyhow::Result<Option<Chunk>> {
        match &mut self.kind {
            Kind::Csv(csv) => csv.next_chunk().context("reading the input"),
            Kind::Parquet(p) => Ok(p
                .next_chunk()?
                .map(|(batches, layout)| Chunk::Batches { batches, layout })),
        }
    }
}

impl Chunk {
    /// Checks the chunk's rows and applies `f` to each part, in parallel, keeping the order.
    pub fn par_map<T: Send>(
        self,
        f: impl Fn(Rows) -> anyhow::Result<T> + Sync + Send,
    ) -> anyhow::Result<Vec<T>> {
        match self {
            Chunk::Lines {
                buffers,
                columns,
                part_rows,
            } => buffers
                .lines
                .par_chunks(part_rows)
                .map(|part| f(parse(&columns, part, &buffers.bytes)))
                .collect(),
            Chunk::Batches { batches, layout } => batches
                .into_par_iter()
                .map(|batch| {
                    let rows = layout.rows(&batch)?;
                    drop(batch); // before scoring: memory
                    f(rows)
                })
                .collect(),
        }
    }
}

/// The number of data rows (non-blank lines after the header) of a CSV file.
fn count_rows(path: &Path, format: Format) -> anyhow::Result<u64> {
    let reader =
        format::open_csv(path, format).with_context(|| format!("opening {}", path.display()))?;
    let mut lines = LineReader::new(reader);
    let mut rows = 0u64;
    let mut header = true;
    while let Some(blank) = lines
        .skip_line()
        .with_context(|| format!("counting the rows of {}", path.display()))?
    {
        if !header && !blank {
            rows += 1;
        }
        header = false;
    }
    Ok(rows)
}

impl CsvSource {
    fn next_chunk(&mut self) -> std::io::Result<Option<Chunk>> {
        let (mut bytes, mut lines) = self
            .spare
            .try_recv()
            .unwrap_or_else(|_| (Vec::with_capacity(CHUNK_BYTES), Vec::new()));
        bytes.clear();
        lines.clear();
        while !self.done && lines.len() < self.chunking.chunk_rows && bytes.len() < CHUNK_BYTES {
            // The rows before the part are passed over, not read.
            if self.range.as_ref().is_some_and(|r| self.rows < r.start) {
                match self.lines.skip_line()? {
                    None => self.done = true,
                    Some(blank) => self.rows += u64::from(!blank),
                }
                continue;
            }
            let mark = bytes.len();
            let Some(line) = self.lines.next_line(&mut bytes)? else {
                self.done = true;
                break;
            };
            if line.start == line.end && !line.too_long {
                continue; // a blank line is not a row
            }
            let index = self.rows;
            self.rows += 1;
            if let Some(range) = &self.range {
                if index < range.start {
                    bytes.truncate(mark);
                    continue;
                }
                if index >= range.end {
                    bytes.truncate(mark);
                    self.done = true;
                    break;
                }
            }
            lines.push(DataLine {
                line,
                row: index + 1,
            });
        }
        Ok((!lines.is_empty()).then(|| Chunk::Lines {
            buffers: LineBuffers {
                bytes,
                lines,
                back: self.back.clone(),
            },
            columns: self.columns.clone(),
            part_rows: self.chunking.part_rows,
        }))
    }
}

/// Parses and checks one part's lines.
fn parse(columns: &ScoringColumns, part: &[DataLine], bytes: &[u8]) -> Rows {
    let mut splitter = FieldSplitter::default();
    let mut rows = Rows {
        ids: if columns.id_index().is_some() {
            Ids::text()
        } else {
            Ids::default()
        },
        values: Vec::with_capacity(part.len() * columns.names().len()),
        errors: Vec::new(),
        covered: part.len() as u64,
    };
    for data in part {
        let at = RowAt::Line(data.line.number);
        if data.line.too_long {
            rows.errors.push(RowError {
                at,
                problem: RowProblem::TooLong {
                    max: MAX_LINE_BYTES,
                },
            });
            continue;
        }
        let line = &bytes[data.line.start..data.line.end];
        match columns.parse_line(&mut splitter, line, &mut rows.values) {
            Ok(id) => rows.ids.push(id, data.row),
            Err(problem) => rows.errors.push(RowError { at, problem }),
        }
    }
    rows
}
