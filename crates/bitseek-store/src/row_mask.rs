//! A set of rows as a bitmask, the form the scan takes its allowed rows in
//! ([`bitseek_index::Index::search_batch_allowed`]): bit `r % 64` of word `r / 64` is row `r`.

/// Which rows of a segment (or memtable batch) are in: live, or accepted by a filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RowMask(Vec<u64>);

impl RowMask {
    /// Every one of `rows` rows.
    pub fn all(rows: usize) -> RowMask {
        let mut v = vec![u64::MAX; rows.div_ceil(64)];
        if !rows.is_multiple_of(64) {
            if let Some(last) = v.last_mut() {
                *last = (1u64 << (rows % 64)) - 1;
            }
        }
        RowMask(v)
    }

    /// None of `rows` rows.
    pub fn none(rows: usize) -> RowMask {
        RowMask(vec![0; rows.div_ceil(64)])
    }

    /// The rows among `rows` for which `keep` holds.
    pub fn from_fn(rows: usize, mut keep: impl FnMut(usize) -> bool) -> RowMask {
        let mut m = RowMask::none(rows);
        for r in 0..rows {
            if keep(r) {
                m.insert(r);
            }
        }
        m
    }

    /// Whether `row` is in (rows past the end are not).
    #[inline]
    pub fn contains(&self, row: usize) -> bool {
        bitseek_index::flat::row_allowed(&self.0, row)
    }

    /// Puts `row` in.
    #[inline]
    pub fn insert(&mut self, row: usize) {
        self.0[row / 64] |= 1u64 << (row % 64);
    }

    /// Takes `row` out.
    #[inline]
    pub fn remove(&mut self, row: usize) {
        self.0[row / 64] &= !(1u64 << (row % 64));
    }

    /// Keeps only the rows that are in `other` too.
    pub fn intersect(&mut self, other: &RowMask) {
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a &= b;
        }
    }

    /// How many rows are in.
    pub fn count(&self) -> usize {
        self.0.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// The words, as the scan takes them.
    pub fn words(&self) -> &[u64] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::RowMask;

    #[test]
    fn all_holds_exactly_the_rows() {
        for rows in [0, 1, 63, 64, 65, 130] {
            let m = RowMask::all(rows);
            assert_eq!(m.count(), rows);
            assert!((0..rows).all(|r| m.contains(r)));
            assert!(!m.contains(rows));
        }
    }

    #[test]
    fn insert_remove_and_intersect() {
        let mut a = RowMask::all(100);
        a.remove(3);
        a.remove(70);
        assert!(!a.contains(3) && !a.contains(70) && a.contains(4));
        assert_eq!(a.count(), 98);
        let b = RowMask::from_fn(100, |r| r % 2 == 0);
        a.intersect(&b);
        assert_eq!(a.count(), 49);
        let mut c = RowMask::none(100);
        c.insert(99);
        assert_eq!(c.count(), 1);
        assert!(c.contains(99));
    }
}
