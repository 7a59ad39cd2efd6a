//! Orders: the life cycle from creation to completion, and dispatch promises with their deadlines.

/// Where an order is. `Expired` and `Cancelled` are final and returned their stock.
///
/// ```text
/// created ──pay──▶ paid ──ship──▶ shipped ──deliver──▶ delivered ──complete──▶ completed
///    │ expire / cancel      │ cancel (refund)
///    ▼                      ▼
/// expired / cancelled    cancelled
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderStatus {
    Created,
    Paid,
    Shipped,
    Delivered,
    Completed,
    Cancelled,
    Expired,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderEvent {
    Pay,
    Ship,
    Deliver,
    Complete,
    Cancel,
    Expire,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot {event} an order that is {from}")]
pub struct InvalidOrderTransition {
    pub from: &'static str,
    pub event: &'static str,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 7] = [
        OrderStatus::Created,
        OrderStatus::Paid,
        OrderStatus::Shipped,
        OrderStatus::Delivered,
        OrderStatus::Completed,
        OrderStatus::Cancelled,
        OrderStatus::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Created => "created",
            OrderStatus::Paid => "paid",
            OrderStatus::Shipped => "shipped",
            OrderStatus::Delivered => "delivered",
            OrderStatus::Completed => "completed",
            OrderStatus::Cancelled => "cancelled",
            OrderStatus::Expired => "expired",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    pub fn apply(self, event: OrderEvent) -> Result<OrderStatus, InvalidOrderTransition> {
        use OrderEvent as E;
        use OrderStatus as S;
        let next = match (self, event) {
            (S::Created, E::Pay) => Some(S::Paid),
            (S::Created, E::Expire) => Some(S::Expired),
            (S::Created | S::Paid, E::Cancel) => Some(S::Cancelled),
            (S::Paid, E::Ship) => Some(S::Shipped),
            (S::Shipped, E::Deliver) => Some(S::Delivered),
            (S::Delivered, E::Complete) => Some(S::Completed),
            _ => None,
        };
        next.ok_or(InvalidOrderTransition { from: self.as_str(), event: event.as_str() })
    }

    /// Whether the order still holds its stock (not expired or cancelled).
    pub fn holds_stock(self) -> bool {
        !matches!(self, OrderStatus::Cancelled | OrderStatus::Expired)
    }
}

impl OrderEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderEvent::Pay => "pay",
            OrderEvent::Ship => "ship",
            OrderEvent::Deliver => "deliver",
            OrderEvent::Complete => "complete",
            OrderEvent::Cancel => "cancel",
            OrderEvent::Expire => "expire",
        }
    }
}

/// How soon a merchant promises to ship after payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DispatchPromise {
    None,
    Within48h,
    Within24h,
    /// Paid before 16:00 China time: shipped the same day; later: by the end of the next day.
    SameDay,
}

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;
/// China Standard Time, UTC+8 (no daylight saving).
const CHINA_OFFSET_MS: i64 = 8 * HOUR_MS;
const SAME_DAY_CUTOFF_MS: i64 = 16 * HOUR_MS;

impl DispatchPromise {
    pub const ALL: [DispatchPromise; 4] =
        [DispatchPromise::None, DispatchPromise::Within48h, DispatchPromise::Within24h, DispatchPromise::SameDay];

    pub fn as_str(self) -> &'static str {
        match self {
            DispatchPromise::None => "none",
            DispatchPromise::Within48h => "within_48h",
            DispatchPromise::Within24h => "within_24h",
            DispatchPromise::SameDay => "same_day",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, crate::Invalid> {
        Self::ALL.into_iter().find(|p| p.as_str() == raw).ok_or_else(|| {
            crate::Invalid::new(
                "dispatch_promise",
                "invalid_dispatch_promise",
                "must be none, within_48h, within_24h or same_day",
            )
        })
    }

    /// The moment by which an order paid at `paid_at_ms` must have shipped.
    pub fn deadline_ms(self, paid_at_ms: i64) -> Option<i64> {
        match self {
            DispatchPromise::None => None,
            DispatchPromise::Within48h => Some(paid_at_ms + 48 * HOUR_MS),
            DispatchPromise::Within24h => Some(paid_at_ms + 24 * HOUR_MS),
            DispatchPromise::SameDay => {
                let local_ms = paid_at_ms + CHINA_OFFSET_MS;
                let local_midnight_ms = local_ms.div_euclid(DAY_MS) * DAY_MS;
                let days = if local_ms - local_midnight_ms < SAME_DAY_CUTOFF_MS { 1 } else { 2 };
                Some(local_midnight_ms + days * DAY_MS - CHINA_OFFSET_MS)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use OrderEvent as E;
    use OrderStatus as S;

    #[test]
    fn life_cycle() {
        let cases = [
            (S::Created, E::Pay, Some(S::Paid)),
            (S::Created, E::Expire, Some(S::Expired)),
            (S::Created, E::Cancel, Some(S::Cancelled)),
            (S::Created, E::Ship, None),
            (S::Paid, E::Ship, Some(S::Shipped)),
            (S::Paid, E::Cancel, Some(S::Cancelled)),
            (S::Paid, E::Expire, None),
            (S::Paid, E::Pay, None),
            (S::Shipped, E::Cancel, None),
            (S::Shipped, E::Deliver, Some(S::Delivered)),
            (S::Delivered, E::Complete, Some(S::Completed)),
            (S::Expired, E::Pay, None),
            (S::Cancelled, E::Pay, None),
            (S::Completed, E::Cancel, None),
        ];
        for (from, event, expected) in cases {
            assert_eq!(from.apply(event).ok(), expected, "{} --{}-->", from.as_str(), event.as_str());
        }
    }

    #[test]
    fn dispatch_deadlines() {
        // 2025-11-11T02:00:00Z is 10:00 in Beijing: same-day means 2025-11-11T16:00:00Z (midnight Beijing).
        let morning = 1_762_826_400_000;
        assert_eq!(DispatchPromise::SameDay.deadline_ms(morning), Some(1_762_876_800_000));
        // 2025-11-11T09:00:00Z is 17:00 in Beijing, after the cutoff: the end of the next day.
        let evening = 1_762_851_600_000;
        assert_eq!(DispatchPromise::SameDay.deadline_ms(evening), Some(1_762_876_800_000 + DAY_MS));
        assert_eq!(DispatchPromise::Within24h.deadline_ms(morning), Some(morning + DAY_MS));
        assert_eq!(DispatchPromise::None.deadline_ms(morning), None);
    }
}
