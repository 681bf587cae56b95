//! A pre-scan of the protobuf wire format that bounds what decoding will allocate: a message
//! of a few bytes can become a struct of hundreds (an empty repeated `NodeProto` is two bytes),
//! so the file size alone does not bound memory.

/// Bytes we charge for each decoded message (the largest ONNX structs are a few hundred).
const MESSAGE_COST: usize = 512;
/// Bytes we charge for each string, bytes or unpacked repeated scalar.
const FIELD_COST: usize = 32;
/// How deep messages may nest (prost's own recursion limit is 100).
const MAX_DEPTH: usize = 100;

/// What the pre-scan found.
#[derive(Debug, PartialEq, Eq)]
pub enum Scan {
    /// Well-formed, and decoding stays within the budget.
    Fits,
    /// Not a well-formed protobuf message.
    Malformed,
    /// Decoding could take more than the budget.
    OverBudget,
}

/// Estimates, from above, the memory decoding `buf` as a message would allocate, stopping as
/// soon as it exceeds `budget`. Every length-delimited field whose payload parses as a message
/// is counted as one (strings that happen to parse only make the estimate larger).
pub fn scan(buf: &[u8], budget: usize) -> Scan {
    let mut left = budget;
    match message(buf, 0, &mut left) {
        Ok(()) => Scan::Fits,
        Err(Stop::Malformed) => Scan::Malformed,
        Err(Stop::Budget) => Scan::OverBudget,
    }
}

enum Stop {
    Malformed,
    Budget,
}

fn varint(buf: &[u8], at: &mut usize) -> Result<u64, Stop> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*at).ok_or(Stop::Malformed)?;
        *at += 1;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(Stop::Malformed)
}

fn charge(left: &mut usize, cost: usize) -> Result<(), Stop> {
    *left = left.checked_sub(cost).ok_or(Stop::Budget)?;
    Ok(())
}

fn skip(buf: &[u8], at: usize, n: usize) -> Result<usize, Stop> {
    at.checked_add(n)
        .filter(|&e| e <= buf.len())
        .ok_or(Stop::Malformed)
}

/// Walks one message.
fn message(buf: &[u8], depth: usize, left: &mut usize) -> Result<(), Stop> {
    let mut at = 0;
    while at < buf.len() {
        let key = varint(buf, &mut at)?;
        if key >> 3 == 0 {
            return Err(Stop::Malformed);
        }
        match key & 7 {
            0 => {
                varint(buf, &mut at)?;
                charge(left, 8)?;
            }
            1 => at = skip(buf, at, 8)?,
            5 => at = skip(buf, at, 4)?,
            2 => {
                let len = usize::try_from(varint(buf, &mut at)?).map_err(|_| Stop::Malformed)?;
                let end = skip(buf, at, len)?;
                let payload = &buf[at..end];
                at = end;
                charge(left, FIELD_COST)?;
                if depth < MAX_DEPTH {
                    let mut nested = *left;
                    match message(payload, depth + 1, &mut nested) {
                        Ok(()) => {
                            *left = nested;
                            charge(left, MESSAGE_COST)?;
                        }
                        // Not a message: a string, bytes or packed numbers.
                        Err(Stop::Malformed) => {}
                        Err(Stop::Budget) => return Err(Stop::Budget),
                    }
                }
            }
            _ => return Err(Stop::Malformed),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_empty_messages_exceed_the_budget() {
        // 100,000 empty `node` entries (field 1, length 0) inside a graph (field 7).
        let graph: Vec<u8> = std::iter::repeat_n([0x0a, 0x00], 100_000)
            .flatten()
            .collect();
        let mut model = vec![0x3a];
        let mut len = graph.len();
        while len >= 0x80 {
            model.push((len as u8 & 0x7f) | 0x80);
            len >>= 7;
        }
        model.push(len as u8);
        model.extend(graph);
        assert_eq!(scan(&model, 10 << 20), Scan::OverBudget);
        assert_eq!(scan(&model, 100 << 20), Scan::Fits);
    }

    #[test]
    fn malformed_input_is_not_a_message() {
        assert_eq!(scan(&[0x0a, 0x05, 0x01], 1 << 20), Scan::Malformed);
        assert_eq!(scan(&[0x0b], 1 << 20), Scan::Malformed);
        assert_eq!(scan(&[], 1 << 20), Scan::Fits);
    }
}
