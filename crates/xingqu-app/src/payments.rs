//! Payment gateways: the interface, and the built-in `simulated` gateway whose callbacks are
//! signed with HMAC-SHA256 over a configured secret.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// A payment callback as a gateway sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentCallback {
    pub order_id: i64,
    pub amount_fen: i64,
    /// The gateway's own reference for the payment.
    pub gateway_ref: String,
    /// Hex HMAC-SHA256 of [`PaymentCallback::signed_text`].
    pub signature: String,
}

impl PaymentCallback {
    /// The exact text the signature covers.
    pub fn signed_text(order_id: i64, amount_fen: i64, gateway_ref: &str) -> String {
        format!("{order_id}|{amount_fen}|{gateway_ref}")
    }
}

/// What a payment gateway does for the platform.
pub trait PaymentGateway: Send + Sync + std::fmt::Debug {
    fn name(&self) -> &'static str;
    /// Whether a callback really comes from the gateway.
    fn verify(&self, callback: &PaymentCallback) -> bool;
    /// Returns money to the buyer; the gateway's refund reference. `reference` makes it idempotent.
    fn refund(&self, order_id: i64, amount_fen: i64, reference: &str) -> Result<String, String>;
    /// For the simulated gateway: the callback it would send when the buyer pays.
    fn simulate_success(&self, order_id: i64, amount_fen: i64) -> Option<PaymentCallback>;
}

/// A gateway that settles instantly; its callbacks are signed so forgeries are refused.
#[derive(Clone)]
pub struct SimulatedGateway {
    secret: Vec<u8>,
}

impl std::fmt::Debug for SimulatedGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SimulatedGateway")
    }
}

impl SimulatedGateway {
    pub fn new(secret: &[u8]) -> Self {
        Self { secret: secret.to_vec() }
    }

    pub fn sign(&self, order_id: i64, amount_fen: i64, gateway_ref: &str) -> String {
        // HMAC accepts keys of any length; an error here is impossible.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.secret) else { return String::new() };
        mac.update(PaymentCallback::signed_text(order_id, amount_fen, gateway_ref).as_bytes());
        mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
    }
}

fn hex_decode(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) || hex.len() > 128 {
        return None;
    }
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok()).collect()
}

impl PaymentGateway for SimulatedGateway {
    fn name(&self) -> &'static str {
        "simulated"
    }

    fn verify(&self, callback: &PaymentCallback) -> bool {
        let Some(signature) = hex_decode(&callback.signature) else { return false };
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.secret) else { return false };
        mac.update(
            PaymentCallback::signed_text(callback.order_id, callback.amount_fen, &callback.gateway_ref).as_bytes(),
        );
        // Constant-time comparison.
        mac.verify_slice(&signature).is_ok()
    }

    fn refund(&self, order_id: i64, amount_fen: i64, reference: &str) -> Result<String, String> {
        Ok(format!("sim-refund-{order_id}-{amount_fen}-{reference}"))
    }

    fn simulate_success(&self, order_id: i64, amount_fen: i64) -> Option<PaymentCallback> {
        let gateway_ref = format!("sim-pay-{order_id}");
        let signature = self.sign(order_id, amount_fen, &gateway_ref);
        Some(PaymentCallback { order_id, amount_fen, gateway_ref, signature })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_only_with_the_secret_and_the_same_fields() {
        let gateway = SimulatedGateway::new(b"secret");
        let good = gateway.simulate_success(42, 5990).expect("simulated");
        assert!(gateway.verify(&good));
        let other = SimulatedGateway::new(b"other");
        assert!(!other.verify(&good));
        assert!(!gateway.verify(&PaymentCallback { amount_fen: 1, ..good.clone() }));
        assert!(!gateway.verify(&PaymentCallback { signature: String::new(), ..good.clone() }));
        assert!(!gateway.verify(&PaymentCallback { signature: "zz".into(), ..good }));
    }
}
