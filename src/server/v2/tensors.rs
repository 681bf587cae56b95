//! Reading V2 input tensors into rows of the model's features, and choosing the outputs. The
//! reader is the same for every wire format: JSON `data`, binary tensor data (REST's binary
//! extension, gRPC's `raw_input_contents`) and gRPC's typed `contents`.

use serde_json::{Number, Value};

use super::BATCH_INPUT;
use super::error::*;
use super::types::*;
use crate::model::OutputSpec;

/// The index of the model's output called `name` (in `specs`), or a 400 listing its outputs.
pub fn output_named(specs: &[OutputSpec], name: &str) -> Result<usize, V2Error> {
    specs.iter().position(|o| o.name == name).ok_or_else(|| {
        let names: Vec<&str> = specs.iter().map(|o| o.name.as_str()).collect();
        bad(format!(
            "unknown output {name:?}; this model's outputs are: {}",
            names.join(", ")
        ))
    })
}

/// An output's shape for `rows` rows: `[N]` or `[N, k]`.
pub fn output_shape(spec: &OutputSpec, rows: u64) -> OutputShape {
    match spec.columns {
        None => OutputShape {
            dims: [rows, 0],
            len: 1,
        },
        Some(k) => OutputShape {
            dims: [rows, k as u64],
            len: 2,
        },
    }
}

/// A boolean parameter: absent is `None`; anything but a boolean is a 400.
pub(super) fn flag(
    parameters: Option<&serde_json::Map<String, Value>>,
    key: &str,
    whose: &dyn std::fmt::Display,
) -> Result<Option<bool>, V2Error> {
    match parameters.and_then(|p| p.get(key)) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(bad(format!(
            "{whose}: parameter {key:?} must be true or false, got {}",
            kind_of(other)
        ))),
    }
}

/// The outputs a request asks for, in its order (all of them when it names none), each with
/// whether it is wanted as binary tensor data: the output's `binary_data` parameter, else the
/// request's `binary_data_output`.
pub(super) fn select_outputs(
    request: &InferenceRequest,
    specs: &[OutputSpec],
) -> Result<Vec<(usize, bool)>, V2Error> {
    let all_binary = flag(
        request.parameters.as_ref(),
        "binary_data_output",
        &"the request",
    )?
    .unwrap_or(false);
    let Some(wanted) = request.outputs.as_deref().filter(|o| !o.is_empty()) else {
        return Ok((0..specs.len()).map(|o| (o, all_binary)).collect());
    };
    let mut selected: Vec<(usize, bool)> = Vec::with_capacity(wanted.len().min(specs.len()));
    for out in wanted {
        let output = output_named(specs, &out.name)?;
        if selected.iter().any(|(o, _)| *o == output) {
            return Err(bad(format!("output {:?} is asked for twice", out.name)));
        }
        // The output's name is written out only for an error.
        let whose = format_args!("output {:?}", out.name);
        let binary = flag(out.parameters.as_ref(), "binary_data", &whose)?.unwrap_or(all_binary);
        selected.push((output, binary));
    }
    Ok(selected)
}

// ------------------------------------------------------------------ inputs

/// The element types an input may have. Integers are read exactly and become the feature's
/// value (INT64 and UINT64 above 2^53 are rounded to the nearest FP64).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Datatype {
    Fp64,
    Fp32,
    Int8,
    Int16,
    Int32,
    Int64,
    Uint8,
    Uint16,
    Uint32,
    Uint64,
}

