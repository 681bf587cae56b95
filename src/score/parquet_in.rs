//! Reading rows to score from Parquet: only the feature and `id` columns, one row group at a
//! time in batches, numeric columns of any width as `f64`, nulls as missing values for the
//! model's imputer. A bad row is reported by row group and row.

use std::borrow::Cow;
use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float16Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type,
    UInt16Type, UInt32Type, UInt64Type,
};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::DataType;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReader,
    ParquetRecordBatchReaderBuilder,
};

use super::{Chunking, Ids, Rows, Shard};
use crate::dataset::scoring::{
    CellError, RowAt, RowError, RowProblem, ScoringColumns, check_value_as,
};

pub struct ParquetSource {
    file: File,
    meta: ArrowReaderMetadata,
    projection: ProjectionMask,
    layout: Arc<Layout>,
    chunking: Chunking,
    /// The next row group to open, and the one being read.
    next_group: usize,
    current: Option<Group>,
}

/// What turns a batch into rows to score: shared by the threads that do it.
pub struct Layout {
    path: PathBuf,
    features: Vec<String>,
    /// Whether negative feature values are taken (an ONNX model's rule).
    allow_negative: bool,
    has_id: bool,
    /// The rows (indexes from 0 in the file) to score.
    range: Range<u64>,
}

/// A batch read and decoded, whose rows are not yet checked (the scoring threads do that).
pub struct Batch {
    batch: RecordBatch,
    group: usize,
    /// The file index of its row group's first row, and of its own first row.
    group_first_row: u64,
    start: u64,
}

struct Group {
    index: usize,
    reader: ParquetRecordBatchReader,
    /// The file index of the group's first row, and of the next row to read from it.
    first_row: u64,
    next_row: u64,
}

fn is_numeric(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
            | DataType::Float16
            | DataType::Float32
            | DataType::Float64
    )
}

impl ParquetSource {
    pub fn open(
        path: &Path,
        features: &[String],
        allow_negative: bool,
        positional: bool,
        shard: Option<Shard>,
        chunking: Chunking,
    ) -> anyhow::Result<Self> {
        let file = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
        let meta = ArrowReaderMetadata::load(&file, ArrowReaderOptions::new())
            .with_context(|| format!("{}: not a readable Parquet file", path.display()))?;
        let schema = meta.schema().clone();
        let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        let columns = if positional {
            ScoringColumns::by_position(path, &names, features.len())?
        } else {
            ScoringColumns::from_names(path, &names, features)?
        };
        for (&i, name) in columns.feature_index().iter().zip(features) {
            let t = schema.field(i).data_type();
            if !is_numeric(t) {
                bail!(
                    "{}: column {name:?} holds {t}; a feature column must hold integers or floats",
                    path.display()
                );
            }
        }
        if let Some(i) = columns.id_index() {
            let t = schema.field(i).data_type();
            if !is_numeric(t)
                && !matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
            {
                bail!(
                    "{}: column \"id\" holds {t}; it must hold text or integers",
                    path.display()
                );
            }
        }
        let roots = columns
            .feature_index()
            .iter()
            .copied()
            .chain(columns.id_index());
        let projection = ProjectionMask::roots(meta.parquet_schema(), roots);
        let total = u64::try_from(meta.metadata().file_metadata().num_rows()).unwrap_or(0);
        let range = shard.map_or(0..total, |s| s.range(total));
        Ok(Self {
            file,
            meta,
            projection,
            layout: Arc::new(Layout {
                path: path.to_path_buf(),
                features: features.to_vec(),
                allow_negative,
                has_id: columns.id_index().is_some(),
                range,
            }),
            chunking,
            next_group: 0,
            current: None,
        })
    }

    /// The rows of the whole file.
    pub fn file_rows(&self) -> u64 {
        u64::try_from(self.meta.metadata().file_metadata().num_rows()).unwrap_or(0)
    }

    /// The rows this run covers.
    pub fn total_rows(&self) -> u64 {
        self.layout.range.end - self.layout.range.start
    }

