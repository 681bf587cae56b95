//! Writing scores as Parquet: `id` (text), `prediction` (int8), `label` (text) and, on
//! request, one int8 column per model vote; Snappy-compressed, in bounded row groups.

use std::io::Write;
use std::sync::Arc;

use arrow_array::{ArrayRef, Int8Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use super::output::VOTE_COLUMNS;
use super::{Ids, Scored};

/// Rows per row group: bounds what the writer holds in memory.
const ROW_GROUP_ROWS: usize = 128 * 1024;

pub struct ParquetSink {
    writer: ArrowWriter<Box<dyn Write + Send>>,
    schema: SchemaRef,
    labels: [String; 2],
    votes: bool,
}

impl ParquetSink {
    pub fn new(
        out: Box<dyn Write + Send>,
        labels: [String; 2],
        votes: bool,
    ) -> anyhow::Result<Self> {
        let mut fields = vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("prediction", DataType::Int8, false),
            Field::new("label", DataType::Utf8, false),
        ];
        if votes {
            fields.extend(VOTE_COLUMNS.map(|n| Field::new(n, DataType::Int8, false)));
        }
        let schema = Arc::new(Schema::new(fields));
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .build();
        let writer = ArrowWriter::try_new(out, schema.clone(), Some(props))?;
        Ok(Self {
            writer,
            schema,
            labels,
            votes,
        })
    }

    pub fn write(&mut self, part: &Scored) -> anyhow::Result<()> {
        let n = part.predictions.len();
        if n == 0 {
            return Ok(());
        }
        let ids: StringArray = match &part.ids {
            Ids::Text { text, ends } => (0..n)
                .map(|i| Some(&text[if i == 0 { 0 } else { ends[i - 1] }..ends[i]]))
                .collect(),
            Ids::Numbers(v) => v.iter().map(|n| Some(n.to_string())).collect(),
        };
        let int8 = |f: &dyn Fn(usize) -> bool| -> ArrayRef {
            Arc::new(Int8Array::from_iter_values((0..n).map(|i| i8::from(f(i)))))
        };
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(ids),
            int8(&|i| part.predictions[i]),
            Arc::new(StringArray::from_iter_values(
                part.predictions
                    .iter()
                    .map(|&p| self.labels[usize::from(p)].as_str()),
            )),
        ];
        if self.votes {
            columns.push(int8(&|i| part.votes[i].logistic));
            columns.push(int8(&|i| part.votes[i].tree));
            columns.push(int8(&|i| part.votes[i].svm));
        }
        let batch = RecordBatch::try_new(self.schema.clone(), columns)?;
        self.writer.write(&batch)?;
        Ok(())
    }

    pub fn finish(self) -> anyhow::Result<()> {
        let mut out = self.writer.into_inner()?;
        out.flush()?;
        Ok(())
    }
}
