//! After-sale kinds and their life cycle: which event moves a record from where, for which kinds,
//! and which deadlines act on a record nobody moves.
//!
//! A record starts `requested` ([`AfterSaleKind::initial_status`]), except price protection: the
//! system computes its amount and creates it already `refunded`, so nothing is left to decide.
//!
//! "approve" below is any of: the merchant's approval, the merchant's answer timeout (an unanswered
//! request is approved), or arbitration for the buyer. Where it leads depends on the kind: a kind
//! that needs the goods back goes to `awaiting_return`; a kind that pays money goes to `refunded`
//! (the refund is recorded in the same transaction); a re-ship goes to `awaiting_replacement` until
//! the merchant ships the replacement (its carrier and tracking number are recorded on the record).
//!
//! "merchant-answered" kinds are all but `price_protection` (nothing to answer) and `counterfeit`
//! (an authenticity claim is confirmed by an operator, never by the accused merchant). "return
//! kinds" are those whose [`AfterSaleKind::needs_return`] holds.
//!
//! | from              | event                                       | kinds                          | to                |
//! |-------------------|---------------------------------------------|--------------------------------|-------------------|
//! | `requested`       | `merchant_approve`, `merchant_answer_timeout` | merchant-answered            | approve           |
//! | `requested`       | `merchant_reject`                           | merchant-answered              | `rejected`        |
//! | `requested`       | `arbitrate_for_buyer`                       | `counterfeit`                  | `refunded`        |
//! | `requested`       | `arbitrate_for_merchant`                    | `counterfeit`                  | `closed`          |
//! | `requested`       | `buyer_withdraw`                            | all but `price_protection`     | `closed`          |
//! | `rejected`        | `buyer_dispute`                             | merchant-answered              | `disputed`        |
//! | `rejected`        | `buyer_withdraw`, `buyer_dispute_timeout`   | merchant-answered              | `closed`          |
//! | `disputed`        | `arbitrate_for_buyer`                       | merchant-answered              | approve           |
//! | `disputed`        | `arbitrate_for_merchant`                    | merchant-answered              | `closed`          |
//! | `awaiting_return` | `buyer_ship_return`                         | return kinds                   | `return_shipped`  |
//! | `awaiting_return` | `buyer_ship_timeout`, `buyer_withdraw`      | return kinds                   | `closed`          |
//! | `return_shipped`  | `merchant_receive`                          | return kinds                   | `return_received` |
//! | `return_shipped`  | `merchant_receive_timeout`                  | money return kinds             | `refunded`        |
//! | `return_shipped`  | `merchant_receive_timeout`                  | `exchange`, `repair`           | `return_received` |
//! | `return_received` | `refund_paid`, `merchant_refund_timeout`    | `return_refund`, `allergy_return` | `refunded`     |
//! | `return_received` | `fulfilled`                                 | `exchange`, `repair`           | `resolved`        |
//! | `awaiting_replacement` | `fulfilled`                            | `reship`                       | `resolved`        |
//! | `awaiting_replacement` | `buyer_withdraw`                       | `reship`                       | `closed`          |
//!
//! Everything else is refused, including any event on a kind that cannot reach the state (a
//! `refund_without_return` record is never `awaiting_return`). `refunded`, `resolved` and `closed`
//! are terminal; `rejected` is not, since the buyer may still dispute (until a timer closes it).
//!
//! Deadlines ([`Deadlines`]): a record left in a state is moved by a timer.
//!
//! | status            | deadline                       | event                     | kinds                 |
//! |-------------------|--------------------------------|---------------------------|-----------------------|
//! | `requested`       | `merchant_answer_ms` (48 h)    | `merchant_answer_timeout` | merchant-answered     |
//! | `rejected`        | `buyer_dispute_ms` (7 days)    | `buyer_dispute_timeout`   | merchant-answered     |
//! | `awaiting_return` | `buyer_ship_ms` (7 days)       | `buyer_ship_timeout`      | return kinds          |
//! | `return_shipped`  | `merchant_receive_ms` (10 days)| `merchant_receive_timeout`| return kinds          |
//! | `return_received` | `merchant_refund_ms` (7 days)  | `merchant_refund_timeout` | money return kinds    |
//!
//! No timer acts on a counterfeit claim or a dispute (an operator decides them), nor on a received
//! exchange or repair or an approved re-ship (no timer can ship a replacement; they move goods, not
//! money, so settlement does not wait for them).

