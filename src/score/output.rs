//! Where scores go: CSV (plain, gzip or Zstandard) or Parquet, to standard output or to a file
//! written atomically (a temporary beside it, renamed over it only when the run succeeds).

use std::io::{self, BufWriter, Write};
use std::path::Path;

use anyhow::Context;

use super::format::{Encoder, Format, IO_BUFFER};
use super::parquet_out::ParquetSink;
use super::{Ids, Scored};
use crate::artifact::ClassLabels;
use crate::atomic_file::AtomicFile;
use crate::model::Answer;

/// The column names of the per-model votes, in `Votes` order.
pub const VOTE_COLUMNS: [&str; 3] = ["logistic_regression", "decision_tree", "svm"];

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
    labels: [String; 2],
    votes: bool,
    header_written: bool,
    buf: Vec<u8>,
}

impl Sink {
    /// Opens the output: the file at `path` (a temporary until [`Sink::finish`]), or standard
    /// output.
    pub fn create(
        path: Option<&Path>,
        format: Format,
        labels: Option<&ClassLabels>,
        votes: bool,
    ) -> anyhow::Result<Self> {
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
        // Our model's two labels; an ONNX model's answers carry their own.
        let labels = labels.map_or_else(Default::default, |l| {
            [l.name(false).to_string(), l.name(true).to_string()]
        });
        let kind = match format {
            Format::Parquet => Kind::Parquet(ParquetSink::new(writer, labels, votes)?),
            _ => Kind::Csv(CsvSink {
                out: Encoder::new(BufWriter::with_capacity(IO_BUFFER, writer), format)?,
                labels,
                votes,
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
            self.out.write_all(b"id,prediction,label")?;
            if self.votes {
                for name in VOTE_COLUMNS {
                    self.out.write_all(b",")?;
                    self.out.write_all(name.as_bytes())?;
                }
            }
            self.out.write_all(b"\n")?;
        }
        Ok(())
    }

    fn write(&mut self, part: &Scored) -> io::Result<()> {
        self.header()?;
        let buf = &mut self.buf;
        buf.clear();
        let mut number = itoa::Buffer::new();
        for (i, answer) in part.answers.iter().enumerate() {
            write_id(buf, &part.ids, i, &mut number);
            buf.push(b',');
            match answer {
                Answer::Class {
                    label, prediction, ..
                } => {
                    match prediction {
                        serde_json::Value::String(s) => write_field(buf, s),
                        other => buf.extend_from_slice(other.to_string().as_bytes()),
                    }
                    buf.push(b',');
                    write_field(buf, label);
                }
                Answer::Value { prediction } => {
                    buf.extend_from_slice(serde_json::json!(prediction).to_string().as_bytes());
                    buf.push(b',');
                }
            }
            buf.push(b'\n');
        }
        for (i, &p) in part.predictions.iter().enumerate() {
            write_id(buf, &part.ids, i, &mut number);
            buf.extend_from_slice(if p { b",1," } else { b",0," });
            write_field(buf, &self.labels[usize::from(p)]);
            if let Some(v) = part.votes.get(i) {
                for vote in [v.logistic, v.tree, v.svm] {
                    buf.extend_from_slice(if vote { b",1" } else { b",0" });
                }
            }
            buf.push(b'\n');
        }
        self.out.write_all(buf)
    }
}

/// One CSV field, quoted when it must be.
fn write_field(out: &mut Vec<u8>, field: &str) {
    if field.contains([',', '"', '\n', '\r']) {
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
        Ids::Text { text, ends } => {
            let start = if i == 0 { 0 } else { ends[i - 1] };
            write_field(buf, &text[start..ends[i]]);
        }
        Ids::Numbers(n) => buf.extend_from_slice(number.format(n[i]).as_bytes()),
    }
}