    /// Up to a chunk of rows, in batches of a part each, with what turns them into rows;
    /// `None` at the end.
    pub fn next_chunk(&mut self) -> anyhow::Result<Option<(Vec<Batch>, Arc<Layout>)>> {
        let mut parts = Vec::new();
        let mut rows = 0;
        while rows < self.chunking.chunk_rows {
            let Some(part) = self.next_part()? else {
                break;
            };
            rows += self.chunking.part_rows;
            parts.push(part);
        }
        Ok((!parts.is_empty()).then(|| (parts, self.layout.clone())))
    }

    fn next_part(&mut self) -> anyhow::Result<Option<Batch>> {
        loop {
            if self.current.is_none() && !self.open_next_group()? {
                return Ok(None);
            }
            let group = self.current.as_mut().expect("a group is open");
            match group.reader.next() {
                Some(batch) => {
                    let batch = batch.with_context(|| {
                        format!(
                            "{}: reading row group {}",
                            self.layout.path.display(),
                            group.index
                        )
                    })?;
                    let start = group.next_row;
                    group.next_row += batch.num_rows() as u64;
                    let batch = Batch {
                        batch,
                        group: group.index,
                        group_first_row: group.first_row,
                        start,
                    };
                    if !self.layout.in_range(&batch).is_empty() {
                        return Ok(Some(batch));
                    }
                }
                None => self.current = None,
            }
        }
    }

    /// Opens the next row group that holds rows of the range; `false` when none is left.
    fn open_next_group(&mut self) -> anyhow::Result<bool> {
        let groups = self.meta.metadata().row_groups();
        let range = self.layout.range.clone();
        let mut first_row: u64 = groups[..self.next_group.min(groups.len())]
            .iter()
            .map(|g| u64::try_from(g.num_rows()).unwrap_or(0))
            .sum();
        while self.next_group < groups.len() {
            let index = self.next_group;
            let rows = u64::try_from(groups[index].num_rows()).unwrap_or(0);
            self.next_group += 1;
            if first_row >= range.end {
                return Ok(false);
            }
            if first_row + rows > range.start && rows > 0 {
                let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(
                    self.file.try_clone()?,
                    self.meta.clone(),
                )
                .with_projection(self.projection.clone())
                .with_row_groups(vec![index])
                .with_batch_size(self.chunking.part_rows)
                .build()
                .with_context(|| {
                    format!("{}: opening row group {index}", self.layout.path.display())
                })?;
                self.current = Some(Group {
                    index,
                    reader,
                    first_row,
                    next_row: first_row,
                });
                return Ok(true);
            }
            first_row += rows;
        }
        Ok(false)
    }
}

impl Layout {
    /// The file indexes of `batch`'s rows that are in range.
    fn in_range(&self, batch: &Batch) -> Range<u64> {
        self.range_of(batch.start, batch.batch.num_rows() as u64)
    }

    /// The file indexes in range of `n` rows from `start`.
    fn range_of(&self, start: u64, n: u64) -> Range<u64> {
        let from = self.range.start.max(start).min(start + n);
        let to = self.range.end.min(start + n).max(from);
        from..to
    }

    /// The rows of `batch` that are in range, checked.
    pub fn rows(&self, batch: &Batch) -> anyhow::Result<Rows> {
        let Batch {
            batch,
            group,
            group_first_row,
            start,
        } = batch;
        let (group, group_first_row, start) = (*group, *group_first_row, *start);
        let column = |name: &str| -> anyhow::Result<&ArrayRef> {
            batch
                .column_by_name(name)
                .with_context(|| format!("{}: column {name:?} not read", self.path.display()))
        };
        let values: Vec<Cow<[f64]>> = self
            .features
            .iter()
            .map(|name| column(name).map(to_f64))
            .collect::<anyhow::Result<_>>()?;
        let ids = if self.has_id {
            Some(column("id")?)
        } else {
            None
        };
        let Range {
            start: from,
            end: to,
        } = self.range_of(start, batch.num_rows() as u64);
        let mut rows = Rows {
            ids: if self.has_id {
                Ids::text()
            } else {
                Ids::default()
            },
            values: Vec::with_capacity((to - from) as usize * self.features.len()),
            errors: Vec::new(),
            covered: to - from,
        };
        let mut bad = Vec::new();
        let mut id = String::new();
        for row in from..to {
            let r = (row - start) as usize;
            let mark = rows.values.len();
            for (name, column) in self.features.iter().zip(&values) {
                match check_value_as(column[r], self.allow_negative) {
                    Ok(v) => rows.values.push(v),
                    Err(problem) => bad.push(CellError {
                        column: name.clone(),
                        problem,
                    }),
                }
            }
            if !bad.is_empty() {
                rows.values.truncate(mark);
                rows.errors.push(RowError {
                    at: RowAt::Parquet {
                        row_group: group,
                        row: row - group_first_row,
                    },
                    problem: RowProblem::Cells(std::mem::take(&mut bad)),
                });
                continue;
            }
            match ids {
                Some(ids) => {
                    id_text(ids, r, &mut id);
                    rows.ids.push(Some(&id), row + 1);
                }
                None => rows.ids.push(None, row + 1),
            }
        }
        Ok(rows)
    }
}