use super::{DAY_MS, HOUR_MS};
use crate::Invalid;

/// What the buyer (or the system) claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AfterSaleKind {
    /// Paid, not yet shipped: the money back, nothing to return.
    RefundBeforeShipment,
    /// Shipped (lost, never arrived, agreed with the merchant): the money back, goods kept.
    RefundWithoutReturn,
    /// The goods go back, then the money.
    ReturnRefund,
    /// The goods go back, a replacement comes.
    Exchange,
    /// A replacement is sent, nothing goes back (missing or broken on arrival).
    Reship,
    /// The goods go back, repaired.
    Repair,
    /// A later price cut refunded within the promised window; created by the system.
    PriceProtection,
    /// Spoiled fresh goods refunded without return (bad-order compensation).
    FreshDamage,
    /// Opened cosmetics returned after a reaction.
    AllergyReturn,
    /// The goods are not genuine: refunded once an operator confirms it.
    Counterfeit,
}

impl AfterSaleKind {
    pub const ALL: [AfterSaleKind; 10] = [
        AfterSaleKind::RefundBeforeShipment,
        AfterSaleKind::RefundWithoutReturn,
        AfterSaleKind::ReturnRefund,
        AfterSaleKind::Exchange,
        AfterSaleKind::Reship,
        AfterSaleKind::Repair,
        AfterSaleKind::PriceProtection,
        AfterSaleKind::FreshDamage,
        AfterSaleKind::AllergyReturn,
        AfterSaleKind::Counterfeit,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AfterSaleKind::RefundBeforeShipment => "refund_before_shipment",
            AfterSaleKind::RefundWithoutReturn => "refund_without_return",
            AfterSaleKind::ReturnRefund => "return_refund",
            AfterSaleKind::Exchange => "exchange",
            AfterSaleKind::Reship => "reship",
            AfterSaleKind::Repair => "repair",
            AfterSaleKind::PriceProtection => "price_protection",
            AfterSaleKind::FreshDamage => "fresh_damage",
            AfterSaleKind::AllergyReturn => "allergy_return",
            AfterSaleKind::Counterfeit => "counterfeit",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        Self::ALL.into_iter().find(|k| k.as_str() == raw).ok_or_else(|| {
            Invalid::new(
                "kind",
                "invalid_after_sale_kind",
                "must be refund_before_shipment, refund_without_return, return_refund, exchange, reship, repair, \
                 price_protection, fresh_damage, allergy_return or counterfeit",
            )
        })
    }

    /// Whether the buyer ships the goods back before the claim can finish.
    pub fn needs_return(self) -> bool {
        matches!(
            self,
            AfterSaleKind::ReturnRefund
                | AfterSaleKind::Exchange
                | AfterSaleKind::Repair
                | AfterSaleKind::AllergyReturn
        )
    }

    /// Whether the claim ends in money paid back to the buyer (rather than goods).
    pub fn pays_money(self) -> bool {
        !matches!(self, AfterSaleKind::Exchange | AfterSaleKind::Reship | AfterSaleKind::Repair)
    }

    /// Whether the merchant answers the request (approves or rejects it). Price protection has
    /// nothing to answer; a counterfeit claim is decided by an operator, not by the accused.
    pub fn merchant_answers(self) -> bool {
        !matches!(self, AfterSaleKind::PriceProtection | AfterSaleKind::Counterfeit)
    }

    /// The status a new record of this kind is created in.
    pub fn initial_status(self) -> AfterSaleStatus {
        match self {
            AfterSaleKind::PriceProtection => AfterSaleStatus::Refunded,
            _ => AfterSaleStatus::Requested,
        }
    }

