//! Numpy-style broadcasting for the element-wise standard operators.

use crate::onnx::tensor::MAX_ELEMENTS;

/// The broadcast shape of several shapes, or why they do not broadcast.
pub fn shape(shapes: &[&[usize]]) -> Result<Vec<usize>, String> {
    let rank = shapes.iter().map(|s| s.len()).max().unwrap_or(0);
    let mut out = vec![1usize; rank];
    for s in shapes {
        let pad = rank - s.len();
        for (i, &d) in s.iter().enumerate() {
            let o = &mut out[pad + i];
            if *o == 1 {
                *o = d;
            } else if d != 1 && d != *o {
                return Err(format!("shapes {shapes:?} do not broadcast"));
            }
        }
    }
    let count = out
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|&c| c <= MAX_ELEMENTS);
    if count.is_none() {
        return Err(format!(
            "broadcast shape {out:?} holds more than {MAX_ELEMENTS} elements"
        ));
    }
    Ok(out)
}

/// For each element of `out` (row-major), the offset of the element of `input` it reads.
pub fn offsets(input: &[usize], out: &[usize]) -> Vec<usize> {
    let rank = out.len();
    let pad = rank - input.len();
    // Stride of each output axis in the input (0 where the input broadcasts).
    let mut strides = vec![0usize; rank];
    let mut stride = 1;
    for i in (0..input.len()).rev() {
        strides[pad + i] = if input[i] == 1 { 0 } else { stride };
        stride *= input[i];
    }
    let count: usize = out.iter().product();
    let mut result = Vec::with_capacity(count);
    let mut index = vec![0usize; rank];
    let mut offset = 0usize;
    for _ in 0..count {
        result.push(offset);
        for axis in (0..rank).rev() {
            index[axis] += 1;
            offset += strides[axis];
            if index[axis] < out[axis] {
                break;
            }
            offset -= strides[axis] * index[axis];
            index[axis] = 0;
        }
    }
    result
}

/// `f` applied element-wise to two broadcast inputs.
pub fn map2<A: Copy, B: Copy, R>(
    a: &[A],
    a_shape: &[usize],
    b: &[B],
    b_shape: &[usize],
    f: impl Fn(A, B) -> R,
) -> Result<(Vec<R>, Vec<usize>), String> {
    let out = shape(&[a_shape, b_shape])?;
    let values = if a_shape == b_shape {
        a.iter().zip(b).map(|(&x, &y)| f(x, y)).collect()
    } else if b.len() == 1 && out.iter().product::<usize>() == a.len() {
        let y = b[0];
        a.iter().map(|&x| f(x, y)).collect()
    } else if a.len() == 1 && out.iter().product::<usize>() == b.len() {
        let x = a[0];
        b.iter().map(|&y| f(x, y)).collect()
    } else {
        let oa = offsets(a_shape, &out);
        let ob = offsets(b_shape, &out);
        oa.iter().zip(&ob).map(|(&i, &j)| f(a[i], b[j])).collect()
    };
    Ok((values, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasts_like_numpy() {
        assert_eq!(shape(&[&[2, 1, 3], &[4, 1]]).unwrap(), vec![2, 4, 3]);
        assert!(shape(&[&[2, 3], &[4]]).is_err());
        let (v, s) = map2(&[1, 2, 3], &[3, 1], &[10, 20], &[1, 2], |a, b| a + b).unwrap();
        assert_eq!(s, vec![3, 2]);
        assert_eq!(v, vec![11, 21, 12, 22, 13, 23]);
    }
}