impl Datatype {
    pub const ALL: [Self; 10] = [
        Self::Fp64,
        Self::Fp32,
        Self::Int8,
        Self::Int16,
        Self::Int32,
        Self::Int64,
        Self::Uint8,
        Self::Uint16,
        Self::Uint32,
        Self::Uint64,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Fp64 => "FP64",
            Self::Fp32 => "FP32",
            Self::Int8 => "INT8",
            Self::Int16 => "INT16",
            Self::Int32 => "INT32",
            Self::Int64 => "INT64",
            Self::Uint8 => "UINT8",
            Self::Uint16 => "UINT16",
            Self::Uint32 => "UINT32",
            Self::Uint64 => "UINT64",
        }
    }

    /// Bytes per element in binary tensor data.
    pub fn size(self) -> usize {
        match self {
            Self::Int8 | Self::Uint8 => 1,
            Self::Int16 | Self::Uint16 => 2,
            Self::Fp32 | Self::Int32 | Self::Uint32 => 4,
            Self::Fp64 | Self::Int64 | Self::Uint64 => 8,
        }
    }

    /// The smallest and largest integer of an integer type.
    fn int_range(self) -> Option<(i128, i128)> {
        match self {
            Self::Fp64 | Self::Fp32 => None,
            Self::Int8 => Some((i8::MIN.into(), i8::MAX.into())),
            Self::Int16 => Some((i16::MIN.into(), i16::MAX.into())),
            Self::Int32 => Some((i32::MIN.into(), i32::MAX.into())),
            Self::Int64 => Some((i64::MIN.into(), i64::MAX.into())),
            Self::Uint8 => Some((0, u8::MAX.into())),
            Self::Uint16 => Some((0, u16::MAX.into())),
            Self::Uint32 => Some((0, u32::MAX.into())),
            Self::Uint64 => Some((0, u64::MAX.into())),
        }
    }

    /// Every accepted name, space-separated (the model metadata's `input_datatypes`).
    pub fn names() -> String {
        Self::ALL.map(Self::name).join(" ")
    }

    /// One element of binary tensor data (`bytes.len() == self.size()`), little-endian.
    fn decode(self, bytes: &[u8]) -> f64 {
        let mut b = [0u8; 8];
        b[..bytes.len()].copy_from_slice(bytes);
        let [b0, b1, b2, b3, ..] = b;
        match self {
            Self::Fp64 => f64::from_le_bytes(b),
            Self::Fp32 => f64::from(f32::from_le_bytes([b0, b1, b2, b3])),
            Self::Int8 => f64::from(i8::from_le_bytes([b0])),
            Self::Int16 => f64::from(i16::from_le_bytes([b0, b1])),
            Self::Int32 => f64::from(i32::from_le_bytes([b0, b1, b2, b3])),
            Self::Int64 => i64::from_le_bytes(b) as f64,
            Self::Uint8 => f64::from(b0),
            Self::Uint16 => f64::from(u16::from_le_bytes([b0, b1])),
            Self::Uint32 => f64::from(u32::from_le_bytes([b0, b1, b2, b3])),
            Self::Uint64 => u64::from_le_bytes(b) as f64,
        }
    }
}

