//! The assignment Ultralytics' `matching.linear_assignment` runs: `lap.lapjv(cost,
//! extend_cost=True, cost_limit=thresh)`. lap pads the N×M matrix to a square of N+M with
//! `thresh / 2` for "row unmatched" and "column unmatched" and 0 for dummy-to-dummy, so the
//! optimum maximises the sum of `thresh - cost` over the matched pairs: a pair costing more
//! than `thresh` is never taken, and a cheap pair may be given up for two better ones.
//!
//! This is not what Ultralytics' scipy fallback (`use_lap=False`, never taken by BYTETracker)
//! does: it takes a full min-cost assignment of min(N, M) pairs, then drops the pairs over
//! `thresh`, so for [[0.1, 0.5], [0.5, 0.95]] at 0.8 it matches (0,1), (1,0) where lap matches
//! (0,0) alone. The optimum here is exact (Hungarian method with potentials on the same padded
//! matrix); where two assignments cost exactly the same, lap's choice and this one may differ,
//! which the reference data avoids.

/// Matched (row, column) pairs in row order, and the unmatched rows and columns ascending, as
/// lap's `x`/`y` read by Ultralytics.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Assignment {
    pub matches: Vec<(usize, usize)>,
    pub unmatched_rows: Vec<usize>,
    pub unmatched_cols: Vec<usize>,
}

/// Costs no pair can win with: lap's result for NaN or infinite costs is unspecified, and
/// the Hungarian loop below needs finite numbers to make progress.
const UNREACHABLE: f64 = 1e12;

/// `cost` is `rows × cols`, row-major.
pub(super) fn assign(cost: &[f64], rows: usize, cols: usize, limit: f64) -> Assignment {
    debug_assert_eq!(cost.len(), rows * cols);
    if rows == 0 || cols == 0 {
        return Assignment {
            matches: vec![],
            unmatched_rows: (0..rows).collect(),
            unmatched_cols: (0..cols).collect(),
        };
    }
    let n = rows + cols;
    let pad = limit / 2.0;
    let at = |i: usize, j: usize| match (i < rows, j < cols) {
        (true, true) => {
            let c = cost[i * cols + j];
            if c.is_finite() {
                c
            } else {
                UNREACHABLE
            }
        }
        (false, false) => 0.0,
        _ => pad,
    };
    let col_of_row = hungarian(n, at);
    let mut out = Assignment::default();
    let mut col_taken = vec![false; cols];
    for (i, &j) in col_of_row.iter().take(rows).enumerate() {
        if j < cols {
            out.matches.push((i, j));
            col_taken[j] = true;
        } else {
            out.unmatched_rows.push(i);
        }
    }
    out.unmatched_cols = (0..cols).filter(|&j| !col_taken[j]).collect();
    out
}

