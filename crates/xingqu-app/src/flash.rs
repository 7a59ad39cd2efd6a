//! Flash sales: creation, and the hot path. Admission happens in memory first — a per-sale gate
//! refuses sold-out, over-limit and replayed requests before any I/O — then admitted orders go to
//! one writer task that commits them in groups and answers each buyer only after its group is
//! durable. The gate is a cache of the store's truth: rebuilt from it when first used after a
//! start, and conservative (it only ever admits what the guarded writes in the store accept).

use crate::orders::AddressInput;
use crate::{App, AppError, AppResult};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};
use xingqu_domain::account::{Actor, Role};
use xingqu_domain::catalog::{ProductStatus, Qualification};
use xingqu_domain::money::PriceFen;
use xingqu_domain::order::DispatchPromise;
use xingqu_store::orders::{FlashGroup, FlashSaleRow, NewCheckout, NewFlashSale, NewLine, NewOrder, SkuForOrder};
use xingqu_store::{Store, StoreError};

/// Orders committed in one transaction at most.
const GROUP_MAX: usize = 512;
/// Admitted orders waiting for the writer at most; beyond it buyers are told to retry.
const QUEUE_MAX: usize = 16_384;
const FLASH_SALE_DAYS_MAX: i64 = 7;
const POOL_UNITS_MAX: i64 = 1_000_000;
const PER_USER_LIMIT_MAX: i64 = 99;

/// Why a flash purchase failed, shared with requests waiting on the same idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Failure {
    SoldOut,
    KeyReused,
    /// The store refused the order: the pool is empty or the buyer is at the per-buyer limit
    /// (the gate in memory thought otherwise: another node sold, or it was loaded mid-release).
    NotAdmitted,
    /// Another process owns this SQLite database's flash-sale pools.
    Elsewhere,
    Internal(String),
}

impl From<Failure> for AppError {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::SoldOut => AppError::conflict("sold_out", "the flash sale is sold out"),
            Failure::KeyReused => AppError::invalid(
                "Idempotency-Key",
                "idempotency_key_reused",
                "this Idempotency-Key was used for a different request",
            ),
            Failure::NotAdmitted => AppError::conflict(
                "not_admitted",
                "the flash sale is sold out, or this buyer reached the per-buyer limit",
            ),
            Failure::Elsewhere => StoreError::FlashPoolsElsewhere.into(),
            Failure::Internal(message) => AppError::internal(message),
        }
    }
}

type Reply = Result<i64, Failure>;

enum KeySlot {
    Done { order_id: i64, digest: String },
    Pending { digest: String, waiters: Vec<oneshot::Sender<Reply>> },
}

struct GateState {
    remaining_units: i64,
    held_units: HashMap<i64, i64>,
    keys: HashMap<(i64, String), KeySlot>,
}

struct Gate {
    sale: FlashSaleRow,
    sku: SkuForOrder,
    state: Mutex<GateState>,
}

impl Gate {
    fn lock(&self) -> std::sync::MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

struct Job {
    checkout: NewCheckout,
    order: NewOrder,
    line: NewLine,
    flash_sale_id: i64,
    per_user_limit: i64,
    reply: oneshot::Sender<Result<(), Failure>>,
}

/// The in-memory gates and the group-commit writer, shared by every request of the process.
#[derive(Default)]
pub struct FlashEngine {
    gates: Mutex<HashMap<i64, Arc<Gate>>>,
    loading: tokio::sync::Mutex<()>,
    writer: std::sync::OnceLock<mpsc::Sender<Job>>,
}

impl std::fmt::Debug for FlashEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FlashEngine")
    }
}

/// A flash-sale order as the buyer is told about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlashOrder {
    pub order_id: i64,
    pub flash_sale_id: i64,
    pub quantity: i64,
    pub total_fen: i64,
    /// False when this answers a retry with the same idempotency key.
    pub created: bool,
}