    /// Where an approved claim goes: the goods come back first, or it is settled at once.
    fn approved(self) -> AfterSaleStatus {
        if self.needs_return() {
            AfterSaleStatus::AwaitingReturn
        } else if self.pays_money() {
            AfterSaleStatus::Refunded
        } else {
            AfterSaleStatus::AwaitingReplacement
        }
    }
}

/// Where an after-sale record is; see the module documentation for the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AfterSaleStatus {
    /// Awaiting the merchant (or, for a counterfeit claim, an operator).
    Requested,
    /// Approved: the buyer must ship the goods back.
    AwaitingReturn,
    ReturnShipped,
    ReturnReceived,
    /// A re-ship approved: the merchant ships the replacement.
    AwaitingReplacement,
    /// The merchant rejected and the buyer escalated to operator arbitration.
    Disputed,
    /// The merchant rejected; the buyer may dispute.
    Rejected,
    /// The money is decided and recorded (its payout may still be pending): terminal for money kinds.
    Refunded,
    /// Exchange, re-ship or repair done: terminal for kinds that pay in goods.
    Resolved,
    /// Withdrawn, the return not shipped in time, or arbitration against the buyer.
    Closed,
}

/// Something that moves an after-sale record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AfterSaleEvent {
    MerchantApprove,
    MerchantReject,
    /// The merchant did not answer in time: the request is approved.
    MerchantAnswerTimeout,
    BuyerShipReturn,
    /// The buyer did not ship the return in time: the claim closes.
    BuyerShipTimeout,
    MerchantReceive,
    /// The return was shipped long enough ago and the merchant never confirmed it: taken as received
    /// (a money return is refunded at once).
    MerchantReceiveTimeout,
    /// The merchant received the return and did not refund in time: the refund is made for them.
    MerchantRefundTimeout,
    RefundPaid,
    /// The replacement shipped or the repaired goods returned.
    Fulfilled,
    BuyerDispute,
    /// The buyer neither disputed nor withdrew a rejection in time: the claim closes.
    BuyerDisputeTimeout,
    ArbitrateForBuyer,
    ArbitrateForMerchant,
    BuyerWithdraw,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot {event} a {kind} after-sale that is {from}")]
pub struct InvalidAfterSaleTransition {
    pub kind: &'static str,
    pub from: &'static str,
    pub event: &'static str,
}

