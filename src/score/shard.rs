//! Sharding: part I of N is the I-th of N contiguous, nearly equal ranges of a file's rows, so
//! the parts of N runs, in order, hold every row exactly once.

use std::fmt;
use std::ops::Range;
use std::str::FromStr;

/// The most parts a file may be split into.
pub const MAX_SHARDS: u64 = 1_000_000;

/// Part `index` (from 0) of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    index: u64,
    count: u64,
}

impl Shard {
    pub fn new(index: u64, count: u64) -> Result<Self, String> {
        if count == 0 || count > MAX_SHARDS {
            return Err(format!(
                "the number of parts must be between 1 and {MAX_SHARDS}, got {count}"
            ));
        }
        if index >= count {
            return Err(format!(
                "part {index} does not exist: parts of {count} are numbered 0 to {}",
                count - 1
            ));
        }
        Ok(Self { index, count })
    }

    /// This part's rows (indexes from 0) among `total`.
    pub fn range(&self, total: u64) -> Range<u64> {
        let at = |i: u64| (u128::from(total) * u128::from(i) / u128::from(self.count)) as u64;
        at(self.index)..at(self.index + 1)
    }
}

impl FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (i, n) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not I/N (for example 0/4)"))?;
        let number = |t: &str| {
            t.trim()
                .parse::<u64>()
                .map_err(|_| format!("{s:?} is not I/N (for example 0/4)"))
        };
        Shard::new(number(i)?, number(n)?)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_and_refuses() {
        assert_eq!("1/4".parse::<Shard>(), Shard::new(1, 4));
        for bad in ["4/4", "0/0", "1", "a/2", "-1/2", "0/2000000"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }

    proptest! {
        /// The parts of any split cover 0..total in order, each index once.
        #[test]
        fn parts_tile_the_rows(total in 0u64..10_000, count in 1u64..50) {
            let mut next = 0;
            for index in 0..count {
                let r = Shard::new(index, count).unwrap().range(total);
                prop_assert_eq!(r.start, next);
                prop_assert!(r.end >= r.start);
                prop_assert!(r.end - r.start <= total / count + 1);
                next = r.end;
            }
            prop_assert_eq!(next, total);
        }
    }
}
