//! Small dense linear algebra on row-major slices, shared by the models'
//! row solves: systems of rank + 1 unknowns, solved millions of times, where
//! a call into a general library costs more than the arithmetic. Every sum
//! runs in a fixed order, so results do not depend on threads.

/// Dot product with 8 independent accumulators: vectorizes, and the order
/// is fixed, so the result is deterministic.
#[inline]
pub(crate) fn dot(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f64; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

/// In-place Cholesky of the lower triangle of `a` (w × w row-major), then
/// solves a x = b into `x`. The upper triangle is ignored; a pivot that
/// rounding pushed to zero or below is clamped, as the systems are positive
/// definite by construction (λ > 0 on the diagonal).
pub(crate) fn cholesky_solve(a: &mut [f64], b: &[f64], x: &mut [f64], w: usize) {
    for i in 0..w {
        for j in 0..=i {
            let (ri, rj) = (i * w, j * w);
            let s = a[ri + j] - dot(&a[ri..ri + j], &a[rj..rj + j]);
            if i == j {
                a[ri + i] = s.max(1e-12).sqrt();
            } else {
                a[ri + j] = s / a[rj + j];
            }
        }
    }
    for i in 0..w {
        x[i] = (b[i] - dot(&a[i * w..i * w + i], &x[..i])) / a[i * w + i];
    }
    for i in (0..w).rev() {
        let mut s = x[i];
        for m in i + 1..w {
            s -= a[m * w + i] * x[m];
        }
        x[i] = s / a[i * w + i];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solves_a_positive_definite_system_and_dots_any_length() {
        // A = [[4,2],[2,3]], b = [2,1] -> x = [0.5, 0]
        let mut a = vec![4.0, 0.0, 2.0, 3.0];
        let mut x = vec![0.0; 2];
        cholesky_solve(&mut a, &[2.0, 1.0], &mut x, 2);
        assert!((x[0] - 0.5).abs() < 1e-12 && x[1].abs() < 1e-12);
        let v: Vec<f64> = (1..=11).map(f64::from).collect();
        assert_eq!(dot(&v, &v), (1..=11).map(|i| f64::from(i * i)).sum::<f64>());
    }
}
