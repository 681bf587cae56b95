//! Where scores go: CSV (plain, gzip or Zstandard) or Parquet, to standard output or to a file
//! written atomically (a temporary beside it, renamed over it only when the run succeeds).

use std::io::{self, BufWriter, Write};
use std::path::Path;

use anyhow::Context;

use super::format::{Encoder, Format, IO_BUFFER};
use super::parquet_out::ParquetSink;
use super::{Ids, Scored};
use crate::atomic_file::AtomicFile;
use crate::model::Answer;

/// The column names of the per-model votes, in `Votes` order.
pub const VOTE_COLUMNS: [&str; 3] = ["logistic_regression", "decision_tree", "svm"];
/// What starts the name of each per-class score column (`score_<class>`).
pub const SCORE_PREFIX: &str = "score_";

/// What a prediction is, which sets the `prediction` column's type in Parquet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PredictionKind {
    /// Our model's decision: 0 or 1.
    Flag,
    /// A classifier's integer label.
    Integer,
    /// A classifier's text label.
    Text,
    /// A regression's value.
    Number,
}

/// The columns an output holds: `id`, `prediction`, `label`, then the votes and the per-class
/// scores when asked for.
#[derive(Debug, Clone)]
pub struct Columns {
    /// Our model's two labels (of predictions 0 and 1); an ONNX model's answers carry theirs.
    pub labels: [String; 2],
    pub prediction: PredictionKind,
    /// One column per model of our ensemble (`VOTE_COLUMNS`).
    pub votes: bool,
    /// The classes of the `score_<class>` columns, in the model's score order; none when not
    /// asked for.
    pub scores: Vec<String>,
}

impl Columns {
    /// The column names, in order.
    pub fn names(&self) -> Vec<String> {
        let mut names = vec!["id".to_string(), "prediction".into(), "label".into()];
        if self.votes {
            names.extend(VOTE_COLUMNS.map(String::from));
        }
        names.extend(self.scores.iter().map(|c| format!("{SCORE_PREFIX}{c}")));
        names
    }
}

pub struct Sink {
    kind: Kind,
    /// The temporary to rename over the output path at the end; `None` for standard output.
    file: Option<AtomicFile>,
}

enum Kind {
    Csv(CsvSink),
    Parquet(ParquetSink),
}

struct CsvSink {
    out: Encoder<BufWriter<Box<dyn Write + Send>>>,
    columns: Columns,
    header_written: bool,
    buf: Vec<u8>,
}

impl Sink {
    /// Opens the output: the file at `path` (a temporary until [`Sink::finish`]), or standard
    /// output.
    pub fn create(path: Option<&Path>, format: Format, columns: Columns) -> anyhow::Result<Self> {
        let file = path
            .map(|p| AtomicFile::create(p).with_context(|| format!("creating {}", p.display())))
            .transpose()?;
        let writer: Box<dyn Write + Send> = match &file {
            Some(f) => Box::new(f.file().try_clone()?),
            None => {
                anyhow::ensure!(
                    format != Format::Parquet,
                    "Parquet cannot be written to standard output; give --output FILE"
                );
                Box::new(io::stdout())
            }
        };
        let kind = match format {
            Format::Parquet => Kind::Parquet(ParquetSink::new(writer, columns)?),
            _ => Kind::Csv(CsvSink {
                out: Encoder::new(BufWriter::with_capacity(IO_BUFFER, writer), format)?,
                columns,
                header_written: false,
                buf: Vec::new(),
            }),
        };
        Ok(Self { kind, file })
    }

    /// Writes one part's scores.
    pub fn write(&mut self, part: &Scored) -> anyhow::Result<()> {
        match &mut self.kind {
            Kind::Csv(csv) => csv.write(part)?,
            Kind::Parquet(p) => p.write(part)?,
        }
        Ok(())
    }

    /// Ends the output; a file is renamed over its path only now.
    pub fn finish(self) -> anyhow::Result<()> {
        match self.kind {
            Kind::Csv(mut csv) => {
                csv.header()?;
                csv.out.finish()?.flush()?;
            }
            Kind::Parquet(p) => p.finish()?,
        }
        if let Some(file) = self.file {
            file.commit()?;
        }
        Ok(())
    }
}

impl CsvSink {
    fn header(&mut self) -> io::Result<()> {
        if !self.header_written {
            self.header_written = true;
            let mut line = Vec::new();
            for (i, name) in self.columns.names().iter().enumerate() {
                if i > 0 {
                    line.push(b',');
                }
                write_field(&mut line, name);
            }
            line.push(b'\n');
            self.out.write_all(&line)?;
        }
        Ok(())
    }

    fn write(&mut self, part: &Scored) -> io::Result<()> {
        self.header()?;
        let buf = &mut self.buf;
        buf.clear();
        let mut number = itoa::Buffer::new();
        for i in 0..part.rows() {
            write_id(buf, &part.ids, i, &mut number);
            // Our model's decision (its fast path), else the model's own answer.
            match (part.predictions.get(i), part.answers.get(i)) {
                (Some(&p), _) => {
                    buf.extend_from_slice(if p { b",1," } else { b",0," });
                    write_field(buf, &self.columns.labels[usize::from(p)]);
                }
                (
                    None,
                    Some(Answer::Class {
                        label, prediction, ..
                    }),
                ) => {
                    buf.push(b',');
                    match prediction {
                        serde_json::Value::String(s) => write_field(buf, s),
                        other => buf.extend_from_slice(other.to_string().as_bytes()),
                    }
                    buf.push(b',');
                    write_field(buf, label);
                }
                (None, Some(Answer::Value { prediction })) => {
                    buf.push(b',');
                    buf.extend_from_slice(serde_json::json!(prediction).to_string().as_bytes());
                    buf.push(b',');
                }
                (None, None) => {}
            }
            if let Some(v) = part.votes.get(i) {
                for vote in [v.logistic, v.tree, v.svm] {
                    buf.extend_from_slice(if vote { b",1" } else { b",0" });
                }
            }
            for score in part.scores(i) {
                buf.push(b',');
                write!(buf, "{score}")?;
            }
            buf.push(b'\n');
        }
        self.out.write_all(buf)
    }
}

/// One CSV field, quoted when it must be.
fn write_field(out: &mut Vec<u8>, field: &str) {
    if field
        .bytes()
        .any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r'))
    {
        out.push(b'"');
        out.extend_from_slice(field.replace('"', "\"\"").as_bytes());
        out.push(b'"');
    } else {
        out.extend_from_slice(field.as_bytes());
    }
}

/// Row `i`'s id: its text from the input, or its number.
fn write_id(buf: &mut Vec<u8>, ids: &Ids, i: usize, number: &mut itoa::Buffer) {
    match ids {
        Ids::Text { .. } => write_field(buf, ids.text_at(i)),
        Ids::Numbers(n) => buf.extend_from_slice(number.format(n[i]).as_bytes()),
    }
}