/// A flash sale as an operator or merchant sets it up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlashSaleInput {
    pub sku_id: i64,
    pub price_fen: i64,
    pub starts_at_ms: i64,
    pub ends_at_ms: i64,
    pub pool_units: i64,
    pub per_user_limit: i64,
}

/// The key a flash purchase's checkout is stored under. A flash sale's keys are its own: a client
/// may use one key for a cart order and for a purchase in a flash sale, as for two flash sales.
/// `/` cannot occur in a client's key, so these never meet a cart checkout's key, and the
/// flash-sale journal can know every key its pools' orders hold.
fn flash_checkout_key(flash_sale_id: i64, key: &str) -> String {
    format!("flash/{flash_sale_id}/{key}")
}

/// The client's key of a stored flash checkout key (orders stored before keys had their sale's
/// prefix are under the client's key itself).
fn client_key(flash_sale_id: i64, stored_key: &str) -> &str {
    stored_key.strip_prefix(&format!("flash/{flash_sale_id}/")).unwrap_or(stored_key)
}

fn digest(quantity: i64, address: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(format!("flash|{quantity}|{address}").as_bytes());
    hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Commits a group of orders in one transaction; any failure fails the whole group.
async fn commit_group(store: &Store, jobs: &[Job]) -> Result<(), Failure> {
    let failure = |e: StoreError| match e {
        StoreError::Conflict { .. } => Failure::KeyReused,
        StoreError::Constraint => Failure::NotAdmitted,
        StoreError::FlashPoolsElsewhere => Failure::Elsewhere,
        other => Failure::Internal(other.to_string()),
    };
    let checkouts: Vec<NewCheckout> = jobs.iter().map(|j| j.checkout.clone()).collect();
    let orders: Vec<NewOrder> = jobs.iter().map(|j| j.order.clone()).collect();
    let lines: Vec<NewLine> = jobs.iter().map(|j| j.line.clone()).collect();
    let mut takes: HashMap<i64, i64> = HashMap::new();
    let mut holdings: HashMap<(i64, i64), i64> = HashMap::new();
    for job in jobs {
        *takes.entry(job.flash_sale_id).or_default() += job.line.quantity;
        *holdings.entry((job.flash_sale_id, job.order.buyer_user_id)).or_default() += job.line.quantity;
    }
    let mut takes: Vec<(i64, i64)> = takes.into_iter().collect();
    takes.sort_unstable();
    let limits: HashMap<i64, i64> = jobs.iter().map(|j| (j.flash_sale_id, j.per_user_limit)).collect();
    let mut holdings: Vec<(i64, i64, i64, i64)> = holdings
        .into_iter()
        .map(|((sale, user), units)| (sale, user, units, limits.get(&sale).copied().unwrap_or(0)))
        .collect();
    holdings.sort_unstable();
    let group =
        FlashGroup { checkouts: &checkouts, orders: &orders, lines: &lines, takes: &takes, holdings: &holdings };
    store.commit_flash_group(&group).await.map_err(failure)
}

/// Runs the writer on a thread of its own with its own small runtime. On the shared runtime each
/// of its awaits (begin, insert, commit) waited behind hundreds of request tasks to be polled
/// again, about a millisecond each; on its own thread the OS wakes it as soon as the database
/// answers. Falls back to the shared runtime if the thread or its runtime cannot start.
fn spawn_writer_thread(store: Store, queue: mpsc::Receiver<Job>) {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::warn!(%error, "no runtime for the flash-sale writer; it shares the request runtime");
            tokio::spawn(run_writer(store, queue));
            return;
        }
    };
    // The queue goes to the thread only once it runs, so it is not lost if the thread cannot start.
    let (hand_over, handed) = std::sync::mpsc::channel::<(Store, mpsc::Receiver<Job>)>();
    let started = std::thread::Builder::new().name("xingqu-flash-writer".to_owned()).spawn(move || {
        if let Ok((store, queue)) = handed.recv() {
            runtime.block_on(run_writer(store, queue));
        }
    });
    match started {
        Ok(_) => {
            if let Err(std::sync::mpsc::SendError((store, queue))) = hand_over.send((store, queue)) {
                tokio::spawn(run_writer(store, queue));
            }
        }
        Err(error) => {
            tracing::warn!(%error, "the flash-sale writer thread did not start; it shares the request runtime");
            tokio::spawn(run_writer(store, queue));
        }
    }
}