impl AfterSaleStatus {
    pub const ALL: [AfterSaleStatus; 10] = [
        AfterSaleStatus::Requested,
        AfterSaleStatus::AwaitingReturn,
        AfterSaleStatus::ReturnShipped,
        AfterSaleStatus::ReturnReceived,
        AfterSaleStatus::AwaitingReplacement,
        AfterSaleStatus::Disputed,
        AfterSaleStatus::Rejected,
        AfterSaleStatus::Refunded,
        AfterSaleStatus::Resolved,
        AfterSaleStatus::Closed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AfterSaleStatus::Requested => "requested",
            AfterSaleStatus::AwaitingReturn => "awaiting_return",
            AfterSaleStatus::ReturnShipped => "return_shipped",
            AfterSaleStatus::ReturnReceived => "return_received",
            AfterSaleStatus::AwaitingReplacement => "awaiting_replacement",
            AfterSaleStatus::Disputed => "disputed",
            AfterSaleStatus::Rejected => "rejected",
            AfterSaleStatus::Refunded => "refunded",
            AfterSaleStatus::Resolved => "resolved",
            AfterSaleStatus::Closed => "closed",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Whether nothing can move the record any more.
    pub fn is_terminal(self) -> bool {
        matches!(self, AfterSaleStatus::Refunded | AfterSaleStatus::Resolved | AfterSaleStatus::Closed)
    }

    /// The status after `event` on a record of `kind` in this status; the table in the module
    /// documentation, and nothing else.
    pub fn apply(
        self,
        kind: AfterSaleKind,
        event: AfterSaleEvent,
    ) -> Result<AfterSaleStatus, InvalidAfterSaleTransition> {
        use AfterSaleEvent as E;
        use AfterSaleKind as K;
        use AfterSaleStatus as S;
        let answered = kind.merchant_answers();
        let returns = kind.needs_return();
        let next = match (self, event) {
            (S::Requested, E::MerchantApprove | E::MerchantAnswerTimeout) if answered => Some(kind.approved()),
            (S::Requested, E::MerchantReject) if answered => Some(S::Rejected),
            (S::Requested, E::ArbitrateForBuyer) if kind == K::Counterfeit => Some(S::Refunded),
            (S::Requested, E::ArbitrateForMerchant) if kind == K::Counterfeit => Some(S::Closed),
            // A price-protection record is never requested; refusing keeps a wrongly stored one inert.
            (S::Requested, E::BuyerWithdraw) if kind != K::PriceProtection => Some(S::Closed),
            (S::Rejected, E::BuyerDispute) if answered => Some(S::Disputed),
            (S::Rejected, E::BuyerWithdraw | E::BuyerDisputeTimeout) if answered => Some(S::Closed),
            (S::Disputed, E::ArbitrateForBuyer) if answered => Some(kind.approved()),
            (S::Disputed, E::ArbitrateForMerchant) if answered => Some(S::Closed),
            (S::AwaitingReturn, E::BuyerShipReturn) if returns => Some(S::ReturnShipped),
            (S::AwaitingReturn, E::BuyerShipTimeout | E::BuyerWithdraw) if returns => Some(S::Closed),
            (S::ReturnShipped, E::MerchantReceive) if returns => Some(S::ReturnReceived),
            (S::ReturnShipped, E::MerchantReceiveTimeout) if returns && kind.pays_money() => Some(S::Refunded),
            (S::ReturnShipped, E::MerchantReceiveTimeout) if returns => Some(S::ReturnReceived),
            (S::ReturnReceived, E::RefundPaid | E::MerchantRefundTimeout) if returns && kind.pays_money() => {
                Some(S::Refunded)
            }
            (S::ReturnReceived, E::Fulfilled) if returns && !kind.pays_money() => Some(S::Resolved),
            (S::AwaitingReplacement, E::Fulfilled) if kind == K::Reship => Some(S::Resolved),
            (S::AwaitingReplacement, E::BuyerWithdraw) if kind == K::Reship => Some(S::Closed),
            _ => None,
        };
        next.ok_or(InvalidAfterSaleTransition { kind: kind.as_str(), from: self.as_str(), event: event.as_str() })
    }
}

impl AfterSaleEvent {
    pub const ALL: [AfterSaleEvent; 15] = [
        AfterSaleEvent::MerchantApprove,
        AfterSaleEvent::MerchantReject,
        AfterSaleEvent::MerchantAnswerTimeout,
        AfterSaleEvent::BuyerShipReturn,
        AfterSaleEvent::BuyerShipTimeout,
        AfterSaleEvent::MerchantReceive,
        AfterSaleEvent::MerchantReceiveTimeout,
        AfterSaleEvent::MerchantRefundTimeout,
        AfterSaleEvent::RefundPaid,
        AfterSaleEvent::Fulfilled,
        AfterSaleEvent::BuyerDispute,
        AfterSaleEvent::BuyerDisputeTimeout,
        AfterSaleEvent::ArbitrateForBuyer,
        AfterSaleEvent::ArbitrateForMerchant,
        AfterSaleEvent::BuyerWithdraw,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AfterSaleEvent::MerchantApprove => "merchant_approve",
            AfterSaleEvent::MerchantReject => "merchant_reject",
            AfterSaleEvent::MerchantAnswerTimeout => "merchant_answer_timeout",
            AfterSaleEvent::BuyerShipReturn => "buyer_ship_return",
            AfterSaleEvent::BuyerShipTimeout => "buyer_ship_timeout",
            AfterSaleEvent::MerchantReceive => "merchant_receive",
            AfterSaleEvent::MerchantReceiveTimeout => "merchant_receive_timeout",
            AfterSaleEvent::MerchantRefundTimeout => "merchant_refund_timeout",
            AfterSaleEvent::RefundPaid => "refund_paid",
            AfterSaleEvent::Fulfilled => "fulfilled",
            AfterSaleEvent::BuyerDispute => "buyer_dispute",
            AfterSaleEvent::BuyerDisputeTimeout => "buyer_dispute_timeout",
            AfterSaleEvent::ArbitrateForBuyer => "arbitrate_for_buyer",
            AfterSaleEvent::ArbitrateForMerchant => "arbitrate_for_merchant",
            AfterSaleEvent::BuyerWithdraw => "buyer_withdraw",
        }
    }
}

