//! Promotions, pure: what coupons take off, stacking them on a cart and finding the best set,
//! pro-rating them over refunds, splitting red-packet pools and drawing lucky-bag winners.

pub mod coupon;
pub mod lucky_bag;
pub mod red_packet;
pub mod refund;
pub mod stacking;