/// The writer: takes what is queued (up to a group), commits it, answers. If a group fails, its
/// orders are retried one by one so one bad order cannot sink the others.
async fn run_writer(store: Store, mut queue: mpsc::Receiver<Job>) {
    while let Some(first) = queue.recv().await {
        let mut group = vec![first];
        while group.len() < GROUP_MAX {
            match queue.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        match commit_group(&store, &group).await {
            Ok(()) => {
                for job in group {
                    let _ = job.reply.send(Ok(()));
                }
            }
            Err(_) => {
                // Retried order by order, so one bad order cannot sink the others; and any order
                // that fails is looked up, because a commit that reported an error may have landed.
                let single = group.len() == 1;
                for job in group {
                    let mut result = if single {
                        Err(Failure::Internal(String::new()))
                    } else {
                        commit_group(&store, std::slice::from_ref(&job)).await
                    };
                    if result.is_err() {
                        let stored =
                            store.checkout_by_key(job.checkout.buyer_user_id, &job.checkout.idempotency_key).await;
                        if matches!(stored, Ok(Some((id, _))) if id == job.checkout.id) {
                            result = Ok(());
                        } else if single {
                            result = commit_group(&store, std::slice::from_ref(&job)).await;
                        }
                    }
                    let _ = job.reply.send(result);
                }
            }
        }
    }
}

impl App {
    /// Puts a SKU on flash sale: its shop's staff or an operator.
    pub async fn create_flash_sale(&self, actor: &Actor, input: FlashSaleInput) -> AppResult<FlashSaleRow> {
        let sku = self
            .store()
            .sku_for_order(input.sku_id)
            .await?
            .ok_or_else(|| AppError::invalid("sku_id", "unknown_sku", format!("no SKU {}", input.sku_id)))?;
        if !actor.manages_merchant(sku.merchant_id) {
            return Err(AppError::Forbidden("only the shop's staff or an operator put its SKUs on flash sale"));
        }
        let price = PriceFen::parse("price_fen", input.price_fen)?;
        if price.fen() >= sku.price_fen {
            return Err(AppError::invalid(
                "price_fen",
                "not_a_discount",
                format!("must be below the list price of {} 分", sku.price_fen),
            ));
        }
        let now_ms = self.now_ms();
        if input.ends_at_ms <= input.starts_at_ms || input.ends_at_ms <= now_ms {
            return Err(AppError::invalid("ends_at", "out_of_range", "must be after the start and in the future"));
        }
        if input.ends_at_ms - input.starts_at_ms > FLASH_SALE_DAYS_MAX * 86_400_000 {
            return Err(AppError::invalid(
                "ends_at",
                "out_of_range",
                format!("a flash sale lasts at most {FLASH_SALE_DAYS_MAX} days"),
            ));
        }
        if !(1..=POOL_UNITS_MAX).contains(&input.pool_units) {
            return Err(AppError::invalid("pool_units", "out_of_range", format!("must be 1 to {POOL_UNITS_MAX}")));
        }
        if !(1..=PER_USER_LIMIT_MAX).contains(&input.per_user_limit) {
            return Err(AppError::invalid(
                "per_user_limit",
                "out_of_range",
                format!("must be 1 to {PER_USER_LIMIT_MAX}"),
            ));
        }
        let mut tx = self.store().begin().await?;
        let sale = tx
            .insert_flash_sale(&NewFlashSale {
                sku_id: sku.sku_id,
                merchant_id: sku.merchant_id,
                price_fen: price.fen(),
                starts_at_ms: input.starts_at_ms,
                ends_at_ms: input.ends_at_ms,
                pool_units: input.pool_units,
                per_user_limit: input.per_user_limit,
                created_by: actor.user_id,
                now_ms,
            })
            .await?;
        // A flash price is today's price net of merchant-funded discounts: in automatic price
        // protection, its start pays the lines it undercuts.
        if self.store().protection_policy(sku.sku_id).await?.is_some_and(|p| p.auto)
            && let Some(list) = tx.latest_price_change(sku.sku_id).await?
        {
            tx.queue_flash_protection_sweep(&list, sale.id, sale.starts_at_ms, now_ms).await?;
        }
        tx.commit().await?;
        Ok(sale)
    }

    pub async fn flash_sale(&self, id: i64) -> AppResult<FlashSaleRow> {
        self.store().flash_sale(id).await?.ok_or(AppError::not_found("flash_sale"))
    }

    /// The gate of a flash sale, built from the store the first time it is needed.
    async fn gate(&self, flash_sale_id: i64) -> AppResult<Arc<Gate>> {
        let engine = self.flash();
        if let Some(gate) = engine.gates.lock().unwrap_or_else(|p| p.into_inner()).get(&flash_sale_id) {
            return Ok(gate.clone());
        }
        let _loading = engine.loading.lock().await;
        if let Some(gate) = engine.gates.lock().unwrap_or_else(|p| p.into_inner()).get(&flash_sale_id) {
            return Ok(gate.clone());
        }
        // What buyers hold first: it waits for journalled orders to reach the tables, so the pool's
        // figure read next includes them.
        let (holdings, keys) = self.store().flash_state(flash_sale_id).await?;
        let sale = self.store().flash_sale(flash_sale_id).await?.ok_or(AppError::not_found("flash_sale"))?;
        let sku = self
            .store()
            .sku_for_order(sale.sku_id)
            .await?
            .ok_or_else(|| AppError::internal("flash sale SKU vanished"))?;
        let state = GateState {
            remaining_units: sale.remaining_units,
            held_units: holdings.into_iter().collect(),
            keys: keys
                .into_iter()
                .map(|(user_id, stored_key, digest, order_id)| {
                    let key = client_key(flash_sale_id, &stored_key).to_owned();
                    ((user_id, key), KeySlot::Done { order_id, digest })
                })
                .collect(),
        };
        let gate = Arc::new(Gate { sale, sku, state: Mutex::new(state) });
        engine.gates.lock().unwrap_or_else(|p| p.into_inner()).insert(flash_sale_id, gate.clone());
        Ok(gate)
    }

    fn writer(&self) -> mpsc::Sender<Job> {
        self.flash()
            .writer
            .get_or_init(|| {
                let (sender, receiver) = mpsc::channel(QUEUE_MAX);
                spawn_writer_thread(self.store().clone(), receiver);
                sender
            })
            .clone()
    }

    /// Buys from a flash sale: admitted in memory, committed in a group, answered when durable.
    /// The same idempotency key and body return the same order, also when both arrive at once.
    pub async fn flash_purchase(
        &self,
        actor: &Actor,
        flash_sale_id: i64,
        idempotency_key: Option<&str>,
        quantity: i64,
        address: &AddressInput,
    ) -> AppResult<FlashOrder> {
        if actor.role != Role::Consumer && actor.role != Role::Creator {
            return Err(AppError::Forbidden("only buyer accounts (consumers and creators) place orders"));
        }
        let _in_flight = self.traffic().enter();
        let key = crate::orders::parse_idempotency_key(idempotency_key)?;
        let address = crate::orders::parse_address(address)?;
        let gate = self.gate(flash_sale_id).await?;
        let sale = &gate.sale;
        if !(1..=sale.per_user_limit).contains(&quantity) {
            return Err(AppError::invalid("quantity", "out_of_range", format!("must be 1 to {}", sale.per_user_limit)));
        }
        let request_digest = digest(quantity, &address);
        let now_ms = self.now_ms();
        let order_of = |order_id: i64, created: bool| FlashOrder {
            order_id,
            flash_sale_id,
            quantity,
            total_fen: sale.price_fen * quantity + self.flash_shipping_fen(&gate.sku, sale.price_fen * quantity),
            created,
        };
        let slot_key = (actor.user_id, key.clone());
        let waiting = {
            let mut state = gate.lock();
            match state.keys.get_mut(&slot_key) {
                Some(KeySlot::Done { order_id, digest }) => {
                    return if *digest == request_digest {
                        Ok(order_of(*order_id, false))
                    } else {
                        Err(Failure::KeyReused.into())
                    };
                }
                Some(KeySlot::Pending { digest, waiters }) => {
                    if *digest != request_digest {
                        return Err(Failure::KeyReused.into());
                    }
                    let (sender, receiver) = oneshot::channel();
                    waiters.push(sender);
                    Some(receiver)
                }
                None => {
                    if now_ms < sale.starts_at_ms || now_ms >= sale.ends_at_ms {
                        return Err(AppError::conflict("flash_sale_not_active", "the flash sale is not running now"));
                    }
                    let sku_on_sale = gate.sku.product_status == ProductStatus::Listed.as_str()
                        && gate.sku.merchant_qualification == Qualification::Approved.as_str();
                    if !sku_on_sale {
                        return Err(AppError::conflict("not_for_sale", "the product is not for sale"));
                    }
                    let held = state.held_units.get(&actor.user_id).copied().unwrap_or(0);
                    if held + quantity > sale.per_user_limit {
                        return Err(AppError::conflict(
                            "purchase_limit_exceeded",
                            format!("at most {} per buyer in this flash sale", sale.per_user_limit),
                        ));
                    }
                    if state.remaining_units < quantity {
                        return Err(Failure::SoldOut.into());
                    }
                    state.remaining_units -= quantity;
                    *state.held_units.entry(actor.user_id).or_default() += quantity;
                    state.keys.insert(
                        slot_key.clone(),
                        KeySlot::Pending { digest: request_digest.clone(), waiters: Vec::new() },
                    );
                    None
                }
            }
        };
        if let Some(receiver) = waiting {
            let order_id = receiver.await.map_err(|_| AppError::internal("flash writer stopped"))??;
            return Ok(order_of(order_id, false));
        }

        // The commit and the slot's resolution run in their own task: a request dropped midway
        // (a timeout, a client gone) must not leave its key pending or its units taken.
        let (app, task_gate, buyer_user_id) = (self.clone(), gate.clone(), actor.user_id);
        let task = tokio::spawn(async move {
            let result = app
                .commit_flash_order(&task_gate, buyer_user_id, &key, &request_digest, quantity, address, now_ms)
                .await;
            let mut state = task_gate.lock();
            let waiters = match state.keys.remove(&slot_key) {
                Some(KeySlot::Pending { waiters, .. }) => waiters,
                _ => Vec::new(),
            };
            match &result {
                Ok(order_id) => {
                    state.keys.insert(slot_key, KeySlot::Done { order_id: *order_id, digest: request_digest });
                }
                Err(_) => {
                    state.remaining_units += quantity;
                    if let Some(held) = state.held_units.get_mut(&buyer_user_id) {
                        *held -= quantity;
                    }
                }
            }
            drop(state);
            for waiter in waiters {
                let _ = waiter.send(result.clone());
            }
            result
        });
        let result = task.await.map_err(|e| AppError::internal(format!("flash commit task failed: {e}")))?;
        Ok(order_of(result?, true))
    }

    fn flash_shipping_fen(&self, sku: &SkuForOrder, goods_fen: i64) -> i64 {
        let free = sku.free_shipping_over_fen.is_some_and(|threshold| goods_fen >= threshold);
        if free { 0 } else { sku.shipping_fee_fen }
    }

    #[allow(clippy::too_many_arguments)]
    async fn commit_flash_order(
        &self,
        gate: &Gate,
        buyer_user_id: i64,
        key: &str,
        request_digest: &str,
        quantity: i64,
        address: String,
        now_ms: i64,
    ) -> Result<i64, Failure> {
        let (sale, sku) = (&gate.sale, &gate.sku);
        let list_total_fen = sku.price_fen * quantity;
        let paid_fen = sale.price_fen * quantity;
        let shipping_fen = self.flash_shipping_fen(sku, paid_fen);
        let (checkout_id, order_id, line_id) =
            (self.ids().next(now_ms), self.ids().next(now_ms), self.ids().next(now_ms));
        let promise = DispatchPromise::parse(&sku.dispatch_promise).unwrap_or(DispatchPromise::None);
        let discount = [("item_price", "merchant", "flash_sale", list_total_fen - paid_fen)];
        let assurance = crate::assurance::line_assurance(sku);
        let (reply, answer) = oneshot::channel();
        let job = Job {
            checkout: NewCheckout {
                id: checkout_id,
                buyer_user_id,
                idempotency_key: flash_checkout_key(sale.id, key),
                request_sha256: request_digest.to_owned(),
                total_fen: paid_fen + shipping_fen,
                created_at_ms: now_ms,
            },
            order: NewOrder {
                id: order_id,
                checkout_id,
                buyer_user_id,
                merchant_id: sale.merchant_id,
                trade_type: "flash_sale",
                flash_sale_id: Some(sale.id),
                goods_list_fen: list_total_fen,
                discount_fen: list_total_fen - paid_fen,
                shipping_fen,
                total_fen: paid_fen + shipping_fen,
                address,
                dispatch_promise: promise.as_str(),
                created_at_ms: now_ms,
                expires_at_ms: now_ms + self.config().order_expiry_s * 1000,
            },
            line: NewLine {
                id: line_id,
                order_id,
                sku_id: sku.sku_id,
                product_id: sku.product_id,
                product_version: sku.product_version,
                title: sku.title.clone(),
                spec: sku.spec.clone(),
                unit_price_fen: sku.price_fen,
                quantity,
                list_total_fen,
                discount_fen: list_total_fen - paid_fen,
                paid_fen,
                discounts: xingqu_store::orders::encode_discounts(&discount),
                commission_bps: sku.commission_bps,
                dispatch_promise: promise.as_str(),
                flash_sale_id: Some(sale.id),
                // The flash price is the merchant's own (item-price lane).
                merchant_net_fen: paid_fen,
                protect_window_days: sku.protect_window_days,
                protect_from: sku.protect_from.clone(),
                services: assurance.services,
                insurance_premium_fen: assurance.insurance_premium_fen,
                insurance_cap_fen: assurance.insurance_cap_fen,
                // Flash purchases carry no checkout confirmation: the return stands.
                unsealed_no_return_confirmed: false,
            },
            flash_sale_id: sale.id,
            per_user_limit: sale.per_user_limit,
            reply,
        };
        self.writer().try_send(job).map_err(|_| Failure::Internal("the flash-sale queue is full; retry".into()))?;
        answer.await.map_err(|_| Failure::Internal("flash writer stopped".into()))??;
        Ok(order_id)
    }

    /// Tells a loaded gate that units went back to a pool (a closed order released them).
    pub(crate) fn flash_released(&self, buyer_user_id: i64, flash_sale_id: i64, units: i64) {
        self.adjust_gate(buyer_user_id, flash_sale_id, units);
    }

    /// Tells a loaded gate that a cart order took units from a pool in the store directly.
    pub(crate) fn flash_taken(&self, buyer_user_id: i64, flash_sale_id: i64, units: i64) {
        self.adjust_gate(buyer_user_id, flash_sale_id, -units);
    }

    fn adjust_gate(&self, buyer_user_id: i64, flash_sale_id: i64, units_back: i64) {
        let Some(gate) = self.flash().gates.lock().unwrap_or_else(|p| p.into_inner()).get(&flash_sale_id).cloned()
        else {
            return;
        };
        let mut state = gate.lock();
        state.remaining_units += units_back;
        *state.held_units.entry(buyer_user_id).or_default() -= units_back;
    }
}