/// How long each party has before a timer acts for them, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadlines {
    /// From `requested`: the merchant answers, or the request is approved.
    pub merchant_answer_ms: i64,
    /// From `rejected`: the buyer disputes (or withdraws), or the claim closes.
    pub buyer_dispute_ms: i64,
    /// From `awaiting_return`: the buyer ships the goods back, or the claim closes.
    pub buyer_ship_ms: i64,
    /// From `return_shipped`: the merchant confirms the return arrived, or it is taken as received
    /// (the carrier's delivery plus the merchant's inspection fit well inside it).
    pub merchant_receive_ms: i64,
    /// From `return_received`: the merchant refunds, or the refund is made for them (the seven-day
    /// return rule: the merchant refunds within 7 days of receiving the goods).
    pub merchant_refund_ms: i64,
}

impl Default for Deadlines {
    fn default() -> Self {
        Self {
            merchant_answer_ms: 48 * HOUR_MS,
            buyer_dispute_ms: 7 * DAY_MS,
            buyer_ship_ms: 7 * DAY_MS,
            merchant_receive_ms: 10 * DAY_MS,
            merchant_refund_ms: 7 * DAY_MS,
        }
    }
}

impl Deadlines {
    /// When a timer acts on a record of `kind` that entered `status` at `entered_at_ms`; `None`
    /// when no timer acts there (the record waits for a person). Whenever this is `Some`,
    /// [`Deadlines::timeout_event`] is an event that `status.apply(kind, _)` accepts.
    pub fn due_at_ms(&self, kind: AfterSaleKind, status: AfterSaleStatus, entered_at_ms: i64) -> Option<i64> {
        let delay_ms = match Self::timeout_event(kind, status)? {
            AfterSaleEvent::MerchantAnswerTimeout => self.merchant_answer_ms,
            AfterSaleEvent::BuyerDisputeTimeout => self.buyer_dispute_ms,
            AfterSaleEvent::BuyerShipTimeout => self.buyer_ship_ms,
            AfterSaleEvent::MerchantReceiveTimeout => self.merchant_receive_ms,
            _ => self.merchant_refund_ms,
        };
        Some(entered_at_ms.saturating_add(delay_ms))
    }

