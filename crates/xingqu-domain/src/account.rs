//! Accounts: roles, e-mail addresses, passwords, and who may act on which shop.

use crate::Invalid;

/// What a user is on the platform. A user has exactly one role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Consumer,
    /// Staff of exactly one merchant; acts only on that shop.
    MerchantStaff,
    Creator,
    Operator,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Consumer, Role::MerchantStaff, Role::Creator, Role::Operator];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Consumer => "consumer",
            Role::MerchantStaff => "merchant_staff",
            Role::Creator => "creator",
            Role::Operator => "operator",
        }
    }

    pub fn from_name(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == name)
    }

    /// Roles anyone may register for. Merchant staff come from a shop application, operators from
    /// `xingqu admin create-operator` or another operator.
    pub fn self_service(self) -> bool {
        matches!(self, Role::Consumer | Role::Creator)
    }
}

/// Who is making a request, as far as authorization is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Actor {
    pub user_id: i64,
    pub role: Role,
    /// The shop a merchant-staff user works for; `None` for every other role.
    pub merchant_id: Option<i64>,
}

impl Actor {
    pub fn is_operator(&self) -> bool {
        self.role == Role::Operator
    }

    /// Whether this actor may manage the given shop: its own staff, or an operator.
    pub fn manages_merchant(&self, merchant_id: i64) -> bool {
        self.is_operator() || (self.role == Role::MerchantStaff && self.merchant_id == Some(merchant_id))
    }
}

/// A lower-cased e-mail address of plausible shape (`local@domain.tld`), at most 254 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let value = raw.trim().to_lowercase();
        let invalid = || Invalid::new("email", "invalid_email", "must be an e-mail address like name@example.com");
        if value.chars().count() > 254 {
            return Err(Invalid::new("email", "too_long", "must be at most 254 characters"));
        }
        let (local, domain) = value.split_once('@').ok_or_else(invalid)?;
        let shape_ok = !local.is_empty()
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains('@')
            && !value.chars().any(|c| c.is_whitespace() || c.is_control());
        if !shape_ok {
            return Err(invalid());
        }
        Ok(Self(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password of 8 to 128 characters. Never stored; only its argon2 hash is.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let n_chars = raw.chars().count();
        if n_chars < 8 {
            return Err(Invalid::new("password", "too_short", "must be at least 8 characters"));
        }
        if n_chars > 128 {
            return Err(Invalid::new("password", "too_long", "must be at most 128 characters"));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert_eq!(Email::parse(" Li.Na@Example.COM ").map(|e| e.0), Ok("li.na@example.com".into()));
        for bad in ["", "no-at", "@example.com", "a@b", "a@.com", "a@b.", "a b@c.com", "a@b@c.com"] {
            assert!(Email::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn roles_round_trip_and_staff_scope() {
        for role in Role::ALL {
            assert_eq!(Role::from_name(role.as_str()), Some(role));
        }
        let staff = Actor { user_id: 1, role: Role::MerchantStaff, merchant_id: Some(7) };
        assert!(staff.manages_merchant(7));
        assert!(!staff.manages_merchant(8));
        let op = Actor { user_id: 2, role: Role::Operator, merchant_id: None };
        assert!(op.manages_merchant(8));
        let consumer = Actor { user_id: 3, role: Role::Consumer, merchant_id: None };
        assert!(!consumer.manages_merchant(7));
    }

    #[test]
    fn passwords() {
        assert!(Password::parse("short").is_err());
        assert!(Password::parse(&"x".repeat(129)).is_err());
        assert!(Password::parse("correct horse").is_ok());
        assert_eq!(format!("{:?}", Password::parse("correct horse")), "Ok(Password(***))");
    }
}
