//! Top-k selection: counting sort for small integer distances, a bounded heap for float scores.
//!
//! Both keep ties deterministic: among equal distances (or scores) the lower row wins, so results
//! never depend on thread scheduling or block order. Rows may be pushed in any order, and
//! selectors that saw disjoint rows can be [merged](CountingTopK::merge) into one that equals a
//! single selector having seen everything.

/// Distances are scanned in chunks of this many: a chunk with no distance at or below the
/// threshold is rejected with one vectorised test.
const CHUNK: usize = 32;

/// Smallest candidate-buffer size that triggers a compaction (for small `k`).
const MIN_CAP: usize = 64;

/// Largest buffer preallocated up front; beyond this (huge `k`) the buffer grows on demand.
const MAX_PREALLOC: usize = 1 << 16;

/// The `k` smallest integer distances in `0..=max_dist`, ties broken by the lower row.
///
/// This is the counting-sort selector of FAISS' `hammings_knn_mc`: a running threshold `thr`
/// (initially `max_dist`) and an unordered buffer of candidates with `dist <= thr`, together
/// with a histogram of their distances. Whenever the buffer holds more than `max(2k, 64)`
/// candidates, the threshold drops to the smallest distance whose cumulative count reaches `k`,
/// and candidates beyond it (including surplus ties at the threshold, highest rows first) are
/// dropped. [`into_sorted`](Self::into_sorted) finishes with a counting sort by distance.
#[derive(Clone, Debug)]
pub struct CountingTopK {
    k: usize,
    max_dist: u32,
    /// Pushes with `dist > thr` cannot enter.
    thr: u32,
    /// Compact once more than this many candidates are buffered.
    cap: usize,
    /// Candidate `(dist, row)` pairs in `buf[..len]`; the rest is scratch for branch-free appends.
    buf: Vec<(u32, u32)>,
    len: usize,
    /// `hist[d]` = number of buffered candidates with distance `d`; all zero above `thr`.
    hist: Vec<u32>,
}

impl CountingTopK {
    /// A selector for the `k` smallest distances; every pushed distance must be `<= max_dist`.
    pub fn new(k: usize, max_dist: u32) -> Self {
        let cap = k.saturating_mul(2).max(MIN_CAP);
        let prealloc = if k == 0 {
            0
        } else {
            cap.min(MAX_PREALLOC) + CHUNK
        };
        CountingTopK {
            k,
            max_dist,
            thr: max_dist,
            cap,
            buf: vec![(0, 0); prealloc],
            len: 0,
            hist: vec![0; if k == 0 { 0 } else { max_dist as usize + 1 }],
        }
    }

    /// The number of results kept.
    pub fn k(&self) -> usize {
        self.k
    }

    /// A distance strictly above which a push cannot enter (so callers may skip work for rows
    /// whose distance is known to exceed it). It only ever decreases. With `k == 0` nothing can
    /// enter, and this returns 0.
    #[inline]
    pub fn threshold(&self) -> u32 {
        if self.k == 0 {
            0
        } else {
            self.thr
        }
    }

    /// Pushes one `(row, dist)` pair; `dist` must be `<= max_dist`.
    #[inline]
    pub fn push(&mut self, row: u32, dist: u32) {
        if dist > self.thr || self.k == 0 {
            return;
        }
        debug_assert!(
            dist <= self.max_dist,
            "distance {dist} > max_dist {}",
            self.max_dist
        );
        self.ensure_room();
        self.buf[self.len] = (dist, row);
        self.len += 1;
        self.hist[dist as usize] += 1;
        if self.len > self.cap {
            self.compact();
        }
    }

    /// Pushes `dists[i]` for row `first_row + i`, for `i < valid`.
    pub fn push_block(&mut self, first_row: u32, dists: &[u32], valid: usize) {
        if self.k == 0 {
            return;
        }
        let dists = &dists[..valid];
        let mut row = first_row;
        let mut chunks = dists.chunks_exact(CHUNK);
        for chunk in &mut chunks {
            let thr = self.thr;
            // Branch-free "any distance <= thr" over the chunk (vectorises to compares + ors).
            let hit = chunk.iter().fold(0u32, |acc, &d| acc | u32::from(d <= thr));
            if hit != 0 {
                self.push_chunk(row, chunk);
            }
            row = row.wrapping_add(CHUNK as u32);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            self.push_chunk(row, rest);
        }
    }

    /// Appends the entries of `chunk` (at most `CHUNK` long) with `dist <= thr`, branch-free.
    #[inline]
    fn push_chunk(&mut self, first_row: u32, chunk: &[u32]) {
        debug_assert!(chunk.len() <= CHUNK);
        self.ensure_room();
        let thr = self.thr;
        let start = self.len;
        let out = &mut self.buf[start..start + CHUNK];
        let mut n = 0usize;
        for (i, &d) in chunk.iter().enumerate() {
            // `n <= i < CHUNK`, so the mask is a no-op that lets the bounds check go away.
            out[n & (CHUNK - 1)] = (d, first_row.wrapping_add(i as u32));
            n += usize::from(d <= thr);
        }
        for &(d, _) in &out[..n] {
            debug_assert!(
                d <= self.max_dist,
                "distance {d} > max_dist {}",
                self.max_dist
            );
            self.hist[d as usize] += 1;
        }
        self.len = start + n;
        if self.len > self.cap {
            self.compact();
        }
    }

