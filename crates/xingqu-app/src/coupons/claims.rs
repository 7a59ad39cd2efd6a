//! Claiming coupons under a claim storm. As for flash sales, admission happens in memory first —
//! a per-coupon gate refuses exhausted, over-limit and replayed claims before any I/O — and
//! admitted claims go to one writer task that commits them in groups, answering each buyer only
//! once their group is durable. The gate is a cache of the store's truth, rebuilt from it on first
//! use and dropped whenever the store disagrees; the store's own guards (the quantity CHECK and
//! the unique (coupon, user, seq)) hold the caps even where the gate is wrong.

use crate::{App, AppError, AppResult};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};
use xingqu_domain::account::{Actor, Role};
use xingqu_domain::promo::red_packet::Split;
use xingqu_domain::rng::SplitMix64;
use xingqu_store::coupons::{CouponRow, NewClaim};
use xingqu_store::{Store, StoreError};

/// Claims committed in one transaction at most.
const GROUP_MAX: usize = 1024;
/// Admitted claims waiting for the writer at most; beyond it buyers are told to retry.
const QUEUE_MAX: usize = 16_384;
const DAY_MS: i64 = 86_400_000;

/// Why an admitted claim did not land, shared with requests waiting on the same key.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Failure {
    /// The store refused it: the coupon ran out or the buyer reached the limit meanwhile (on
    /// another node, say). The gate is rebuilt from the store.
    NotAdmitted,
    Internal(String),
}

impl From<Failure> for AppError {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::NotAdmitted => AppError::conflict(
                "not_admitted",
                "the coupon ran out, or this buyer reached the per-buyer limit; nothing was claimed",
            ),
            Failure::Internal(message) => AppError::internal(message),
        }
    }
}

type Reply = Result<ClaimView, Failure>;

/// A claim retried under a key already seen: its answer, or a wait for it.
enum Replay {
    Done(ClaimView),
    Wait(oneshot::Receiver<Reply>),
}

impl Replay {
    async fn answer(self) -> AppResult<ClaimView> {
        match self {
            Replay::Done(view) => Ok(view),
            Replay::Wait(receiver) => Ok(receiver.await.map_err(|_| AppError::internal("claim writer stopped"))??),
        }
    }
}

enum Admission {
    Admitted { seq: i64, packet: Option<i64> },
    Replayed(Replay),
}

fn replay(state: &mut GateState, user_id: i64, key: Option<&str>) -> Option<Replay> {
    match state.keys.get_mut(&(user_id, key?.to_owned()))? {
        KeySlot::Done(view) => Some(Replay::Done(view.clone())),
        KeySlot::Pending(waiters) => {
            let (sender, receiver) = oneshot::channel();
            waiters.push(sender);
            Some(Replay::Wait(receiver))
        }
    }
}

enum KeySlot {
    Done(ClaimView),
    Pending(Vec<oneshot::Sender<Reply>>),
}

struct GateState {
    remaining: i64,
    claims_per_user: HashMap<i64, i64>,
    keys: HashMap<(i64, String), KeySlot>,
    stopped: bool,
    /// Claims stop once the funder's budget is spent (told by redemption on this node).
    budget_spent: bool,
    /// Red-packet pools: the packets not yet grabbed.
    packets: Option<Vec<i64>>,
}

struct Gate {
    coupon: CouponRow,
    state: Mutex<GateState>,
}

impl Gate {
    fn lock(&self) -> std::sync::MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

struct Job {
    claim: NewClaim,
    reply: oneshot::Sender<Result<(), Failure>>,
}

/// The claim gates and the group-commit writer, shared by every request of the process.
#[derive(Default)]
pub struct ClaimEngine {
    gates: Mutex<HashMap<i64, Arc<Gate>>>,
    loading: tokio::sync::Mutex<()>,
    writer: std::sync::OnceLock<mpsc::Sender<Job>>,
}

impl std::fmt::Debug for ClaimEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClaimEngine")
    }
}

