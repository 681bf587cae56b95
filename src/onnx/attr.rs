//! Reading one node's attributes by name and type, with a readable error for each mistake.

use super::proto::{AttributeProto, NodeProto, attribute_proto::AttributeType};
use super::tensor::{self, Tensor};

/// The attributes of one node.
pub struct Attrs<'a> {
    node: &'a NodeProto,
}

fn type_name(a: &AttributeProto) -> &'static str {
    a.r#type
        .and_then(|t| AttributeType::try_from(t).ok())
        .map(|t| t.as_str_name())
        .unwrap_or("UNDEFINED")
}

impl<'a> Attrs<'a> {
    pub fn new(node: &'a NodeProto) -> Self {
        Attrs { node }
    }

    fn get(&self, name: &str) -> Option<&'a AttributeProto> {
        self.node
            .attribute
            .iter()
            .find(|a| a.name.as_deref() == Some(name))
    }

    fn expect(&self, a: &AttributeProto, ty: AttributeType) -> Result<(), String> {
        if a.r#type == Some(ty as i32) {
            Ok(())
        } else {
            Err(format!(
                "attribute {:?} is {}, expected {}",
                a.name.as_deref().unwrap_or(""),
                type_name(a),
                ty.as_str_name()
            ))
        }
    }

    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    pub fn int(&self, name: &str) -> Result<Option<i64>, String> {
        let Some(a) = self.get(name) else {
            return Ok(None);
        };
        self.expect(a, AttributeType::Int)?;
        Ok(a.i)
    }

    pub fn int_or(&self, name: &str, default: i64) -> Result<i64, String> {
        Ok(self.int(name)?.unwrap_or(default))
    }

    pub fn float(&self, name: &str) -> Result<Option<f32>, String> {
        let Some(a) = self.get(name) else {
            return Ok(None);
        };
        self.expect(a, AttributeType::Float)?;
        Ok(a.f)
    }

    pub fn string(&self, name: &str) -> Result<Option<String>, String> {
        let Some(a) = self.get(name) else {
            return Ok(None);
        };
        self.expect(a, AttributeType::String)?;
        let bytes = a.s.clone().unwrap_or_default();
        String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| format!("attribute {name:?} is not UTF-8"))
    }

    pub fn string_or(&self, name: &str, default: &str) -> Result<String, String> {
        Ok(self.string(name)?.unwrap_or_else(|| default.to_owned()))
    }

    pub fn ints(&self, name: &str) -> Result<Option<Vec<i64>>, String> {
        let Some(a) = self.get(name) else {
            return Ok(None);
        };
        self.expect(a, AttributeType::Ints)?;
        Ok(Some(a.ints.clone()))
    }

    pub fn ints_or_empty(&self, name: &str) -> Result<Vec<i64>, String> {
        Ok(self.ints(name)?.unwrap_or_default())
    }

    /// A list of floats, or of doubles when the attribute `<name>_as_tensor` is there instead
    /// (ai.onnx.ml opset 3 spells the tree ensembles' values so).
    pub fn floats_f64(&self, name: &str) -> Result<Option<Vec<f64>>, String> {
        if let Some(a) = self.get(name) {
            self.expect(a, AttributeType::Floats)?;
            return Ok(Some(a.floats.iter().map(|&v| f64::from(v)).collect()));
        }
        let tensor_name = format!("{name}_as_tensor");
        let Some(t) = self.tensor(&tensor_name)? else {
            return Ok(None);
        };
        match t.data {
            tensor::Data::F32(v) => Ok(Some(v.into_iter().map(f64::from).collect())),
            tensor::Data::F64(v) => Ok(Some(v)),
            other => Err(format!(
                "attribute {tensor_name:?} holds {}, expected float or double",
                other.elem_type().onnx_name()
            )),
        }
    }

    pub fn floats(&self, name: &str) -> Result<Option<Vec<f32>>, String> {
        let Some(a) = self.get(name) else {
            return Ok(None);
        };
        self.expect(a, AttributeType::Floats)?;
        Ok(Some(a.floats.clone()))
    }

    pub fn floats_or_empty(&self, name: &str) -> Result<Vec<f32>, String> {
        Ok(self.floats(name)?.unwrap_or_default())
    }

    pub fn strings(&self, name: &str) -> Result<Option<Vec<String>>, String> {
        let Some(a) = self.get(name) else {
            return Ok(None);
        };
        self.expect(a, AttributeType::Strings)?;
        a.strings
            .iter()
            .map(|s| {
                String::from_utf8(s.clone())
                    .map_err(|_| format!("attribute {name:?} holds a string that is not UTF-8"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    pub fn tensor(&self, name: &str) -> Result<Option<Tensor>, String> {
        let Some(a) = self.get(name) else {
            return Ok(None);
        };
        self.expect(a, AttributeType::Tensor)?;
        let t =
            a.t.as_ref()
                .ok_or_else(|| format!("attribute {name:?} has no tensor"))?;
        tensor::from_proto(t)
            .map(Some)
            .map_err(|e| format!("attribute {name:?}: {e}"))
    }

    /// Class labels: `<prefix>_int64s` / `<prefix>_ints` or `<prefix>_strings`, exactly one.
    pub fn class_labels(&self, ints_name: &str, strings_name: &str) -> Result<Labels, String> {
        match (self.ints(ints_name)?, self.strings(strings_name)?) {
            (Some(i), None) if !i.is_empty() => Ok(Labels::I64(i)),
            (None, Some(s)) if !s.is_empty() => Ok(Labels::Str(s)),
            (Some(i), Some(s)) if s.is_empty() && !i.is_empty() => Ok(Labels::I64(i)),
            (Some(i), Some(s)) if i.is_empty() && !s.is_empty() => Ok(Labels::Str(s)),
            _ => Err(format!(
                "needs exactly one non-empty list of class labels, {ints_name} or {strings_name}"
            )),
        }
    }
}

/// Class labels of a classifier: integers or strings.
#[derive(Debug, Clone, PartialEq)]
pub enum Labels {
    I64(Vec<i64>),
    Str(Vec<String>),
}

impl Labels {
    pub fn len(&self) -> usize {
        match self {
            Labels::I64(v) => v.len(),
            Labels::Str(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The labels at the given indices, as a tensor of shape `[indices.len()]`.
    pub fn pick(&self, indices: &[usize]) -> Tensor {
        let data = match self {
            Labels::I64(v) => tensor::Data::I64(indices.iter().map(|&i| v[i]).collect()),
            Labels::Str(v) => tensor::Data::Str(indices.iter().map(|&i| v[i].clone()).collect()),
        };
        Tensor::new(vec![indices.len()], data)
    }
}
