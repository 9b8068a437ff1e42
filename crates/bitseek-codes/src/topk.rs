//! Top-k selection: counting sort for small integer distances, a bounded heap for float scores.
//!
//! Both keep ties deterministic: among equal distances (or scores) the lower row wins, so results
//! never depend on thread scheduling or block order.
//!
//! NOTE: placeholder implementation (collect and sort); replaced by the real selectors.

/// The `k` smallest integer distances in `0..=max_dist`, ties broken by the lower row.
#[derive(Clone, Debug)]
pub struct CountingTopK {
    k: usize,
    items: Vec<(u32, u32)>,
}

impl CountingTopK {
    pub fn new(k: usize, max_dist: u32) -> Self {
        let _ = max_dist;
        CountingTopK {
            k,
            items: Vec::new(),
        }
    }
    pub fn push(&mut self, row: u32, dist: u32) {
        self.items.push((dist, row));
    }
    /// Pushes `dists[i]` for row `first_row + i`, for `i < valid`.
    pub fn push_block(&mut self, first_row: u32, dists: &[u32], valid: usize) {
        for (i, &d) in dists[..valid].iter().enumerate() {
            self.push(first_row + i as u32, d);
        }
    }
    pub fn merge(&mut self, other: CountingTopK) {
        self.items.extend(other.items);
    }
    /// `(distance, row)` pairs, best first.
    pub fn into_sorted(mut self) -> Vec<(u32, u32)> {
        self.items.sort_unstable();
        self.items.truncate(self.k);
        self.items
    }
}

/// The `k` highest float scores, ties broken by the lower row.
#[derive(Clone, Debug)]
pub struct HeapTopK {
    k: usize,
    items: Vec<(f32, u32)>,
}

impl HeapTopK {
    pub fn new(k: usize) -> Self {
        HeapTopK {
            k,
            items: Vec::new(),
        }
    }
    pub fn push(&mut self, row: u32, score: f32) {
        self.items.push((score, row));
    }
    /// Pushes `scores[i]` for row `first_row + i`, for `i < valid`.
    pub fn push_block(&mut self, first_row: u32, scores: &[f32], valid: usize) {
        for (i, &s) in scores[..valid].iter().enumerate() {
            self.push(first_row + i as u32, s);
        }
    }
    pub fn merge(&mut self, other: HeapTopK) {
        self.items.extend(other.items);
    }
    /// `(score, row)` pairs, best first.
    pub fn into_sorted(mut self) -> Vec<(f32, u32)> {
        self.items
            .sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        self.items.truncate(self.k);
        self.items
    }
}
