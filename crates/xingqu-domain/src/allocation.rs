//! Splitting an amount of 分 across parts in proportion to weights, by largest remainder, so the
//! parts always sum exactly to the whole (a discount across lines, a refund across discounts).

/// Splits `total_fen` in proportion to `weights`: each part is the floor of its exact share, and
/// the fen left over go one each to the parts with the largest remainders (ties to the earlier
/// part). Parts sum to `total_fen` exactly. All weights zero (or none) share nothing: every part
/// is zero and the whole is returned as unallocated by the caller's check.
///
/// `None` when the inputs are out of range (negative values, or a product that could overflow).
pub fn allocate(total_fen: i64, weights: &[i64]) -> Option<Vec<i64>> {
    if total_fen < 0 || weights.iter().any(|&w| w < 0) {
        return None;
    }
    let weight_sum: i128 = weights.iter().map(|&w| i128::from(w)).sum();
    if weight_sum == 0 {
        return if total_fen == 0 { Some(vec![0; weights.len()]) } else { None };
    }
    let total = i128::from(total_fen);
    let mut parts = Vec::with_capacity(weights.len());
    let mut remainders = Vec::with_capacity(weights.len());
    for (index, &weight) in weights.iter().enumerate() {
        let exact = total * i128::from(weight);
        parts.push(i64::try_from(exact / weight_sum).ok()?);
        remainders.push((exact % weight_sum, index));
    }
    let allocated: i64 = parts.iter().sum();
    let left_over = usize::try_from(total_fen - allocated).ok()?;
    // Largest remainder first; among equals, the earlier part.
    remainders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for &(_, index) in remainders.iter().take(left_over) {
        parts[index] += 1;
    }
    Some(parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn examples() {
        assert_eq!(allocate(100, &[1, 1, 1]), Some(vec![34, 33, 33]));
        assert_eq!(allocate(1000, &[5990, 2990, 1590]), Some(vec![567, 283, 150]));
        assert_eq!(allocate(0, &[3, 4]), Some(vec![0, 0]));
        assert_eq!(allocate(5, &[0, 0]), None);
        assert_eq!(allocate(5, &[]), None);
        assert_eq!(allocate(-1, &[1]), None);
        assert_eq!(allocate(7, &[0, 2]), Some(vec![0, 7]));
    }

    proptest! {
        #[test]
        fn parts_sum_to_the_whole_and_stay_within_one_fen_of_the_exact_share(
            total in 0i64..10_000_000_000,
            weights in prop::collection::vec(0i64..100_000_000, 1..60),
        ) {
            let weight_sum: i128 = weights.iter().map(|&w| i128::from(w)).sum();
            prop_assume!(weight_sum > 0);
            let parts = allocate(total, &weights).expect("in range");
            prop_assert_eq!(parts.iter().sum::<i64>(), total);
            for (part, weight) in parts.iter().zip(&weights) {
                let floor = i128::from(total) * i128::from(*weight) / weight_sum;
                prop_assert!(i128::from(*part) == floor || i128::from(*part) == floor + 1);
                if *weight == 0 { prop_assert_eq!(*part, 0); }
            }
        }
    }
}