    /// Makes sure `buf` has `CHUNK` free slots after `len` (only grows for huge `k`).
    #[inline]
    fn ensure_room(&mut self) {
        if self.len + CHUNK > self.buf.len() {
            self.grow();
        }
    }

    #[cold]
    fn grow(&mut self) {
        let new_len = (self.buf.len() * 2).max(self.len + CHUNK);
        self.buf.resize(new_len, (0, 0));
    }

    /// Lowers the threshold to the smallest distance whose cumulative count reaches `k` and
    /// drops every candidate that can no longer make the top `k`.
    fn compact(&mut self) {
        let k = self.k;
        let old_thr = self.thr as usize;
        let mut cum = 0usize;
        let mut t = 0usize;
        while t <= old_thr {
            cum += self.hist[t] as usize;
            if cum >= k {
                break;
            }
            t += 1;
        }
        if cum < k {
            // Fewer than k candidates (only possible after huge-k growth): nothing to drop.
            return;
        }
        let thr = t as u32;
        let excess = cum - k;
        self.thr = thr;
        let cand = &mut self.buf[..self.len];
        // Drop everything above the new threshold (branch-free in-place compaction).
        let mut w = 0usize;
        for i in 0..cand.len() {
            let e = cand[i];
            cand[w] = e;
            w += usize::from(e.0 <= thr);
        }
        if excess > 0 {
            // More ties at `thr` than needed: keep only the lowest rows among them. Move the
            // ties to the tail of the kept region, then select the `keep` lowest rows there.
            let kept = &mut cand[..w];
            let (mut lo, mut hi) = (0usize, w);
            while lo < hi {
                if kept[lo].0 < thr {
                    lo += 1;
                } else {
                    hi -= 1;
                    kept.swap(lo, hi);
                }
            }
            let ties = &mut kept[lo..];
            let keep = ties.len() - excess; // >= 1: fewer than k candidates lie below thr
            ties.select_nth_unstable_by_key(keep - 1, |&(_, row)| row);
            w = lo + keep;
            self.hist[t] = keep as u32;
        }
        self.len = w;
        for h in &mut self.hist[t + 1..=old_thr] {
            *h = 0;
        }
    }

    /// Merges a selector that saw a disjoint set of rows (with the same `k` and `max_dist`).
    pub fn merge(&mut self, other: CountingTopK) {
        debug_assert_eq!(self.k, other.k, "merging selectors with different k");
        for &(d, row) in &other.buf[..other.len] {
            self.push(row, d);
        }
    }

    /// `(distance, row)` pairs, best first: ascending distance, then ascending row.
    pub fn into_sorted(self) -> Vec<(u32, u32)> {
        if self.k == 0 || self.len == 0 {
            return Vec::new();
        }
        let thr = self.thr as usize;
        // Final cut: the smallest distance whose cumulative count reaches k (or thr).
        let mut cum = 0usize;
        let mut t = 0usize;
        while t <= thr {
            cum += self.hist[t] as usize;
            if cum >= self.k {
                break;
            }
            t += 1;
        }
        let t = t.min(thr);
        // Bucket start offsets (exclusive prefix sums) for distances 0..=t.
        let mut offs: Vec<u32> = Vec::with_capacity(t + 2);
        let mut acc = 0u32;
        for &h in &self.hist[..=t] {
            offs.push(acc);
            acc += h;
        }
        offs.push(acc);
        let total = acc as usize;
        let mut out = vec![(0u32, 0u32); total];
        let mut fill = offs.clone();
        for &(d, row) in &self.buf[..self.len] {
            let d = d as usize;
            if d <= t {
                out[fill[d] as usize] = (d as u32, row);
                fill[d] += 1;
            }
        }
        for b in offs.windows(2) {
            let (lo, hi) = (b[0] as usize, b[1] as usize);
            if hi - lo > 1 {
                out[lo..hi].sort_unstable_by_key(|&(_, row)| row);
            }
        }
        out.truncate(self.k);
        out
    }
}

/// The `k` highest float scores, ties broken by the lower row.
///
/// A bounded binary min-heap whose root is the worst kept item. Each item is stored as one
/// `u64` "goodness" key: the score mapped to an order-preserving `u32` (the [`f32::total_cmp`]
/// order) in the high half and the bitwise-negated row in the low half, so a larger key is a
/// better item and comparisons are single integer compares.
#[derive(Clone, Debug)]
pub struct HeapTopK {
    k: usize,
    heap: Vec<u64>,
}