/// Minimum-cost perfect matching of an n×n matrix (shortest augmenting paths with row and
/// column potentials, O(n³)); returns the column of each row.
fn hungarian(n: usize, a: impl Fn(usize, usize) -> f64) -> Vec<usize> {
    // 1-based, index 0 is the virtual start column.
    let mut u = vec![0.0f64; n + 1];
    let mut v = vec![0.0f64; n + 1];
    let mut row_of = vec![0usize; n + 1];
    let mut way = vec![0usize; n + 1];
    for i in 1..=n {
        row_of[0] = i;
        let mut j0 = 0;
        let mut minv = vec![f64::INFINITY; n + 1];
        let mut used = vec![false; n + 1];
        loop {
            used[j0] = true;
            let i0 = row_of[j0];
            let (mut delta, mut j1) = (f64::INFINITY, 0);
            for j in 1..=n {
                if !used[j] {
                    let cur = a(i0 - 1, j - 1) - u[i0] - v[j];
                    if cur < minv[j] {
                        minv[j] = cur;
                        way[j] = j0;
                    }
                    if minv[j] < delta {
                        delta = minv[j];
                        j1 = j;
                    }
                }
            }
            for j in 0..=n {
                if used[j] {
                    u[row_of[j]] += delta;
                    v[j] -= delta;
                } else {
                    minv[j] -= delta;
                }
            }
            j0 = j1;
            if row_of[j0] == 0 {
                break;
            }
        }
        while j0 != 0 {
            let j1 = way[j0];
            row_of[j0] = row_of[j1];
            j0 = j1;
        }
    }
    let mut col_of = vec![0usize; n];
    for j in 1..=n {
        col_of[row_of[j] - 1] = j - 1;
    }
    col_of
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::rng::Rng;

    /// The best score of any partial matching, by enumeration: sum of (cost - limit) over
    /// the pairs (lap's padded objective less its constant).
    fn brute(cost: &[f64], rows: usize, cols: usize, limit: f64) -> f64 {
        fn go(r: usize, used: &mut Vec<bool>, cost: &[f64], rows: usize, cols: usize, limit: f64) -> f64 {
            if r == rows {
                return 0.0;
            }
            let mut best = go(r + 1, used, cost, rows, cols, limit);
            for j in 0..cols {
                if !used[j] {
                    used[j] = true;
                    best = best.min(cost[r * cols + j] - limit + go(r + 1, used, cost, rows, cols, limit));
                    used[j] = false;
                }
            }
            best
        }
        go(0, &mut vec![false; cols], cost, rows, cols, limit)
    }

    #[test]
    fn optimal_against_brute_force() {
        let mut rng = Rng::for_item(5, "track/assign", 0);
        for k in 0..400 {
            let rows = 1 + rng.below(6) as usize;
            let cols = 1 + rng.below(6) as usize;
            let cost: Vec<f64> = (0..rows * cols).map(|_| rng.range(0.0, 1.2)).collect();
            let limit = [0.8, 0.5, 0.3, 10.0][k % 4];
            let a = assign(&cost, rows, cols, limit);
            let got: f64 = a.matches.iter().map(|&(i, j)| cost[i * cols + j] - limit).sum();
            assert!((got - brute(&cost, rows, cols, limit)).abs() < 1e-9, "case {k}: {a:?}");
            assert!(a.matches.iter().all(|&(i, j)| cost[i * cols + j] <= limit));
            assert_eq!(a.matches.len() + a.unmatched_rows.len(), rows);
            assert_eq!(a.matches.len() + a.unmatched_cols.len(), cols);
            if limit > 2.0 {
                assert_eq!(a.matches.len(), rows.min(cols), "a limit over every cost matches all it can");
            }
        }
    }

    #[test]
    fn thresholded_optimum_is_not_filtered_full_assignment() {
        let a = assign(&[0.1, 0.5, 0.5, 0.95], 2, 2, 0.8);
        assert_eq!(a, Assignment { matches: vec![(0, 0)], unmatched_rows: vec![1], unmatched_cols: vec![1] });
    }

    #[test]
    fn empty_and_unreachable() {
        let a = assign(&[], 0, 3, 0.8);
        assert_eq!(a.unmatched_cols, vec![0, 1, 2]);
        let a = assign(&[f64::NAN, 0.2], 1, 2, 0.8);
        assert_eq!(a.matches, vec![(0, 1)]);
    }

    #[derive(serde::Deserialize)]
    struct LapCase {
        cost: Vec<Vec<f64>>,
        thresh: f64,
        matches: Vec<(usize, usize)>,
        unmatched_a: Vec<usize>,
        unmatched_b: Vec<usize>,
    }

    #[test]
    fn same_as_ultralytics_linear_assignment() {
        let cases: Vec<LapCase> = crate::tests::load_json("tests/data/bytetrack/assign.json");
        for (k, c) in cases.iter().enumerate() {
            let (rows, cols) = (c.cost.len(), c.cost[0].len());
            let flat: Vec<f64> = c.cost.concat();
            let a = assign(&flat, rows, cols, c.thresh);
            assert_eq!(a.matches, c.matches, "case {k}");
            assert_eq!(a.unmatched_rows, c.unmatched_a, "case {k}");
            assert_eq!(a.unmatched_cols, c.unmatched_b, "case {k}");
        }
    }
}