/// Where an input's elements are.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    /// REST's JSON `data`, flat or nested.
    Json(&'a JsonData),
    /// Raw little-endian elements, row-major: REST's binary tensor data or gRPC's
    /// `raw_input_contents`.
    Binary(&'a [u8]),
    /// gRPC's typed `contents`, already in the field the datatype names.
    Fp64(&'a [f64]),
    Fp32(&'a [f32]),
    Int32(&'a [i32]),
    Int64(&'a [i64]),
    Uint32(&'a [u32]),
    Uint64(&'a [u64]),
}

/// One input tensor, whatever the wire format.
#[derive(Debug, Clone, Copy)]
pub struct Tensor<'a> {
    pub name: &'a str,
    pub datatype: &'a str,
    pub shape: &'a [u64],
    pub source: Source<'a>,
}

pub(super) fn datatype(input: &Tensor) -> Result<Datatype, V2Error> {
    Datatype::ALL
        .into_iter()
        .find(|d| d.name() == input.datatype)
        .ok_or_else(|| {
            bad(format!(
                "input {:?} has datatype {:?}; this model takes {}",
                input.name,
                input.datatype,
                Datatype::names()
            ))
        })
}

pub(super) fn shape_text<T: std::fmt::Display>(shape: &[T]) -> String {
    let dims: Vec<String> = shape.iter().map(T::to_string).collect();
    format!("[{}]", dims.join(", "))
}

pub(super) fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The two input layouts, for the error messages.
pub(super) fn layouts_help(features: &[String]) -> String {
    format!(
        "send one tensor {BATCH_INPUT:?} of shape [N, {}] or one tensor per feature of shape [N]: {}",
        features.len(),
        features.join(", ")
    )
}

/// The rows of the request, checked against the limit: N must be at least 1 and at most `max`.
pub(super) fn check_rows(rows: u64, max: usize) -> Result<usize, V2Error> {
    if rows == 0 {
        return Err(bad("the inputs hold no rows: N must be at least 1"));
    }
    match usize::try_from(rows) {
        Ok(rows) if rows <= max => Ok(rows),
        _ => Err(V2Error::TooManyRows {
            rows: usize::try_from(rows).unwrap_or(usize::MAX),
            max,
        }),
    }
}

/// The number of elements `shape` holds, if it can be counted.
fn element_count(input: &Tensor, shape: &[usize]) -> Result<usize, V2Error> {
    shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| {
            bad(format!(
                "input {:?}: shape {} holds more elements than can be counted",
                input.name,
                shape_text(shape)
            ))
        })
}

/// One JSON element of a tensor: a number, or the value that is not one (named in the error).
#[derive(Debug, Clone, Copy)]
enum Item<'a> {
    Number(&'a Number),
    Other(&'a Value),
}

impl<'a> From<&'a Value> for Item<'a> {
    fn from(value: &'a Value) -> Self {
        match value {
            Value::Number(number) => Self::Number(number),
            other => Self::Other(other),
        }
    }
}

/// The tensor's JSON elements in row-major order. `data` is flat (exactly as many elements as
/// the shape holds) or nested exactly as the shape. Nothing is allocated by the shape's word: a
/// shape that claims more than the data holds costs no more than the data.
fn elements<'a>(
    input: &Tensor,
    data: &'a JsonData,
    shape: &[usize],
) -> Result<Vec<Item<'a>>, V2Error> {
    let total = element_count(input, shape)?;
    let wrong_count = |len: usize| {
        bad(format!(
            "input {:?}: shape {} holds {total} elements, but data has {len}",
            input.name,
            shape_text(shape),
        ))
    };
    let data = match data {
        JsonData::Numbers(numbers) if numbers.len() == total => {
            return Ok(numbers.iter().map(Item::Number).collect());
        }
        JsonData::Numbers(numbers) => return Err(wrong_count(numbers.len())),
        JsonData::Other(data) => data,
    };
    let Value::Array(items) = data else {
        return Err(bad(format!(
            "input {:?}: data must be an array of numbers, got {}",
            input.name,
            kind_of(data)
        )));
    };
    let mut out = Vec::with_capacity(items.len());
    if items.iter().any(Value::is_array) {
        nested(input, data, shape, &mut String::new(), &mut out)?;
    } else if items.len() == total {
        out.extend(items.iter().map(Item::from));
    } else {
        return Err(wrong_count(items.len()));
    }
    Ok(out)
}

fn nested<'a>(
    input: &Tensor,
    value: &'a Value,
    shape: &[usize],
    at: &mut String,
    out: &mut Vec<Item<'a>>,
) -> Result<(), V2Error> {
    let Some((&len, rest)) = shape.split_first() else {
        if value.is_array() {
            return Err(bad(format!(
                "input {:?}: data{at} is an array, but the shape has no dimension left for it",
                input.name
            )));
        }
        out.push(Item::from(value));
        return Ok(());
    };
    match value {
        Value::Array(items) if items.len() == len => {
            for (i, item) in items.iter().enumerate() {
                let mark = at.len();
                at.push_str(&format!("[{i}]"));
                nested(input, item, rest, at, out)?;
                at.truncate(mark);
            }
            Ok(())
        }
        Value::Array(items) => Err(bad(format!(
            "input {:?}: data{at} has {} elements, but the shape says {len}",
            input.name,
            items.len()
        ))),
        other => Err(bad(format!(
            "input {:?}: data{at} is {}, but the shape says an array of {len}",
            input.name,
            kind_of(other)
        ))),
    }
}

/// One JSON element as a number of its datatype: FP32 rounded to FP32 (and range-checked),
/// integer types integers (or integral floats) within the type's range.
fn json_number(
    input: &Tensor,
    datatype: Datatype,
    item: Item,
    at: &dyn Fn() -> String,
) -> Result<f64, V2Error> {
    let number = match item {
        Item::Number(number) => number,
        Item::Other(value) => {
            return Err(bad(format!(
                "input {:?}: {} is {}, but tensor data must be numbers",
                input.name,
                at(),
                kind_of(value)
            )));
        }
    };
    if let Some((min, max)) = datatype.int_range() {
        // An integral float (`3.0`, as some encoders write integers) is that integer.
        let int = number
            .as_i64()
            .map(i128::from)
            .or_else(|| number.as_u64().map(i128::from))
            .or_else(|| {
                let f = number.as_f64()?;
                (f.fract() == 0.0 && f.abs() < 2f64.powi(64)).then_some(f as i128)
            });
        return match int {
            Some(i) if (min..=max).contains(&i) => Ok(i as f64),
            Some(i) => Err(bad(format!(
                "input {:?}: {} is {i}, outside the range of {}",
                input.name,
                at(),
                datatype.name()
            ))),
            None => Err(bad(format!(
                "input {:?}: {} is {number}, but {} data must be integers",
                input.name,
                at(),
                datatype.name()
            ))),
        };
    }
    let v = number.as_f64().unwrap_or(f64::NAN);
    if datatype == Datatype::Fp32 {
        let single = v as f32;
        if v.is_finite() && !single.is_finite() {
            return Err(bad(format!(
                "input {:?}: {} is {v}, outside the range of FP32",
                input.name,
                at()
            )));
        }
        return Ok(f64::from(single));
    }
    Ok(v)
}

/// How inputs are read: at most `max_rows` rows, and whether feature values must be ≥ 0 (our
/// model's rule; an ONNX model takes any finite value).
#[derive(Debug, Clone, Copy)]
pub struct ReadRules {
    pub max_rows: usize,
    pub nonnegative: bool,
}

impl From<usize> for ReadRules {
    fn from(max_rows: usize) -> Self {
        Self {
            max_rows,
            nonnegative: true,
        }
    }
}

/// A feature value must be finite, and not negative when the rules say so.
fn check_feature(
    input: &Tensor,
    v: f64,
    nonnegative: bool,
    at: &dyn Fn() -> String,
) -> Result<f64, V2Error> {
    if !v.is_finite() {
        return Err(bad(format!(
            "input {:?}: {} is not a finite number",
            input.name,
            at()
        )));
    }
    if nonnegative && v < 0.0 {
        return Err(bad(format!(
            "input {:?}: {} is {v}, but a feature value must be ≥ 0",
            input.name,
            at()
        )));
    }
    Ok(v)
}

/// A typed gRPC contents field: as many elements as the shape holds, each in the type's range.
fn typed<T: Copy>(
    input: &Tensor,
    items: &[T],
    total: usize,
    field: &str,
    convert: impl Fn(T) -> Option<f64>,
) -> Result<Vec<f64>, V2Error> {
    if items.len() != total {
        return Err(bad(format!(
            "input {:?}: shape {} holds {total} elements, but {field} has {}",
            input.name,
            shape_text(input.shape),
            items.len()
        )));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            convert(x).ok_or_else(|| {
                bad(format!(
                    "input {:?}: element {i} of {field} is outside the range of {}",
                    input.name, input.datatype
                ))
            })
        })
        .collect()
}

/// The tensor's elements, row-major, as numbers of its datatype (not yet checked as feature
/// values). `at(i)` names element `i` in errors.
fn numbers(
    input: &Tensor,
    datatype: Datatype,
    shape: &[usize],
    at: &dyn Fn(usize) -> String,
) -> Result<Vec<f64>, V2Error> {
    let in_range = |x: i128| {
        let (min, max) = datatype.int_range()?;
        (min..=max).contains(&x).then_some(x as f64)
    };
    let mismatch = |field: &str| {
        bad(format!(
            "input {:?} has datatype {} but its data is in {field}",
            input.name,
            datatype.name()
        ))
    };
    let total = element_count(input, shape)?;
    match input.source {
        Source::Json(data) => elements(input, data, shape)?
            .into_iter()
            .enumerate()
            .map(|(i, item)| json_number(input, datatype, item, &|| at(i)))
            .collect(),
        Source::Binary(bytes) => {
            let size = datatype.size();
            let expected = total.checked_mul(size);
            if expected != Some(bytes.len()) {
                return Err(bad(format!(
                    "input {:?}: shape {} of {} takes {} bytes, but its binary data has {}",
                    input.name,
                    shape_text(shape),
                    datatype.name(),
                    expected.map_or_else(|| "more".to_string(), |n| n.to_string()),
                    bytes.len()
                )));
            }
            Ok(bytes
                .chunks_exact(size)
                .map(|b| datatype.decode(b))
                .collect())
        }
        Source::Fp64(items) if datatype == Datatype::Fp64 => {
            typed(input, items, total, "fp64_contents", Some)
        }
        Source::Fp32(items) if datatype == Datatype::Fp32 => {
            typed(input, items, total, "fp32_contents", |x| Some(f64::from(x)))
        }
        Source::Int32(items)
            if matches!(datatype, Datatype::Int8 | Datatype::Int16 | Datatype::Int32) =>
        {
            typed(input, items, total, "int_contents", |x| in_range(x.into()))
        }
        Source::Int64(items) if datatype == Datatype::Int64 => {
            typed(input, items, total, "int64_contents", |x| Some(x as f64))
        }
        Source::Uint32(items)
            if matches!(
                datatype,
                Datatype::Uint8 | Datatype::Uint16 | Datatype::Uint32
            ) =>
        {
            typed(input, items, total, "uint_contents", |x| in_range(x.into()))
        }
        Source::Uint64(items) if datatype == Datatype::Uint64 => {
            typed(input, items, total, "uint64_contents", |x| Some(x as f64))
        }
        Source::Fp64(_) => Err(mismatch("fp64_contents")),
        Source::Fp32(_) => Err(mismatch("fp32_contents")),
        Source::Int32(_) => Err(mismatch("int_contents")),
        Source::Int64(_) => Err(mismatch("int64_contents")),
        Source::Uint32(_) => Err(mismatch("uint_contents")),
        Source::Uint64(_) => Err(mismatch("uint64_contents")),
    }
}

/// Reads the request's inputs into rows of the model's features, one after another.
pub fn read_inputs(
    features: &[String],
    inputs: &[Tensor],
    rules: impl Into<ReadRules>,
) -> Result<Vec<f64>, V2Error> {
    let rules = rules.into();
    if inputs.is_empty() {
        return Err(bad(format!(
            "the request has no inputs; {}",
            layouts_help(features)
        )));
    }
    if let Some(batch) = inputs.iter().find(|i| i.name == BATCH_INPUT) {
        if inputs.len() > 1 {
            return Err(bad(format!(
                "input {BATCH_INPUT:?} holds every feature: send it alone, not with other inputs"
            )));
        }
        return read_matrix(features, batch, rules);
    }
    read_columns(features, inputs, rules)
}

/// The `[N, width]` layout.
pub(super) fn read_matrix(
    features: &[String],
    input: &Tensor,
    rules: ReadRules,
) -> Result<Vec<f64>, V2Error> {
    let width = features.len();
    let datatype = datatype(input)?;
    let wrong_shape = || {
        bad(format!(
            "input {:?} has shape {}; it must be [N, {width}], N rows of: {}",
            input.name,
            shape_text(input.shape),
            features.join(", ")
        ))
    };
    let [rows, columns] = input.shape[..] else {
        return Err(wrong_shape());
    };
    if columns != width as u64 {
        return Err(wrong_shape());
    }
    let rows = check_rows(rows, rules.max_rows)?;
    let at = |i: usize| {
        format!(
            "row {}, column {} ({})",
            i / width,
            i % width,
            features[i % width]
        )
    };
    let mut values = numbers(input, datatype, &[rows, width], &at)?;
    for (i, v) in values.iter_mut().enumerate() {
        *v = check_feature(input, *v, rules.nonnegative, &|| at(i))?;
    }
    Ok(values)
}

/// The one-tensor-per-feature layout: every feature once, each `[N]` or `[N, 1]`, one N.
pub(super) fn read_columns(
    features: &[String],
    inputs: &[Tensor],
    rules: ReadRules,
) -> Result<Vec<f64>, V2Error> {
    let width = features.len();
    let mut columns: Vec<Option<(&Tensor, Datatype)>> = vec![None; width];
    let mut rows: Option<(u64, &str)> = None;
    for input in inputs {
        let Some(j) = features.iter().position(|f| *f == input.name) else {
            return Err(bad(format!(
                "unknown input {:?}; {}",
                input.name,
                layouts_help(features)
            )));
        };
        if columns[j].is_some() {
            return Err(bad(format!("input {:?} is given twice", input.name)));
        }
        let datatype = datatype(input)?;
        let n = match input.shape[..] {
            [n] | [n, 1] => n,
            _ => {
                return Err(bad(format!(
                    "input {:?} has shape {}; a feature's tensor must be [N] or [N, 1]",
                    input.name,
                    shape_text(input.shape)
                )));
            }
        };
        match rows {
            Some((first, first_name)) if first != n => {
                return Err(bad(format!(
                    "input {:?} has {n} rows but input {first_name:?} has {first}: every input must have the same N",
                    input.name
                )));
            }
            Some(_) => {}
            None => rows = Some((n, input.name)),
        }
        columns[j] = Some((input, datatype));
    }
    let missing: Vec<&str> = features
        .iter()
        .zip(&columns)
        .filter(|(_, c)| c.is_none())
        .map(|(f, _)| f.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(bad(format!(
            "missing input(s): {}; {}",
            missing.join(", "),
            layouts_help(features)
        )));
    }
    let rows = check_rows(rows.map_or(0, |(n, _)| n), rules.max_rows)?;
    // Every column is present (checked above); its data is checked against N before the rows
    // are allocated.
    let at = |r: usize| format!("row {r}");
    let mut cells = Vec::with_capacity(width);
    for (input, datatype) in columns.into_iter().flatten() {
        let shape: &[usize] = if input.shape.len() == 2 {
            &[rows, 1]
        } else {
            &[rows]
        };
        cells.push((input, numbers(input, datatype, shape, &at)?));
    }
    let mut values = vec![0.0; rows * width];
    for (j, (input, column)) in cells.into_iter().enumerate() {
        for (r, value) in column.into_iter().enumerate() {
            values[r * width + j] = check_feature(input, value, rules.nonnegative, &|| at(r))?;
        }
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(name: &str, shape: &[u64], datatype: &str, data: Value) -> RequestInput<'static> {
        RequestInput {
            name: name.to_string().into(),
            shape: shape.to_vec(),
            datatype: datatype.to_string().into(),
            parameters: None,
            data: Some(serde_json::from_value(data).unwrap()),
        }
    }

    fn read_inputs(
        features: &[String],
        inputs: &[RequestInput<'_>],
        max_rows: usize,
    ) -> Result<Vec<f64>, V2Error> {
        let tensors: Vec<Tensor> = inputs
            .iter()
            .map(|i| Tensor {
                name: &i.name,
                datatype: &i.datatype,
                shape: &i.shape,
                source: Source::Json(i.data.as_ref().unwrap()),
            })
            .collect();
        super::read_inputs(features, &tensors, max_rows)
    }

    fn features() -> Vec<String> {
        vec!["a".to_string(), "b".to_string()]
    }

    #[test]
    fn matrix_data_may_be_flat_or_nested() {
        let flat = input(
            BATCH_INPUT,
            &[2, 2],
            "FP64",
            serde_json::json!([1, 2, 3, 4]),
        );
        let nested = input(
            BATCH_INPUT,
            &[2, 2],
            "FP64",
            serde_json::json!([[1, 2], [3, 4]]),
        );
        for i in [flat, nested] {
            assert_eq!(
                read_inputs(&features(), &[i], 10).unwrap(),
                vec![1.0, 2.0, 3.0, 4.0]
            );
        }
    }

    #[test]
    fn columns_are_interleaved_into_rows() {
        let a = input("a", &[2], "FP64", serde_json::json!([1, 3]));
        let b = input("b", &[2, 1], "FP32", serde_json::json!([[2], [4]]));
        assert_eq!(
            read_inputs(&features(), &[b, a], 10).unwrap(),
            vec![1.0, 2.0, 3.0, 4.0]
        );
    }

    #[test]
    fn nested_data_must_follow_the_shape() {
        let ragged = input(
            BATCH_INPUT,
            &[2, 2],
            "FP64",
            serde_json::json!([[1, 2], [3]]),
        );
        let err = read_inputs(&features(), &[ragged], 10).unwrap_err();
        assert!(err.message().contains("data[1] has 1 elements"), "{err:?}");
        let deep = input("a", &[1], "FP64", serde_json::json!([[1]]));
        let b = input("b", &[1], "FP64", serde_json::json!([1]));
        let err = read_inputs(&features(), &[deep, b], 10).unwrap_err();
        assert!(err.message().contains("data[0] is an array"), "{err:?}");
    }

    #[test]
    fn fp32_values_are_rounded_and_range_checked() {
        let a = input("a", &[1], "FP32", serde_json::json!([0.1]));
        let b = input("b", &[1], "FP32", serde_json::json!([1e39]));
        let err = read_inputs(&features(), &[a.clone(), b], 10).unwrap_err();
        assert!(err.message().contains("range of FP32"), "{err:?}");
        let b = input("b", &[1], "FP64", serde_json::json!([1e39]));
        assert_eq!(
            read_inputs(&features(), &[a, b], 10).unwrap(),
            vec![f64::from(0.1f32), 1e39]
        );
    }
}
