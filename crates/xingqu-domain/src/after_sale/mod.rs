//! After-sales, pure: the kinds of claim and their life cycle with its deadlines ([`status`]),
//! what an order line may still pay back ([`money`]), and the time windows that open a claim
//! ([`window`]). Times are unix milliseconds passed in by the caller; money is `i64` 分.

pub mod money;
pub mod status;
pub mod window;

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;
