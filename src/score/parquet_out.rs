//! Writing scores as Parquet: `id` (text), `prediction` (int8 for our model's 0 or 1; an ONNX
//! model's int64 or text label, or float64 value), `label` (text; null for a regression) and, on
//! request, one int8 column per model vote and one float32 column per class score;
//! Snappy-compressed, in bounded row groups, `id` without a dictionary.

use std::io::Write;
use std::sync::Arc;

use arrow_array::builder::{Float32Builder, StringBuilder};
use arrow_array::{ArrayRef, Float64Array, Int8Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;

use super::output::{Columns, PredictionKind};
use super::{Ids, Scored};
use crate::model::Answer;

/// Rows per row group: bounds what the writer holds in memory (128 Ki rows took the 10 M-row
/// bench's peak to 66 MiB, over the 64 MiB goal).
const ROW_GROUP_ROWS: usize = 64 * 1024;

pub struct ParquetSink {
    writer: ArrowWriter<Box<dyn Write + Send>>,
    schema: SchemaRef,
    columns: Columns,
}

impl ParquetSink {
    pub fn new(out: Box<dyn Write + Send>, columns: Columns) -> anyhow::Result<Self> {
        let prediction = match columns.prediction {
            PredictionKind::Flag => DataType::Int8,
            PredictionKind::Integer => DataType::Int64,
            PredictionKind::Text => DataType::Utf8,
            PredictionKind::Number => DataType::Float64,
        };
        let names = columns.names();
        let mut fields = vec![
            Field::new(&names[0], DataType::Utf8, false),
            Field::new(&names[1], prediction, false),
            Field::new(&names[2], DataType::Utf8, true),
        ];
        let votes = if columns.votes { 3 } else { 0 };
        fields.extend(
            names[3..3 + votes]
                .iter()
                .map(|n| Field::new(n, DataType::Int8, false)),
        );
        fields.extend(
            names[3 + votes..]
                .iter()
                .map(|n| Field::new(n, DataType::Float32, false)),
        );
        let schema = Arc::new(Schema::new(fields));
        // Ids are (nearly always) unique: a dictionary of them costs a hash table insert per
        // row, most of the writer's time, to save nothing.
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .set_column_dictionary_enabled(ColumnPath::from(names[0].as_str()), false)
            .build();
        let writer = ArrowWriter::try_new(out, schema.clone(), Some(props))?;
        Ok(Self {
            writer,
            schema,
            columns,
        })
    }

    pub fn write(&mut self, part: &Scored) -> anyhow::Result<()> {
        let n = part.rows();
        if n == 0 {
            return Ok(());
        }
        let mut ids = StringBuilder::with_capacity(n, 16 * n);
        match &part.ids {
            Ids::Text { .. } => (0..n).for_each(|i| ids.append_value(part.ids.text_at(i))),
            Ids::Numbers(v) => {
                let mut number = itoa::Buffer::new();
                v.iter().for_each(|&i| ids.append_value(number.format(i)));
            }
        }
        let mut columns: Vec<ArrayRef> = vec![Arc::new(ids.finish())];
        columns.extend(self.predictions_and_labels(part)?);
        if self.columns.votes {
            let int8 = |f: fn(&crate::pipeline::Votes) -> bool| -> ArrayRef {
                Arc::new(Int8Array::from_iter_values(
                    part.votes.iter().map(|v| i8::from(f(v))),
                ))
            };
            columns.push(int8(|v| v.logistic));
            columns.push(int8(|v| v.tree));
            columns.push(int8(|v| v.svm));
        }
        let k = self.columns.scores.len();
        let mut scores: Vec<Float32Builder> =
            (0..k).map(|_| Float32Builder::with_capacity(n)).collect();
        for i in 0..n {
            for (column, &score) in scores.iter_mut().zip(part.scores(i)) {
                column.append_value(score);
            }
        }
        columns.extend(
            scores
                .iter_mut()
                .map(|column| Arc::new(column.finish()) as ArrayRef),
        );
        let batch = RecordBatch::try_new(self.schema.clone(), columns)?;
        self.writer.write(&batch)?;
        Ok(())
    }

    /// The `prediction` and `label` columns: our model's decisions, or the model's answers.
    fn predictions_and_labels(&self, part: &Scored) -> anyhow::Result<[ArrayRef; 2]> {
        let labels = &self.columns.labels;
        if !part.predictions.is_empty() {
            return Ok([
                Arc::new(Int8Array::from_iter_values(
                    part.predictions.iter().map(|&p| i8::from(p)),
                )),
                Arc::new(StringArray::from_iter_values(
                    part.predictions.iter().map(|&p| &labels[usize::from(p)]),
                )),
            ]);
        }
        let answers = &part.answers;
        let label_of = |a: &Answer| match a {
            Answer::Class { label, .. } => Some(label.clone()),
            Answer::Value { .. } => None,
        };
        let unexpected = || anyhow::anyhow!("the model answered a row in an unexpected form");
        let prediction: ArrayRef = match self.columns.prediction {
            PredictionKind::Flag | PredictionKind::Integer => {
                let values = answers
                    .iter()
                    .map(|a| match a {
                        Answer::Class { prediction, .. } => prediction.as_i64(),
                        Answer::Value { .. } => None,
                    })
                    .collect::<Option<Vec<i64>>>()
                    .ok_or_else(unexpected)?;
                if self.columns.prediction == PredictionKind::Flag {
                    let flags = values
                        .into_iter()
                        .map(|v| i8::try_from(v).ok())
                        .collect::<Option<Vec<i8>>>()
                        .ok_or_else(unexpected)?;
                    Arc::new(Int8Array::from(flags))
                } else {
                    Arc::new(Int64Array::from(values))
                }
            }
            PredictionKind::Text => Arc::new(
                answers
                    .iter()
                    .map(label_of)
                    .collect::<Option<Vec<String>>>()
                    .map(StringArray::from)
                    .ok_or_else(unexpected)?,
            ),
            PredictionKind::Number => Arc::new(Float64Array::from(
                answers
                    .iter()
                    .map(|a| match a {
                        Answer::Value { prediction } => Some(*prediction),
                        Answer::Class { .. } => None,
                    })
                    .collect::<Option<Vec<f64>>>()
                    .ok_or_else(unexpected)?,
            )),
        };
        let labels: StringArray = answers.iter().map(label_of).collect();
        Ok([prediction, Arc::new(labels)])
    }

    pub fn finish(self) -> anyhow::Result<()> {
        let mut out = self.writer.into_inner()?;
        out.flush()?;
        Ok(())
    }
}