#[inline]
fn score_key(score: f32) -> u32 {
    let bits = score.to_bits();
    if bits & 0x8000_0000 != 0 {
        !bits
    } else {
        bits | 0x8000_0000
    }
}

#[inline]
fn key_score(key: u32) -> f32 {
    f32::from_bits(if key & 0x8000_0000 != 0 {
        key & 0x7fff_ffff
    } else {
        !key
    })
}

#[inline]
fn item_key(row: u32, score: f32) -> u64 {
    (u64::from(score_key(score)) << 32) | u64::from(!row)
}

#[inline]
fn decode(key: u64) -> (f32, u32) {
    (key_score((key >> 32) as u32), !(key as u32))
}

impl HeapTopK {
    /// A selector for the `k` highest scores.
    pub fn new(k: usize) -> Self {
        HeapTopK {
            k,
            heap: Vec::with_capacity(k.min(MAX_PREALLOC)),
        }
    }

    /// The number of results kept.
    pub fn k(&self) -> usize {
        self.k
    }

    /// A score strictly below which a push cannot enter: `NEG_INFINITY` until `k` items are
    /// held, then the worst kept score (an equal score with a lower row can still enter). With
    /// `k == 0` nothing can enter, and this returns `INFINITY`.
    #[inline]
    pub fn threshold(&self) -> f32 {
        if self.k == 0 {
            f32::INFINITY
        } else if self.heap.len() < self.k {
            f32::NEG_INFINITY
        } else {
            decode(self.heap[0]).0
        }
    }

    #[inline]
    fn push_key(&mut self, key: u64) {
        if self.heap.len() < self.k {
            self.heap.push(key);
            sift_up(&mut self.heap);
        } else if self.k > 0 && key > self.heap[0] {
            self.heap[0] = key;
            sift_down(&mut self.heap);
        }
    }

    /// Pushes one `(row, score)` pair; `score` must not be NaN.
    #[inline]
    pub fn push(&mut self, row: u32, score: f32) {
        debug_assert!(!score.is_nan());
        self.push_key(item_key(row, score));
    }

    /// Pushes `scores[i]` for row `first_row + i`, for `i < valid`.
    pub fn push_block(&mut self, first_row: u32, scores: &[f32], valid: usize) {
        if self.k == 0 {
            return;
        }
        let scores = &scores[..valid];
        let mut row = first_row;
        let mut chunks = scores.chunks_exact(CHUNK);
        for chunk in &mut chunks {
            // IEEE `>=` treats -0.0 == 0.0, so this pre-test is conservative w.r.t. total_cmp.
            let thr = self.threshold();
            let hit = chunk.iter().fold(0u32, |acc, &s| acc | u32::from(s >= thr));
            if hit != 0 {
                self.push_chunk(row, chunk);
            }
            row = row.wrapping_add(CHUNK as u32);
        }
        self.push_chunk(row, chunks.remainder());
    }

    #[inline]
    fn push_chunk(&mut self, first_row: u32, chunk: &[f32]) {
        for (i, &s) in chunk.iter().enumerate() {
            debug_assert!(!s.is_nan());
            let key = item_key(first_row.wrapping_add(i as u32), s);
            if self.heap.len() == self.k {
                if key > self.heap[0] {
                    self.heap[0] = key;
                    sift_down(&mut self.heap);
                }
            } else {
                self.heap.push(key);
                sift_up(&mut self.heap);
            }
        }
    }

    /// Merges a selector that saw a disjoint set of rows (with the same `k`).
    pub fn merge(&mut self, mut other: HeapTopK) {
        debug_assert_eq!(self.k, other.k, "merging selectors with different k");
        if other.heap.len() > self.heap.len() {
            std::mem::swap(self, &mut other);
        }
        for &key in &other.heap {
            self.push_key(key);
        }
    }

    /// `(score, row)` pairs, best first: descending score, then ascending row.
    pub fn into_sorted(mut self) -> Vec<(f32, u32)> {
        self.heap.sort_unstable_by(|a, b| b.cmp(a));
        self.heap.into_iter().map(decode).collect()
    }
}

/// Restores the min-heap property after appending the last element.
#[inline]
fn sift_up(heap: &mut [u64]) {
    let mut i = heap.len() - 1;
    let x = heap[i];
    while i > 0 {
        let p = (i - 1) / 2;
        if heap[p] <= x {
            break;
        }
        heap[i] = heap[p];
        i = p;
    }
    heap[i] = x;
}

/// Restores the min-heap property after replacing the root.
#[inline]
fn sift_down(heap: &mut [u64]) {
    let n = heap.len();
    let x = heap[0];
    let mut i = 0;
    loop {
        let l = 2 * i + 1;
        if l >= n {
            break;
        }
        let r = l + 1;
        let c = if r < n && heap[r] < heap[l] { r } else { l };
        if heap[c] >= x {
            break;
        }
        heap[i] = heap[c];
        i = c;
    }
    heap[i] = x;
}