/// A numeric column as `f64`, a null as `NaN` (a missing value); a column of `f64` without
/// nulls as it is.
fn to_f64(array: &ArrayRef) -> Cow<'_, [f64]> {
    if array.null_count() == 0
        && let Some(values) = array.as_primitive_opt::<Float64Type>()
    {
        return Cow::Borrowed(values.values());
    }
    Cow::Owned(to_f64_owned(array))
}

fn to_f64_owned(array: &ArrayRef) -> Vec<f64> {
    macro_rules! convert {
        ($t:ty, $to:expr) => {
            array
                .as_primitive::<$t>()
                .iter()
                .map(|v| v.map_or(f64::NAN, $to))
                .collect()
        };
    }
    match array.data_type() {
        DataType::Int8 => convert!(Int8Type, f64::from),
        DataType::Int16 => convert!(Int16Type, f64::from),
        DataType::Int32 => convert!(Int32Type, f64::from),
        DataType::Int64 => convert!(Int64Type, |v| v as f64),
        DataType::UInt8 => convert!(UInt8Type, f64::from),
        DataType::UInt16 => convert!(UInt16Type, f64::from),
        DataType::UInt32 => convert!(UInt32Type, f64::from),
        DataType::UInt64 => convert!(UInt64Type, |v| v as f64),
        DataType::Float16 => convert!(Float16Type, |v| v.to_f64()),
        DataType::Float32 => convert!(Float32Type, f64::from),
        DataType::Float64 => convert!(Float64Type, |v| v),
        // Checked when the file was opened.
        _ => vec![f64::NAN; array.len()],
    }
}

/// Row `r` of an `id` column (text or integers) as text, into `out`; a null id is empty.
fn id_text(ids: &ArrayRef, r: usize, out: &mut String) {
    out.clear();
    if ids.is_null(r) {
        return;
    }
    let mut number = itoa::Buffer::new();
    let text = match ids.data_type() {
        DataType::Utf8 => ids.as_string::<i32>().value(r),
        DataType::LargeUtf8 => ids.as_string::<i64>().value(r),
        DataType::Utf8View => ids.as_string_view().value(r),
        DataType::Int8 => number.format(ids.as_primitive::<Int8Type>().value(r)),
        DataType::Int16 => number.format(ids.as_primitive::<Int16Type>().value(r)),
        DataType::Int32 => number.format(ids.as_primitive::<Int32Type>().value(r)),
        DataType::Int64 => number.format(ids.as_primitive::<Int64Type>().value(r)),
        DataType::UInt8 => number.format(ids.as_primitive::<UInt8Type>().value(r)),
        DataType::UInt16 => number.format(ids.as_primitive::<UInt16Type>().value(r)),
        DataType::UInt32 => number.format(ids.as_primitive::<UInt32Type>().value(r)),
        DataType::UInt64 => number.format(ids.as_primitive::<UInt64Type>().value(r)),
        DataType::Float16 => {
            out.push_str(&ids.as_primitive::<Float16Type>().value(r).to_string());
            return;
        }
        DataType::Float32 => {
            out.push_str(&ids.as_primitive::<Float32Type>().value(r).to_string());
            return;
        }
        DataType::Float64 => {
            out.push_str(&ids.as_primitive::<Float64Type>().value(r).to_string());
            return;
        }
        _ => "",
    };
    out.push_str(text);
}