impl ClaimEngine {
    fn gates(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Arc<Gate>>> {
        self.gates.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Forgets a coupon's gate: the next claim rebuilds it from the store.
    pub(crate) fn forget(&self, coupon_id: i64) {
        self.gates().remove(&coupon_id);
    }
}

/// A claim as the buyer is told about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimView {
    pub claim_id: i64,
    pub coupon_id: i64,
    pub valid_from_ms: i64,
    pub valid_until_ms: i64,
    /// A red packet's own amount.
    pub off_fen: Option<i64>,
    /// False when this answers a retry with the same idempotency key.
    pub created: bool,
}

/// The validity window of a claim made at `now_ms`: the coupon's absolute window, or N days.
pub(crate) fn validity(coupon: &CouponRow, now_ms: i64) -> (i64, i64) {
    match (coupon.valid_from_ms, coupon.valid_until_ms, coupon.valid_days) {
        (Some(from), Some(until), _) => (from, until),
        (_, _, Some(days)) => (now_ms, now_ms.saturating_add(days.saturating_mul(DAY_MS))),
        _ => (now_ms, now_ms),
    }
}

async fn commit_group(store: &Store, jobs: &[Job]) -> Result<(), Failure> {
    let failure = |e: StoreError| match e {
        StoreError::Conflict { .. } | StoreError::Constraint => Failure::NotAdmitted,
        other => Failure::Internal(other.to_string()),
    };
    let claims: Vec<NewClaim> = jobs.iter().map(|j| j.claim.clone()).collect();
    let mut takes: HashMap<i64, i64> = HashMap::new();
    for job in jobs {
        *takes.entry(job.claim.coupon_id).or_default() += 1;
    }
    let mut takes: Vec<(i64, i64)> = takes.into_iter().collect();
    takes.sort_unstable();
    let mut tx = store.begin().await.map_err(failure)?;
    tx.insert_claim_group(&claims, &takes).await.map_err(failure)?;
    tx.commit().await.map_err(failure)
}

/// Whether a claim is in the store (a commit that reported an error may have landed).
async fn landed(store: &Store, claim: &NewClaim) -> bool {
    store.wallet_claim(claim.id).await.is_ok_and(|stored| stored.is_some())
}

/// The writer: takes what is queued (up to a group), commits it, answers. A failed group is
/// retried claim by claim, so one refused claim cannot sink the others.
async fn run_writer(store: Store, mut queue: mpsc::Receiver<Job>) {
    while let Some(first) = queue.recv().await {
        let mut group = vec![first];
        while group.len() < GROUP_MAX {
            match queue.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        if commit_group(&store, &group).await.is_ok() {
            for job in group {
                let _ = job.reply.send(Ok(()));
            }
            continue;
        }
        let single = group.len() == 1;
        for job in group {
            let mut result =
                if single { Err(Failure::NotAdmitted) } else { commit_group(&store, std::slice::from_ref(&job)).await };
            if result.is_err() && landed(&store, &job.claim).await {
                result = Ok(());
            } else if result.is_err() && single {
                result = commit_group(&store, std::slice::from_ref(&job)).await;
            }
            let _ = job.reply.send(result);
        }
    }
}

/// The packets of a red-packet pool, redrawn from the seed kept with it; `None` for coupons.
fn pool_packets(coupon: &CouponRow) -> AppResult<Option<Vec<i64>>> {
    let Some(split) = &coupon.pool_split else { return Ok(None) };
    let field = |name: &str| {
        split.split(';').find_map(|part| part.strip_prefix(name)?.strip_prefix('=')?.parse::<i64>().ok()).unwrap_or(0)
    };
    let packets = if split.starts_with("random") {
        let seed = u64::try_from(field("seed")).unwrap_or(0);
        Split::Random { recipients: field("recipients"), min_fen: field("min_fen") }
            .packets(coupon.budget_fen.unwrap_or(0), &mut SplitMix64::new(seed))?
    } else {
        Split::Fixed { amount_fen: field("amount_fen") }
            .packets(coupon.budget_fen.unwrap_or(0), &mut SplitMix64::new(0))?
    };
    Ok(Some(packets))
}

impl App {
    async fn claim_gate(&self, coupon_id: i64) -> AppResult<Arc<Gate>> {
        let engine = self.claims();
        if let Some(gate) = engine.gates().get(&coupon_id) {
            return Ok(gate.clone());
        }
        let _loading = engine.loading.lock().await;
        if let Some(gate) = engine.gates().get(&coupon_id) {
            return Ok(gate.clone());
        }
        let coupon = self.store().coupon(coupon_id).await?.ok_or(AppError::not_found("coupon"))?;
        let mut claims_per_user: HashMap<i64, i64> = HashMap::new();
        let mut keys = HashMap::new();
        let mut grabbed = Vec::new();
        for claim in self.store().claim_state(coupon_id).await? {
            *claims_per_user.entry(claim.user_id).or_default() += 1;
            if let Some(key) = claim.idempotency_key {
                let view = ClaimView {
                    claim_id: claim.id,
                    coupon_id,
                    valid_from_ms: claim.valid_from_ms,
                    valid_until_ms: claim.valid_until_ms,
                    off_fen: claim.off_fen,
                    created: false,
                };
                keys.insert((claim.user_id, key), KeySlot::Done(view));
            }
            grabbed.push(claim.off_fen.unwrap_or(0));
        }
        let packets = pool_packets(&coupon)?.map(|mut packets| {
            // The packets still in the pool: all of them less those grabbed (as a multiset).
            packets.sort_unstable();
            grabbed.sort_unstable();
            let mut left = Vec::with_capacity(packets.len());
            let mut taken = grabbed.iter().peekable();
            for packet in packets {
                while taken.next_if(|&&t| t < packet).is_some() {}
                if taken.next_if_eq(&&packet).is_none() {
                    left.push(packet);
                }
            }
            left
        });
        let state = GateState {
            remaining: coupon.quantity - coupon.claimed,
            claims_per_user,
            keys,
            stopped: coupon.status != "active",
            budget_spent: coupon.budget_fen.is_some_and(|budget| coupon.budget_used_fen >= budget),
            packets,
        };
        let gate = Arc::new(Gate { coupon, state: Mutex::new(state) });
        engine.gates().insert(coupon_id, gate.clone());
        Ok(gate)
    }

    fn claim_writer(&self) -> mpsc::Sender<Job> {
        self.claims()
            .writer
            .get_or_init(|| {
                let (sender, receiver) = mpsc::channel(QUEUE_MAX);
                tokio::spawn(run_writer(self.store().clone(), receiver));
                sender
            })
            .clone()
    }

    /// Claims a coupon into the buyer's wallet: exactly once per claim, never beyond the
    /// coupon's quantity or the per-buyer limit. With an idempotency key, a retry returns the
    /// claim the first request made, also when both arrive at once.
    pub async fn claim_coupon(
        &self,
        actor: &Actor,
        coupon_id: i64,
        idempotency_key: Option<&str>,
    ) -> AppResult<ClaimView> {
        if actor.role != Role::Consumer && actor.role != Role::Creator {
            return Err(AppError::Forbidden("only buyer accounts (consumers and creators) claim coupons"));
        }
        let key = idempotency_key.map(|k| crate::orders::parse_idempotency_key(Some(k))).transpose()?;
        let gate = self.claim_gate(coupon_id).await?;
        let coupon = &gate.coupon;
        let now_ms = self.now_ms();
        // The key first: a retry is answered as the first request was, whatever changed since.
        let replayed = replay(&mut gate.lock(), actor.user_id, key.as_deref());
        if let Some(replayed) = replayed {
            return replayed.answer().await;
        }
        if now_ms < coupon.claim_starts_at_ms {
            return Err(AppError::conflict("claim_not_open", "claiming this coupon has not started"));
        }
        if now_ms >= coupon.claim_ends_at_ms {
            return Err(AppError::conflict("claim_closed", "claiming this coupon has ended"));
        }
        if coupon.class == "fan"
            && let Some(creator) = coupon.creator_user_id
            && !self.store().follows(actor.user_id, creator).await?
        {
            return Err(AppError::Forbidden("fan coupons are for the creator's followers: follow first"));
        }
        let admitted = self.admit_claim(&gate, actor.user_id, key.as_deref());
        let (seq, packet) = match admitted? {
            Admission::Admitted { seq, packet } => (seq, packet),
            Admission::Replayed(replayed) => return replayed.answer().await,
        };
        let (valid_from_ms, valid_until_ms) = validity(coupon, now_ms);
        let claim = NewClaim {
            id: self.ids().next(now_ms),
            coupon_id,
            user_id: actor.user_id,
            seq,
            idempotency_key: key.clone(),
            off_fen: packet,
            claimed_at_ms: now_ms,
            valid_from_ms,
            valid_until_ms,
        };
        let view =
            ClaimView { claim_id: claim.id, coupon_id, valid_from_ms, valid_until_ms, off_fen: packet, created: true };
        // The commit and the gate's resolution run in their own task: a request dropped midway
        // must not leave its key pending or its claim counted.
        let (app, task_gate, user_id) = (self.clone(), gate.clone(), actor.user_id);
        let task = tokio::spawn(async move {
            let (reply, answer) = oneshot::channel();
            let result = match app.claim_writer().try_send(Job { claim, reply }) {
                Ok(()) => answer.await.unwrap_or_else(|_| Err(Failure::Internal("claim writer stopped".into()))),
                Err(_) => Err(Failure::Internal("the claim queue is full; retry".into())),
            };
            let result = result.map(|()| view);
            let mut state = task_gate.lock();
            let mut waiters = Vec::new();
            if let Some(key) = key {
                let slot = (user_id, key);
                if let Some(KeySlot::Pending(pending)) = state.keys.remove(&slot) {
                    waiters = pending;
                }
                if let Ok(view) = &result {
                    state.keys.insert(slot, KeySlot::Done(ClaimView { created: false, ..view.clone() }));
                }
            }
            if result.is_err() {
                if let (Some(packets), Some(packet)) = (&mut state.packets, packet) {
                    packets.push(packet);
                }
                state.remaining += 1;
                if let Some(held) = state.claims_per_user.get_mut(&user_id) {
                    *held -= 1;
                }
            }
            drop(state);
            if result == Err(Failure::NotAdmitted) {
                app.claims().forget(coupon_id);
            }
            for waiter in waiters {
                let _ = waiter.send(result.clone().map(|v| ClaimView { created: false, ..v }));
            }
            result
        });
        let result = task.await.map_err(|e| AppError::internal(format!("claim task failed: {e}")))?;
        Ok(result?)
    }

    /// Admits a claim in memory, or refuses it: takes one from the coupon (and a packet from a
    /// pool), counts it against the buyer, and marks its key pending.
    fn admit_claim(&self, gate: &Gate, user_id: i64, key: Option<&str>) -> AppResult<Admission> {
        let coupon = &gate.coupon;
        let mut state = gate.lock();
        // The key again: a request with it may have been admitted while this one checked.
        if let Some(replayed) = replay(&mut state, user_id, key) {
            return Ok(Admission::Replayed(replayed));
        }
        if state.stopped {
            return Err(AppError::conflict("coupon_stopped", "the issuer stopped this coupon"));
        }
        if state.budget_spent {
            return Err(AppError::conflict("budget_spent", "the coupon's budget is spent"));
        }
        let held = state.claims_per_user.get(&user_id).copied().unwrap_or(0);
        if held >= coupon.per_user_limit {
            return Err(AppError::conflict(
                "claim_limit_reached",
                format!("at most {} of this coupon per buyer", coupon.per_user_limit),
            ));
        }
        if state.remaining <= 0 {
            return Err(AppError::conflict("coupon_exhausted", "every coupon of this kind has been claimed"));
        }
        let packet = match &mut state.packets {
            Some(packets) => match packets.pop() {
                Some(packet) => Some(packet),
                None => return Err(AppError::conflict("coupon_exhausted", "every red packet has been grabbed")),
            },
            None => None,
        };
        if let Some(key) = key {
            state.keys.insert((user_id, key.to_owned()), KeySlot::Pending(Vec::new()));
        }
        state.remaining -= 1;
        state.claims_per_user.insert(user_id, held + 1);
        Ok(Admission::Admitted { seq: held + 1, packet })
    }

    /// Tells a loaded gate that the issuer stopped (or resumed) a coupon.
    pub(crate) fn claim_gate_stopped(&self, coupon_id: i64, stopped: bool) {
        if let Some(gate) = self.claims().gates().get(&coupon_id) {
            gate.lock().stopped = stopped;
        }
    }

    /// Tells a loaded gate whether the coupon's budget is spent (redemption changed it).
    pub(crate) fn claim_gate_budget(&self, coupon_id: i64, spent: bool) {
        if let Some(gate) = self.claims().gates().get(&coupon_id) {
            gate.lock().budget_spent = spent;
        }
    }
}
