//! The little dense linear algebra EASE needs: inverting a symmetric positive-definite matrix.

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the matrix is singular at pivot {0}")]
pub struct Singular(pub usize);

/// Inverts the `n`×`n` row-major matrix `a` in place by Gauss-Jordan elimination. Without
/// pivoting, which is stable for the symmetric positive-definite matrices EASE inverts (a Gram
/// matrix plus λ on the diagonal). Each step is a row update the compiler vectorises.
pub fn invert_in_place(a: &mut [f64], n: usize) -> Result<(), Singular> {
    let mut pivot_row = vec![0.0; n];
    for k in 0..n {
        let pivot = a[k * n + k];
        if pivot.abs() < 1e-12 {
            return Err(Singular(k));
        }
        a[k * n + k] = 1.0;
        for value in &mut a[k * n..(k + 1) * n] {
            *value /= pivot;
        }
        pivot_row.copy_from_slice(&a[k * n..(k + 1) * n]);
        for (i, row) in a.chunks_exact_mut(n).enumerate() {
            if i == k {
                continue;
            }
            let factor = row[k];
            if factor == 0.0 {
                continue;
            }
            row[k] = 0.0;
            for (value, p) in row.iter_mut().zip(&pivot_row) {
                *value -= factor * p;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn inverse_times_matrix_is_identity(values in prop::collection::vec(-1.0f64..1.0, 36)) {
            // A random SPD matrix: Mᵀ·M + I.
            let n = 6;
            let mut a = vec![0.0; n * n];
            for i in 0..n {
                for j in 0..n {
                    a[i * n + j] = (0..n).map(|k| values[k * n + i] * values[k * n + j]).sum::<f64>() + if i == j { 1.0 } else { 0.0 };
                }
            }
            let mut inverse = a.clone();
            invert_in_place(&mut inverse, n).expect("SPD matrices invert");
            for i in 0..n {
                for j in 0..n {
                    let product: f64 = (0..n).map(|k| a[i * n + k] * inverse[k * n + j]).sum();
                    let expected = if i == j { 1.0 } else { 0.0 };
                    prop_assert!((product - expected).abs() < 1e-9, "({}, {}): {}", i, j, product);
                }
            }
        }
    }

    #[test]
    fn singular_matrices_are_refused() {
        assert_eq!(invert_in_place(&mut [0.0, 0.0, 0.0, 1.0], 2), Err(Singular(0)));
    }
}