    /// The event a due timer applies to a record of `kind` in `status`, if a timer acts there.
    pub fn timeout_event(kind: AfterSaleKind, status: AfterSaleStatus) -> Option<AfterSaleEvent> {
        let event = match status {
            AfterSaleStatus::Requested => AfterSaleEvent::MerchantAnswerTimeout,
            AfterSaleStatus::Rejected => AfterSaleEvent::BuyerDisputeTimeout,
            AfterSaleStatus::AwaitingReturn => AfterSaleEvent::BuyerShipTimeout,
            AfterSaleStatus::ReturnShipped => AfterSaleEvent::MerchantReceiveTimeout,
            AfterSaleStatus::ReturnReceived => AfterSaleEvent::MerchantRefundTimeout,
            _ => return None,
        };
        // The machine decides for which kinds the timeout applies (not for a counterfeit claim,
        // nor for a received exchange or repair), so the timers never disagree with it.
        status.apply(kind, event).ok().map(|_| event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AfterSaleEvent as E;
    use AfterSaleKind as K;
    use AfterSaleStatus as S;

    /// Every allowed transition, written out per kind (independently of `apply`'s guards).
    fn allowed(kind: K) -> Vec<(S, E, S)> {
        let withdraw = [(S::Requested, E::BuyerWithdraw, S::Closed)];
        let answered = |approved: S| {
            vec![
                (S::Requested, E::MerchantApprove, approved),
                (S::Requested, E::MerchantAnswerTimeout, approved),
                (S::Requested, E::MerchantReject, S::Rejected),
                (S::Requested, E::BuyerWithdraw, S::Closed),
                (S::Rejected, E::BuyerDispute, S::Disputed),
                (S::Rejected, E::BuyerWithdraw, S::Closed),
                (S::Rejected, E::BuyerDisputeTimeout, S::Closed),
                (S::Disputed, E::ArbitrateForBuyer, approved),
                (S::Disputed, E::ArbitrateForMerchant, S::Closed),
            ]
        };
        let return_leg = [
            (S::AwaitingReturn, E::BuyerShipReturn, S::ReturnShipped),
            (S::AwaitingReturn, E::BuyerShipTimeout, S::Closed),
            (S::AwaitingReturn, E::BuyerWithdraw, S::Closed),
            (S::ReturnShipped, E::MerchantReceive, S::ReturnReceived),
        ];
        match kind {
            K::RefundBeforeShipment | K::RefundWithoutReturn | K::FreshDamage => answered(S::Refunded),
            K::Reship => {
                let mut all = answered(S::AwaitingReplacement);
                all.push((S::AwaitingReplacement, E::Fulfilled, S::Resolved));
                all.push((S::AwaitingReplacement, E::BuyerWithdraw, S::Closed));
                all
            }
            K::ReturnRefund | K::AllergyReturn => {
                let mut all = answered(S::AwaitingReturn);
                all.extend(return_leg);
                all.push((S::ReturnShipped, E::MerchantReceiveTimeout, S::Refunded));
                all.push((S::ReturnReceived, E::RefundPaid, S::Refunded));
                all.push((S::ReturnReceived, E::MerchantRefundTimeout, S::Refunded));
                all
            }
            K::Exchange | K::Repair => {
                let mut all = answered(S::AwaitingReturn);
                all.extend(return_leg);
                all.push((S::ReturnShipped, E::MerchantReceiveTimeout, S::ReturnReceived));
                all.push((S::ReturnReceived, E::Fulfilled, S::Resolved));
                all
            }
            K::Counterfeit => {
                let mut all = withdraw.to_vec();
                all.push((S::Requested, E::ArbitrateForBuyer, S::Refunded));
                all.push((S::Requested, E::ArbitrateForMerchant, S::Closed));
                all
            }
            K::PriceProtection => vec![],
        }
    }

    #[test]
    fn every_transition_is_the_table() {
        let mut accepted = 0;
        for kind in K::ALL {
            let table = allowed(kind);
            for from in S::ALL {
                for event in E::ALL {
                    let expected = table.iter().find(|&&(f, e, _)| f == from && e == event).map(|&(_, _, to)| to);
                    let got = from.apply(kind, event);
                    assert_eq!(
                        got.clone().ok(),
                        expected,
                        "{} {} --{}-->",
                        kind.as_str(),
                        from.as_str(),
                        event.as_str()
                    );
                    if let Err(e) = got {
                        assert_eq!((e.kind, e.from, e.event), (kind.as_str(), from.as_str(), event.as_str()));
                    } else {
                        accepted += 1;
                    }
                }
            }
        }
        // 3 refund kinds × 9, re-ship 11, 2 return-refund kinds × 16, exchange and repair × 15, counterfeit 3.
        assert_eq!(accepted, 3 * 9 + 11 + 2 * 16 + 2 * 15 + 3);
    }

    #[test]
    fn refused_samples() {
        let refused = [
            (K::Counterfeit, S::Requested, E::MerchantApprove),
            (K::Counterfeit, S::Requested, E::MerchantReject),
            (K::Counterfeit, S::Requested, E::MerchantAnswerTimeout),
            (K::PriceProtection, S::Refunded, E::BuyerWithdraw),
            (K::PriceProtection, S::Requested, E::MerchantApprove),
            (K::ReturnRefund, S::Requested, E::BuyerDispute),
            (K::ReturnRefund, S::Requested, E::ArbitrateForBuyer),
            (K::ReturnRefund, S::Disputed, E::BuyerWithdraw),
            (K::ReturnRefund, S::ReturnShipped, E::BuyerWithdraw),
            (K::ReturnRefund, S::ReturnShipped, E::RefundPaid),
            (K::ReturnRefund, S::ReturnReceived, E::Fulfilled),
            (K::Exchange, S::ReturnReceived, E::RefundPaid),
            (K::Exchange, S::ReturnReceived, E::MerchantRefundTimeout),
            (K::RefundWithoutReturn, S::AwaitingReturn, E::BuyerShipReturn),
            (K::Reship, S::Requested, E::Fulfilled),
            (K::Exchange, S::AwaitingReplacement, E::Fulfilled),
            (K::Reship, S::AwaitingReplacement, E::MerchantAnswerTimeout),
            (K::FreshDamage, S::Refunded, E::MerchantApprove),
            (K::Repair, S::Closed, E::BuyerDispute),
            (K::Repair, S::Resolved, E::Fulfilled),
        ];
        for (kind, from, event) in refused {
            let err = from.apply(kind, event).expect_err("refused");
            assert_eq!(
                err.to_string(),
                format!("cannot {} a {} after-sale that is {}", event.as_str(), kind.as_str(), from.as_str())
            );
        }
    }

    #[test]
    fn every_kind_can_finish() {
        let walk = |kind: K, events: &[E]| {
            events.iter().try_fold(kind.initial_status(), |status, &event| status.apply(kind, event))
        };
        let return_path = [E::MerchantApprove, E::BuyerShipReturn, E::MerchantReceive];
        assert_eq!(walk(K::RefundBeforeShipment, &[E::MerchantAnswerTimeout]), Ok(S::Refunded));
        assert_eq!(walk(K::FreshDamage, &[E::MerchantReject, E::BuyerDispute, E::ArbitrateForBuyer]), Ok(S::Refunded));
        assert_eq!(walk(K::Reship, &[E::MerchantApprove]), Ok(S::AwaitingReplacement));
        assert_eq!(walk(K::Reship, &[E::MerchantApprove, E::Fulfilled]), Ok(S::Resolved));
        assert_eq!(walk(K::ReturnRefund, &[&return_path[..], &[E::RefundPaid]].concat()), Ok(S::Refunded));
        assert_eq!(walk(K::AllergyReturn, &[&return_path[..], &[E::MerchantRefundTimeout]].concat()), Ok(S::Refunded));
        assert_eq!(walk(K::Exchange, &[&return_path[..], &[E::Fulfilled]].concat()), Ok(S::Resolved));
        assert_eq!(
            walk(K::Repair, &[E::MerchantReject, E::BuyerDispute, E::ArbitrateForBuyer, E::BuyerShipTimeout]),
            Ok(S::Closed)
        );
        assert_eq!(walk(K::Counterfeit, &[E::ArbitrateForBuyer]), Ok(S::Refunded));
        assert_eq!(walk(K::Counterfeit, &[E::ArbitrateForMerchant]), Ok(S::Closed));
        assert_eq!(walk(K::PriceProtection, &[]), Ok(S::Refunded));
    }

    #[test]
    fn terminal_states_accept_nothing() {
        for kind in K::ALL {
            for from in S::ALL.into_iter().filter(|s| s.is_terminal()) {
                assert!(E::ALL.into_iter().all(|e| from.apply(kind, e).is_err()), "{}", from.as_str());
            }
        }
        assert!(!S::Rejected.is_terminal(), "a rejected buyer may still dispute");
    }

    #[test]
    fn kinds() {
        let returns: Vec<K> = K::ALL.into_iter().filter(|k| k.needs_return()).collect();
        assert_eq!(returns, [K::ReturnRefund, K::Exchange, K::Repair, K::AllergyReturn]);
        let goods: Vec<K> = K::ALL.into_iter().filter(|k| !k.pays_money()).collect();
        assert_eq!(goods, [K::Exchange, K::Reship, K::Repair]);
        assert_eq!(K::PriceProtection.initial_status(), S::Refunded);
        assert_eq!(K::Counterfeit.initial_status(), S::Requested);
    }

    #[test]
    fn names_round_trip() {
        for kind in K::ALL {
            assert_eq!(K::parse(kind.as_str()), Ok(kind));
        }
        let err = K::parse("Exchange").expect_err("names are snake_case");
        assert_eq!((err.field, err.code), ("kind", "invalid_after_sale_kind"));
        for status in S::ALL {
            assert_eq!(S::from_name(status.as_str()), Some(status));
        }
        assert_eq!(S::from_name("pending"), None);
        let mut events: Vec<&str> = E::ALL.into_iter().map(E::as_str).collect();
        events.sort_unstable();
        events.dedup();
        assert_eq!(events.len(), E::ALL.len());
    }

    #[test]
    fn deadlines() {
        let d = Deadlines::default();
        assert_eq!(
            d,
            Deadlines {
                merchant_answer_ms: 172_800_000,
                buyer_dispute_ms: 604_800_000,
                buyer_ship_ms: 604_800_000,
                merchant_receive_ms: 864_000_000,
                merchant_refund_ms: 604_800_000,
            }
        );
        let t = 1_762_826_400_000;
        assert_eq!(d.due_at_ms(K::ReturnRefund, S::Requested, t), Some(t + 172_800_000));
        assert_eq!(d.due_at_ms(K::ReturnRefund, S::AwaitingReturn, t), Some(t + 604_800_000));
        assert_eq!(d.due_at_ms(K::ReturnRefund, S::ReturnReceived, t), Some(t + 604_800_000));
        assert_eq!(d.due_at_ms(K::ReturnRefund, S::ReturnShipped, t), Some(t + 864_000_000));
        assert_eq!(d.due_at_ms(K::ReturnRefund, S::Rejected, t), Some(t + 604_800_000));
        assert_eq!(d.due_at_ms(K::ReturnRefund, S::Disputed, t), None, "an operator decides");
        assert_eq!(d.due_at_ms(K::Counterfeit, S::Requested, t), None, "an operator decides");
        assert_eq!(d.due_at_ms(K::Exchange, S::ReturnReceived, t), None, "no timer ships a replacement");
        assert_eq!(d.due_at_ms(K::PriceProtection, S::Refunded, t), None);
        assert_eq!(Deadlines::timeout_event(K::FreshDamage, S::Requested), Some(E::MerchantAnswerTimeout));
        assert_eq!(Deadlines::timeout_event(K::Repair, S::AwaitingReturn), Some(E::BuyerShipTimeout));
        assert_eq!(Deadlines::timeout_event(K::AllergyReturn, S::ReturnReceived), Some(E::MerchantRefundTimeout));
        assert_eq!(S::ReturnShipped.apply(K::ReturnRefund, E::MerchantReceiveTimeout), Ok(S::Refunded));
        assert_eq!(S::ReturnShipped.apply(K::Exchange, E::MerchantReceiveTimeout), Ok(S::ReturnReceived));
        assert_eq!(S::Rejected.apply(K::Reship, E::BuyerDisputeTimeout), Ok(S::Closed));
        // A due timer is always an event the machine accepts, and only then.
        for kind in K::ALL {
            for status in S::ALL {
                let due = d.due_at_ms(kind, status, t);
                let event = Deadlines::timeout_event(kind, status);
                assert_eq!(due.is_some(), event.is_some());
                if let Some(event) = event {
                    assert!(status.apply(kind, event).is_ok());
                }
            }
        }
    }
}
