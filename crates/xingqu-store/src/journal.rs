//! The flash-sale order journal of an embedded SQLite database: where the hot path's orders become
//! durable, and the one place that decides what a flash sale's pool can still sell.
//!
//! Why: committing a flash order to SQLite's tables costs a commit that writes every B-tree page
//! the group touched (three tables, their indexes, buyers spread over all of them) and about 13 µs
//! of CPU per order, on the hot path of a sale that lasts a fraction of a second. The journal makes
//! an order durable with a few hundred sequential bytes and one `fdatasync` per group, answers the
//! buyer, and applies the orders to the tables a moment later, in large transactions, when the
//! burst has passed (or at once, when somebody reads one of them).
//!
//! Invariants:
//! - A frame is acknowledged only after it is on disk (`sync_data`); a torn or corrupt tail (a
//!   write that never returned) is cut off when the journal is opened.
//! - Applying a frame moves `flash_journal.applied_seq` in the same transaction, so a frame is
//!   applied exactly once, also across a crash; opening the journal applies what is left.
//! - The journal's pools decide admission: every take from a pool (flash orders and cart orders
//!   alike) is reserved here before it is written, and every give-back is added here only after it
//!   commits. So the journal never admits more than the tables will accept when applied, and the
//!   tables' own guards (CHECK constraints) still stand behind it.
//! - The journal knows every idempotency key of the pools it has loaded (flash-sale checkouts
//!   keep their keys apart from cart checkouts' by a prefix no client key can hold), so a frame
//!   never holds a key the tables already have, and applying it cannot fail on one.
//! - Journalling a group blocks the calling thread for its write and sync: the flash-sale writer
//!   calls it from a thread of its own, so no request waits behind it and no hand-over to another
//!   thread sits on the hot path.
//! - Reads of an order, a checkout, or a buyer's or shop's orders wait until what the journal
//!   holds of them is applied ([`Store::settle`]), so nobody sees an acknowledged order missing.
//! - One process owns a database's journal (an exclusive lock on the file); another process
//!   opening the same database cannot sell from flash-sale pools.

use crate::orders::{FlashGroup, NewCheckout, NewLine, NewOrder};
use crate::{Store, StoreError};
use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use sqlx::Row;
use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, watch};

/// A frame: its payload's length and CRC-32C (little-endian u32s), then the payload: the
/// sequence number (u64) and each order's record after its length (u32).
const FRAME_HEADER_BYTES: usize = 8;
/// Larger frames are refused when read back: a length like that is a corrupt header.
const FRAME_BYTES_MAX: usize = 256 << 20;
/// Slice-by-16 tables: the byte-at-a-time default cost a few percent of the sale's CPU.
const CRC32C: crc::Crc<u32, crc::Table<16>> = crc::Crc::<u32, crc::Table<16>>::new(&crc::CRC_32_ISCSI);
/// Orders applied in one transaction at most (a few tens of milliseconds of the write connection).
const APPLY_ORDERS_MAX: usize = 4096;
/// The applier waits for the journal to be quiet this long (a burst's orders applied together,
/// after it, rather than competing with it for the CPU)...
const QUIET: Duration = Duration::from_millis(20);
/// ...but no frame waits longer than this, and no more orders than [`APPLY_BACKLOG_MAX`] wait
/// (they are held in memory, and a restart after a crash applies them before it serves). A
/// second was too short: in a sale of 40,000 units (1.3 s here) the applier started mid-sale,
/// took a core's worth of SQLite work, and the sale's orders/s fell by a third.
const APPLY_LAG_MAX: Duration = Duration::from_secs(5);
const APPLY_BACKLOG_MAX: usize = 100_000;
/// When everything in the file is applied and it has grown this large, writing starts over at
/// its beginning.
const TRUNCATE_BYTES: u64 = 16 << 20;
/// The file is written with zeros ahead of the frames, this much at a time, and synced, so that a
/// frame's `fdatasync` allocates no blocks and records no new size: appending past the end of the
/// file made every sync also write that metadata. (ext4 without a journal still writes the inode's
/// buffer on each sync, for the new mtime: measured, one write more per group.) The first stretch is
/// written when a pool is loaded (a sale preheated or first used), not on the way.
const PREALLOCATE_BYTES: u64 = 8 << 20;
/// A pool's orders that its maps are sized for when it is loaded, at most: growing a map of
/// tens of thousands of entries mid-sale copies all of it, on the writer's thread, while the
/// group it is journalling waits (a tenth of the writer's CPU in a 60,000-unit sale, measured).
/// Larger pools still grow as they sell. The cap bounds what a pool that does not sell out holds
/// for nothing: about 12 MB here and as much in its gate at 65,536 orders (a pool that sells out
/// grows its maps to that size anyway), so dozens of sales preheated at once stay affordable.
pub const PRESIZED_ORDERS_MAX: usize = 1 << 16;

/// How many orders a pool's maps are sized for when it is loaded: every order the pool can still
/// take (each takes a unit at least), up to [`PRESIZED_ORDERS_MAX`]. The flash gate in memory
/// sizes its maps by the same figure.
pub fn presized_orders(remaining_units: i64) -> usize {
    usize::try_from(remaining_units).unwrap_or(0).min(PRESIZED_ORDERS_MAX)
}
/// A read waiting for its order to be applied reads what is there after this long (the applier
/// is failing; the error is logged).
const SETTLE_WAIT_MAX: Duration = Duration::from_secs(10);

/// What a read may wait for: the journalled orders it would list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pending {
    Order(i64),
    Checkout(i64),
    Buyer(i64),
    Merchant(i64),
}

/// One order as journalled: the rows the tables get, and the sale's per-buyer limit.
#[derive(Debug, serde::Deserialize)]
struct Record {
    checkout: NewCheckout,
    order: NewOrder,
    line: NewLine,
    limit_units: i64,
}

/// The first byte of a record in postcard, the compact binary encoding records are written in.
/// Records written before it are JSON objects, so they start with `{` and still read back.
const RECORD_POSTCARD: u8 = 1;

#[derive(serde::Serialize)]
struct RecordRef<'a> {
    checkout: &'a NewCheckout,
    order: &'a NewOrder,
    line: &'a NewLine,
    limit_units: i64,
}

/// Encodes one flash-sale order for the journal. Callers encode on the request's own thread, so
/// the journal's single writer only copies bytes. Binary, not JSON: a record is about a third of
/// the bytes and encodes several times faster, on the path every flash purchase takes.
pub fn encode_record(checkout: &NewCheckout, order: &NewOrder, line: &NewLine, limit_units: i64) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(512);
    bytes.push(RECORD_POSTCARD);
    // Serialising plain structs to a Vec cannot fail; an empty record is refused when read back.
    postcard::to_extend(&RecordRef { checkout, order, line, limit_units }, bytes).unwrap_or_default()
}

/// A flash-sale order as the journal takes it: its record, encoded on the request's own thread,
/// and what the journal keeps of it in memory. The rows it was encoded from stay with (and are
/// freed by) the thread that built them; only this crosses to the writer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedOrder {
    pub record: Vec<u8>,
    pub checkout_id: i64,
    pub order_id: i64,
    pub buyer_user_id: i64,
    pub merchant_id: i64,
    pub expires_at_ms: i64,
    /// The checkout's idempotency key as stored.
    pub idempotency_key: String,
}

impl EncodedOrder {
    /// Encodes an order's rows, keeping the checkout's key.
    pub fn new(checkout: NewCheckout, order: &NewOrder, line: &NewLine, limit_units: i64) -> Self {
        let record = encode_record(&checkout, order, line, limit_units);
        EncodedOrder {
            record,
            checkout_id: checkout.id,
            order_id: order.id,
            buyer_user_id: order.buyer_user_id,
            merchant_id: order.merchant_id,
            expires_at_ms: order.expires_at_ms,
            idempotency_key: checkout.idempotency_key,
        }
    }
}

/// What one flash-sale order has of its own, apart from what every order of its sale (and
/// quantity) shares: see [`RecordTemplate`].
#[derive(Debug, Clone, Copy)]
pub struct OrderOwn<'a> {
    pub checkout_id: i64,
    pub order_id: i64,
    pub line_id: i64,
    pub buyer_user_id: i64,
    /// The checkout's idempotency key as stored.
    pub idempotency_key: &'a str,
    pub request_sha256: &'a str,
    pub address: &'a str,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
}

/// A flash sale's journal records less each order's own fields, encoded once per quantity a
/// buyer may take when the sale's gate loads. A purchase then encodes its few fields and copies
/// the rest (the SKU's title, spec and services, the amounts, the discounts) as a few slices,
/// rather than cloning them into rows to encode those field by field: on the path of every
/// purchase of a sale. The bytes are the very ones [`encode_record`] writes for the same rows
/// (the flash-sale engine tests this for its rows); a record is postcard, which writes a struct
/// as its fields one after another, so stretches of consecutive fields encode on their own.
#[derive(Debug, Default)]
pub struct RecordTemplate {
    /// Index 0 is 1 unit. Empty when the stretches could not be encoded: every purchase then
    /// encodes its rows.
    per_quantity: Vec<Stretches>,
    merchant_id: i64,
}

/// A record's shared stretches, between the fields of [`OrderOwn`].
#[derive(Debug)]
struct Stretches {
    /// The checkout's `total_fen`.
    checkout_tail: Vec<u8>,
    /// The order's `merchant_id` to `total_fen`.
    order_terms: Vec<u8>,
    /// The order's `dispatch_promise`.
    order_promise: Vec<u8>,
    /// The line from `sku_id` on, then the per-buyer limit.
    line_tail: Vec<u8>,
}

impl RecordTemplate {
    /// From one order's rows per quantity, in order from 1 unit; their own fields are ignored.
    pub fn new(
        rows_per_quantity: impl IntoIterator<Item = (NewCheckout, NewOrder, NewLine)>,
        limit_units: i64,
    ) -> Self {
        let mut merchant_id = 0;
        let per_quantity = rows_per_quantity
            .into_iter()
            .map(|(c, o, l)| {
                merchant_id = o.merchant_id;
                let order_terms = (
                    o.merchant_id,
                    o.trade_type,
                    o.flash_sale_id,
                    o.goods_list_fen,
                    o.discount_fen,
                    o.shipping_fen,
                    o.total_fen,
                );
                let line_tail = (
                    (l.sku_id, l.product_id, l.product_version, &l.title, &l.spec, l.unit_price_fen, l.quantity),
                    (l.list_total_fen, l.discount_fen, l.paid_fen, &l.discounts, l.commission_bps, l.dispatch_promise),
                    (l.flash_sale_id, l.merchant_net_fen, l.protect_window_days, &l.protect_from, &l.services),
                    (l.insurance_premium_fen, l.insurance_cap_fen, l.unsealed_no_return_confirmed, limit_units),
                );
                Some(Stretches {
                    checkout_tail: put(Vec::new(), &c.total_fen)?,
                    order_terms: put(Vec::new(), &order_terms)?,
                    order_promise: put(Vec::new(), o.dispatch_promise)?,
                    line_tail: put(Vec::new(), &line_tail)?,
                })
            })
            .collect::<Option<Vec<_>>>()
            .unwrap_or_default();
        RecordTemplate { per_quantity, merchant_id }
    }

    /// The order of `quantity` units with `own` fields, encoded; `None` for a quantity the
    /// template was not made for (or a field that would not encode: the caller encodes rows).
    pub fn encode(&self, quantity: i64, own: OrderOwn<'_>) -> Option<EncodedOrder> {
        let shared = self.per_quantity.get(usize::try_from(quantity.checked_sub(1)?).ok()?)?;
        let mut bytes = Vec::with_capacity(
            64 + own.idempotency_key.len()
                + own.request_sha256.len()
                + own.address.len()
                + shared.order_terms.len()
                + shared.line_tail.len(),
        );
        bytes.push(RECORD_POSTCARD);
        bytes = put(bytes, &(own.checkout_id, own.buyer_user_id, own.idempotency_key, own.request_sha256))?;
        bytes.extend_from_slice(&shared.checkout_tail);
        bytes = put(bytes, &(own.created_at_ms, own.order_id, own.checkout_id, own.buyer_user_id))?;
        bytes.extend_from_slice(&shared.order_terms);
        bytes = put(bytes, own.address)?;
        bytes.extend_from_slice(&shared.order_promise);
        bytes = put(bytes, &(own.created_at_ms, own.expires_at_ms, own.line_id, own.order_id))?;
        bytes.extend_from_slice(&shared.line_tail);
        Some(EncodedOrder {
            record: bytes,
            checkout_id: own.checkout_id,
            order_id: own.order_id,
            buyer_user_id: own.buyer_user_id,
            merchant_id: self.merchant_id,
            expires_at_ms: own.expires_at_ms,
            idempotency_key: own.idempotency_key.to_owned(),
        })
    }
}

/// `value` in postcard after `bytes` (integers, strings, options and tuples of them, which do not
/// fail to serialise into a `Vec`; if one did, the template is not used rather than a record cut).
fn put<T: serde::Serialize + ?Sized>(bytes: Vec<u8>, value: &T) -> Option<Vec<u8>> {
    postcard::to_extend(value, bytes).ok()
}

/// Reads one record back, in the encoding its first byte names.
fn decode_record(bytes: &[u8]) -> Result<Record, String> {
    match bytes.first() {
        Some(&RECORD_POSTCARD) => postcard::from_bytes(&bytes[1..]).map_err(|e| e.to_string()),
        Some(b'{') => serde_json::from_slice(bytes).map_err(|e| e.to_string()),
        _ => Err("an empty record or one of an unknown encoding".to_owned()),
    }
}

/// A frame as written: its sequence number and records.
#[derive(Debug)]
struct Written {
    seq: u64,
    orders: usize,
    /// The earliest expiry of its orders (`i64::MIN` when unknown: read back at start-up).
    expires_at_min_ms: i64,
    /// The frame's bytes (the very buffer written, so a frame is not copied to be kept)...
    bytes: Vec<u8>,
    /// ...of which the records, each after its length, start here.
    records_at: usize,
}

impl Written {
    fn records(&self) -> &[u8] {
        &self.bytes[self.records_at..]
    }
}

/// A frame's bytes on disk: payload length and CRC-32C, then the sequence number and the records.
fn frame_bytes(seq: u64, records: &[&[u8]]) -> Vec<u8> {
    let payload_len = 8 + records.iter().map(|r| 4 + r.len()).sum::<usize>();
    let mut bytes = Vec::with_capacity(FRAME_HEADER_BYTES + payload_len);
    bytes.extend_from_slice(&(payload_len as u32).to_le_bytes());
    bytes.extend_from_slice(&[0; 4]);
    bytes.extend_from_slice(&seq.to_le_bytes());
    for record in records {
        bytes.extend_from_slice(&(record.len() as u32).to_le_bytes());
        bytes.extend_from_slice(record);
    }
    let crc = CRC32C.checksum(&bytes[FRAME_HEADER_BYTES..]);
    bytes[4..8].copy_from_slice(&crc.to_le_bytes());
    bytes
}

/// Writes zeros over `from..to` of `file` and syncs it, size included.
fn zero_fill(file: &File, from: u64, to: u64) -> std::io::Result<()> {
    let zeros = vec![0u8; 1 << 16];
    let mut at = from;
    while at < to {
        let n = (to - at).min(zeros.len() as u64);
        file.write_all_at(&zeros[..n as usize], at)?;
        at += n;
    }
    file.sync_all()
}

/// The whole frames at the start of `bytes`, and how many bytes they take: reading stops at the
/// first frame that is short, too long, fails its checksum (a write that never completed), or does
/// not follow the one before it; and at zeros (the file's unwritten part).
fn decode(bytes: &[u8]) -> (Vec<Written>, usize) {
    let word = |b: &[u8], i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]) as usize;
    let mut frames = Vec::new();
    let mut at = 0;
    while bytes.len() - at >= FRAME_HEADER_BYTES {
        let (length, crc) = (word(bytes, at), word(bytes, at + 4) as u32);
        let start = at + FRAME_HEADER_BYTES;
        if !(8..=FRAME_BYTES_MAX).contains(&length) || bytes.len() - start < length {
            break;
        }
        let payload = &bytes[start..start + length];
        if CRC32C.checksum(payload) != crc {
            break;
        }
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&payload[..8]);
        let seq = u64::from_le_bytes(seq);
        // Frames follow each other's sequence numbers: after a frame, one with any other number
        // is what an earlier pass through the file left (writing starts over at the beginning
        // once everything is applied), not part of this one.
        if frames.last().is_some_and(|prev: &Written| seq != prev.seq + 1) {
            break;
        }
        let mut orders = 0;
        let mut cursor = 8;
        while payload.len() - cursor >= 4 {
            cursor += 4 + word(payload, cursor);
            orders += 1;
        }
        if cursor != payload.len() {
            break;
        }
        frames.push(Written { seq, orders, expires_at_min_ms: i64::MIN, bytes: payload[8..].to_vec(), records_at: 0 });
        at = start + length;
    }
    (frames, at)
}

/// One group of orders as the tables get them.
#[derive(Debug, Default)]
struct Frame {
    checkouts: Vec<NewCheckout>,
    orders: Vec<NewOrder>,
    lines: Vec<NewLine>,
    /// (flash sale, per-buyer limit) of each line.
    limits: Vec<(i64, i64)>,
}

/// Reads the records of written frames back into rows.
fn parse(frames: &[Arc<Written>]) -> Result<Frame, StoreError> {
    let mut rows = Frame::default();
    for frame in frames {
        let records = frame.records();
        let mut cursor = 0;
        while cursor < records.len() {
            let length = records[cursor..cursor + 4].try_into().map(u32::from_le_bytes).unwrap_or(0) as usize;
            let record = decode_record(&records[cursor + 4..cursor + 4 + length])
                .map_err(|e| StoreError::Journal(format!("frame {} holds an unreadable record: {e}", frame.seq)))?;
            cursor += 4 + length;
            rows.limits.push((record.line.flash_sale_id.unwrap_or(0), record.limit_units));
            rows.checkouts.push(record.checkout);
            rows.orders.push(record.order);
            rows.lines.push(record.line);
        }
    }
    Ok(rows)
}

/// A pool as the journal sees it: the tables' figures less what the journal and open cart
/// transactions have reserved.
#[derive(Debug, Default)]
struct Pool {
    remaining_units: i64,
    held_units: HashMap<i64, i64>,
}

#[derive(Debug)]
struct State {
    next_seq: u64,
    /// Frames on disk and not yet applied, oldest first, with when they were written.
    unapplied: VecDeque<(Arc<Written>, Instant)>,
    last_append: Instant,
    pools: HashMap<i64, Pool>,
    /// Keys (buyer, key) of the checkouts of every loaded pool, applied or not.
    flash_keys: HashSet<(i64, String)>,
    /// What reads must wait for: the newest frame holding each.
    pending: HashMap<Pending, u64>,
    /// Somebody waits for a frame: apply now.
    hurry: bool,
    /// Where the next frame is written.
    file_bytes: u64,
    /// How much of the file is written (frames, then zeros) and synced.
    allocated_bytes: u64,
}

/// The journal: see the module documentation.
#[derive(Debug)]
pub struct Journal {
    /// Appends and truncation, in sequence order. Taken before `state`, never after.
    file: Mutex<File>,
    state: Mutex<State>,
    applied: watch::Sender<u64>,
    wake: Notify,
    /// Loading a pool, and the give-backs that must not land between a load's read and its use.
    loading: Arc<tokio::sync::Mutex<()>>,
    stopping: AtomicBool,
    path: PathBuf,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What a store's database does with flash-sale orders.
#[derive(Debug)]
pub(crate) enum JournalMode {
    /// This process owns the database's journal.
    Local(Arc<Journal>),
    /// Another process owns it: this one cannot sell from flash-sale pools.
    Elsewhere,
}

/// The journal file of a SQLite URL (`sqlite://PATH?…` → `PATH.flash-journal`); none for an
/// in-memory or read-only database.
pub(crate) fn journal_path(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let (path, options) = rest.split_once('?').unwrap_or((rest, ""));
    if path.is_empty() || path.contains(":memory:") || options.contains("mode=memory") || options.contains("mode=ro") {
        return None;
    }
    Some(PathBuf::from(format!("{path}.flash-journal")))
}

impl Journal {
    /// Opens the journal at `path` for `store` (migrated): applies what a previous run left in it,
    /// empties it, and starts the applier. `Elsewhere` when another process holds it.
    pub(crate) async fn open(store: &Store, path: &Path) -> Result<JournalMode, StoreError> {
        let io = |what: &str, e: std::io::Error| StoreError::Journal(format!("{what} {}: {e}", path.display()));
        // Not in append mode: frames are written at their offset, into the zeros written ahead.
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| io("open", e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                tracing::warn!(path = %path.display(), "another process owns this database's flash-sale journal");
                return Ok(JournalMode::Elsewhere);
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io("lock", e)),
        }
        let mut bytes = Vec::new();
        file.seek(SeekFrom::Start(0)).map_err(|e| io("read", e))?;
        file.read_to_end(&mut bytes).map_err(|e| io("read", e))?;
        let (frames, valid_bytes) = decode(&bytes);
        if bytes[valid_bytes..].iter().any(|&b| b != 0) {
            tracing::warn!(
                cut_bytes = bytes.len() - valid_bytes,
                "the flash-sale journal ends in an unfinished frame; cut off"
            );
        }
        let applied_seq = store.journal_applied_seq().await?;
        let last_seq = frames.iter().map(|f| f.seq).max().unwrap_or(0).max(applied_seq);
        let left: Vec<Arc<Written>> = frames.into_iter().filter(|f| f.seq > applied_seq).map(Arc::new).collect();
        let orders: usize = left.iter().map(|f| f.orders).sum();
        for batch in batches(&left) {
            apply(store, batch).await?;
        }
        if !left.is_empty() {
            tracing::info!(frames = left.len(), orders, "applied the flash-sale journal left by the last run");
        }
        file.set_len(0).and_then(|()| file.sync_all()).map_err(|e| io("empty", e))?;
        let (applied, _) = watch::channel(last_seq);
        let journal = Arc::new(Journal {
            file: Mutex::new(file),
            state: Mutex::new(State {
                next_seq: last_seq + 1,
                unapplied: VecDeque::new(),
                last_append: Instant::now(),
                pools: HashMap::new(),
                flash_keys: HashSet::new(),
                pending: HashMap::new(),
                hurry: false,
                file_bytes: 0,
                allocated_bytes: 0,
            }),
            applied,
            wake: Notify::new(),
            loading: Arc::new(tokio::sync::Mutex::new(())),
            stopping: AtomicBool::new(false),
            path: path.to_owned(),
        });
        spawn_applier(store.clone(), journal.clone());
        Ok(JournalMode::Local(journal))
    }

    /// Journals a group of flash-sale orders, all or none: durable when this returns `Ok`.
    /// A pool short of units or a buyer past the limit is [`StoreError::Constraint`]; a key
    /// already taken is [`StoreError::Conflict`]. Blocks the thread for the write and the sync.
    pub(crate) async fn commit(&self, store: &Store, group: &FlashGroup<'_>) -> Result<(), StoreError> {
        let sales: HashSet<i64> = {
            let state = lock(&self.state);
            group.takes.iter().map(|&(sale, _)| sale).filter(|sale| !state.pools.contains_key(sale)).collect()
        };
        if !sales.is_empty() {
            let mut conn = store.reader().acquire().await?;
            for sale in sales {
                self.ensure_pool(&mut conn, sale).await?;
            }
        }
        self.append(group)
    }

    /// Admits the group against the pools and keys, writes it and syncs it.
    fn append(&self, group: &FlashGroup<'_>) -> Result<(), StoreError> {
        let from_rows: Vec<EncodedOrder>;
        let orders: &[EncodedOrder] = if group.encoded.is_empty() {
            let limits: HashMap<(i64, i64), i64> = group.holdings.iter().map(|h| ((h.0, h.1), h.3)).collect();
            from_rows = (0..group.orders.len())
                .map(|i| {
                    let (order, line) = (&group.orders[i], &group.lines[i]);
                    let limit = limits.get(&(line.flash_sale_id.unwrap_or(0), order.buyer_user_id)).copied();
                    EncodedOrder::new(group.checkouts[i].clone(), order, line, limit.unwrap_or(0))
                })
                .collect();
            &from_rows
        } else {
            group.encoded
        };
        let keys: Vec<(i64, String)> = orders.iter().map(|o| (o.buyer_user_id, o.idempotency_key.clone())).collect();
        let records: Vec<&[u8]> = orders.iter().map(|o| o.record.as_slice()).collect();
        let file = lock(&self.file);
        let seq = {
            let mut state = lock(&self.state);
            let mut seen = HashSet::new();
            if keys.iter().any(|key| !seen.insert(key) || state.flash_keys.contains(key)) {
                return Err(key_taken());
            }
            admit(&mut state.pools, group.takes, group.holdings)?;
            state.next_seq += 1;
            state.next_seq - 1
        };
        let bytes = frame_bytes(seq, &records);
        let at = lock(&self.state).file_bytes;
        let written = self
            .zeros_ahead(&file, at + bytes.len() as u64)
            .and_then(|()| file.write_all_at(&bytes, at))
            .and_then(|()| file.sync_data())
            .map_err(|e| StoreError::Journal(format!("write {}: {e}", self.path.display())));
        let mut state = lock(&self.state);
        match written {
            Ok(()) => {
                // Held from now on; no other append ran meanwhile (this one holds the file).
                state.flash_keys.extend(keys);
                state.file_bytes += bytes.len() as u64;
                for o in orders {
                    for pending in pendings(o.order_id, o.checkout_id, o.buyer_user_id, o.merchant_id) {
                        state.pending.insert(pending, seq);
                    }
                }
                let was_empty = state.unapplied.is_empty();
                let now = Instant::now();
                let expires_at_min_ms = orders.iter().map(|o| o.expires_at_ms).min().unwrap_or(i64::MIN);
                let (orders, records_at) = (orders.len(), FRAME_HEADER_BYTES + 8);
                let written = Written { seq, orders, expires_at_min_ms, bytes, records_at };
                state.unapplied.push_back((Arc::new(written), now));
                state.last_append = now;
                drop(state);
                if was_empty {
                    self.wake.notify_one();
                }
                Ok(())
            }
            Err(error) => {
                give_back(&mut state.pools, group.takes, group.holdings);
                // The next frame takes this one's number and place: whatever of it reached the
                // disk is overwritten, and recovery never reads past a gap in the numbers.
                state.next_seq = seq;
                Err(error)
            }
        }
    }

    /// Loads a pool from the tables the first time it is used. Nothing is reserved from a pool
    /// before it is loaded, so the tables' figures are all there is.
    pub(crate) async fn ensure_pool(
        &self,
        conn: &mut sqlx::AnyConnection,
        flash_sale_id: i64,
    ) -> Result<(), StoreError> {
        if lock(&self.state).pools.contains_key(&flash_sale_id) {
            return Ok(());
        }
        let _loading = self.loading.lock().await;
        if lock(&self.state).pools.contains_key(&flash_sale_id) {
            return Ok(());
        }
        let Some(row) = sqlx::query("SELECT remaining_units FROM flash_sales WHERE id = $1")
            .bind(flash_sale_id)
            .fetch_optional(&mut *conn)
            .await?
        else {
            return Err(StoreError::NotFound);
        };
        let remaining_units: i64 = row.try_get("remaining_units")?;
        let mut held_units = sqlx::query("SELECT user_id, units FROM flash_purchases WHERE flash_sale_id = $1")
            .bind(flash_sale_id)
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|r| Ok((r.try_get("user_id")?, r.try_get("units")?)))
            .collect::<Result<HashMap<i64, i64>, sqlx::Error>>()?;
        let keys = sqlx::query(
            "SELECT c.buyer_user_id, c.idempotency_key FROM orders o JOIN checkouts c ON c.id = o.checkout_id \
             WHERE o.flash_sale_id = $1",
        )
        .bind(flash_sale_id)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| Ok((r.try_get("buyer_user_id")?, r.try_get("idempotency_key")?)))
        .collect::<Result<Vec<(i64, String)>, sqlx::Error>>()?;
        // Room for the orders the pool can still take, their keys and what reads wait for, so no
        // map grows during the sale.
        let orders_ahead = presized_orders(remaining_units);
        held_units.reserve(orders_ahead);
        let mut state = lock(&self.state);
        state.flash_keys.reserve(keys.len() + orders_ahead);
        state.flash_keys.extend(keys);
        // An order and its checkout each, its buyer (shared by a buyer's orders), its shop.
        state.pending.reserve(orders_ahead * 3 + 1);
        state.pools.insert(flash_sale_id, Pool { remaining_units, held_units });
        drop(state);
        self.preallocate();
        Ok(())
    }

    /// Writes the first stretch of zeros ahead of the frames (see [`PREALLOCATE_BYTES`]), unless
    /// it is there. A failure only costs the sale the faster syncs; appending grows the file then.
    fn preallocate(&self) {
        if let Err(error) = self.zeros_ahead(&lock(&self.file), PREALLOCATE_BYTES) {
            tracing::warn!(%error, "could not write the flash-sale journal's zeros ahead");
        }
    }

    /// Makes sure zeros are written and synced up to `through` (in whole stretches of
    /// [`PREALLOCATE_BYTES`]). The caller holds the file.
    fn zeros_ahead(&self, file: &File, through: u64) -> std::io::Result<()> {
        let allocated = lock(&self.state).allocated_bytes;
        if through <= allocated {
            return Ok(());
        }
        let to = through.div_ceil(PREALLOCATE_BYTES) * PREALLOCATE_BYTES;
        zero_fill(file, allocated, to)?;
        lock(&self.state).allocated_bytes = to;
        Ok(())
    }

    /// What a loaded pool has left to sell (reservations of open cart transactions deducted).
    pub(crate) fn pool_remaining(&self, flash_sale_id: i64) -> Option<i64> {
        lock(&self.state).pools.get(&flash_sale_id).map(|pool| pool.remaining_units)
    }

    /// Waits until what the journal holds for `pending` is applied (at once if nothing).
    pub(crate) async fn settle(&self, pending: Pending) {
        self.settle_through(|state| state.pending.get(&pending).copied()).await;
    }

    /// Waits until every journalled order that expires by `due_ms` is applied (the timers read
    /// due orders from the tables). Orders expire minutes after they are made, long after they
    /// are applied, so this seldom waits; it does not hurry the applier in the middle of a sale.
    pub(crate) async fn settle_due(&self, due_ms: i64) {
        self.settle_through(|state| {
            let due = state.unapplied.iter().rev().find(|(frame, _)| frame.expires_at_min_ms <= due_ms);
            due.map(|(frame, _)| frame.seq)
        })
        .await;
    }

    /// Waits until everything journalled so far is applied.
    pub(crate) async fn settle_all(&self) {
        self.settle_through(|state| state.unapplied.back().map(|(frame, _)| frame.seq)).await;
    }

    /// Waits until the frame `seq_of` names (if any) is applied, hurrying the applier.
    async fn settle_through(&self, seq_of: impl FnOnce(&State) -> Option<u64>) {
        let seq = {
            let mut state = lock(&self.state);
            let Some(seq) = seq_of(&state) else { return };
            state.hurry = true;
            seq
        };
        self.wake.notify_one();
        let mut applied = self.applied.subscribe();
        if tokio::time::timeout(SETTLE_WAIT_MAX, applied.wait_for(|&a| a >= seq)).await.is_err() {
            tracing::error!(seq, "a flash-sale journal frame is still not applied; reading without it");
        }
    }

    /// Applies everything, stops the applier and lets the file go (for [`Store::close`]).
    pub(crate) async fn close(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.settle_all().await;
        self.wake.notify_one();
        let file = lock(&self.file);
        let _ = file.unlock();
    }

    // --- cart transactions (see `Effects`) ---

    /// Reserves `units` of a pool for a cart order's transaction; false when fewer remain.
    async fn reserve_units(
        &self,
        conn: &mut sqlx::AnyConnection,
        flash_sale_id: i64,
        units: i64,
    ) -> Result<bool, StoreError> {
        self.ensure_pool(conn, flash_sale_id).await?;
        Ok(admit(&mut lock(&self.state).pools, &[(flash_sale_id, units)], &[]).is_ok())
    }

    /// Reserves what a buyer holds of a pool for a cart order; `Constraint` beyond the limit.
    async fn reserve_holding(
        &self,
        conn: &mut sqlx::AnyConnection,
        flash_sale_id: i64,
        user_id: i64,
        units: i64,
        limit_units: i64,
    ) -> Result<(), StoreError> {
        self.ensure_pool(conn, flash_sale_id).await?;
        admit(&mut lock(&self.state).pools, &[], &[(flash_sale_id, user_id, units, limit_units)])
    }
}

fn key_taken() -> StoreError {
    StoreError::Conflict { constraint: "checkouts.idempotency_key (flash-sale journal)".into() }
}

/// Takes `takes` and `holdings` from the pools if all fit, or nothing.
fn admit(
    pools: &mut HashMap<i64, Pool>,
    takes: &[(i64, i64)],
    holdings: &[(i64, i64, i64, i64)],
) -> Result<(), StoreError> {
    let mut units_per_pool: BTreeMap<i64, i64> = BTreeMap::new();
    for &(sale, units) in takes {
        *units_per_pool.entry(sale).or_default() += units;
    }
    for (sale, units) in &units_per_pool {
        if pools.get(sale).is_none_or(|p| p.remaining_units < *units) {
            return Err(StoreError::Constraint);
        }
    }
    let mut units_per_holding: BTreeMap<(i64, i64), (i64, i64)> = BTreeMap::new();
    for &(sale, user, units, limit) in holdings {
        let entry = units_per_holding.entry((sale, user)).or_insert((0, limit));
        entry.0 += units;
        entry.1 = entry.1.min(limit);
    }
    for ((sale, user), (units, limit)) in &units_per_holding {
        let held = pools.get(sale).and_then(|p| p.held_units.get(user)).copied().unwrap_or(0);
        if !pools.contains_key(sale) || held + units > *limit {
            return Err(StoreError::Constraint);
        }
    }
    for (sale, units) in units_per_pool {
        if let Some(pool) = pools.get_mut(&sale) {
            pool.remaining_units -= units;
        }
    }
    for ((sale, user), (units, _)) in units_per_holding {
        if let Some(pool) = pools.get_mut(&sale) {
            *pool.held_units.entry(user).or_default() += units;
        }
    }
    Ok(())
}

/// Gives back to the pools what [`admit`] took (a write that failed), or what a committed
/// cancellation or expiry released.
fn give_back(pools: &mut HashMap<i64, Pool>, takes: &[(i64, i64)], holdings: &[(i64, i64, i64, i64)]) {
    for &(sale, units) in takes {
        if let Some(pool) = pools.get_mut(&sale) {
            pool.remaining_units += units;
        }
    }
    for &(sale, user, units, _) in holdings {
        if let Some(held) = pools.get_mut(&sale).and_then(|p| p.held_units.get_mut(&user)) {
            *held -= units;
        }
    }
}

/// What reads of an order may wait for (see [`Pending`]).
fn pendings(order_id: i64, checkout_id: i64, buyer_user_id: i64, merchant_id: i64) -> [Pending; 4] {
    [
        Pending::Order(order_id),
        Pending::Checkout(checkout_id),
        Pending::Buyer(buyer_user_id),
        Pending::Merchant(merchant_id),
    ]
}

/// Consecutive runs of frames of at most [`APPLY_ORDERS_MAX`] orders (a larger frame alone).
fn batches(frames: &[Arc<Written>]) -> Vec<&[Arc<Written>]> {
    let mut batches = Vec::new();
    let (mut start, mut orders) = (0, 0);
    for (i, frame) in frames.iter().enumerate() {
        if i > start && orders + frame.orders > APPLY_ORDERS_MAX {
            batches.push(&frames[start..i]);
            (start, orders) = (i, 0);
        }
        orders += frame.orders;
    }
    if start < frames.len() {
        batches.push(&frames[start..]);
    }
    batches
}

/// Writes `frames` to the tables in one transaction, with the applied sequence number.
async fn apply(store: &Store, frames: &[Arc<Written>]) -> Result<Frame, StoreError> {
    let Some(last) = frames.last() else { return Ok(Frame::default()) };
    let rows = parse(frames)?;
    let mut takes: BTreeMap<i64, i64> = BTreeMap::new();
    let mut holdings: BTreeMap<(i64, i64), (i64, i64)> = BTreeMap::new();
    for (i, &(sale, limit)) in rows.limits.iter().enumerate() {
        let (units, buyer) = (rows.lines[i].quantity, rows.orders[i].buyer_user_id);
        *takes.entry(sale).or_default() += units;
        let entry = holdings.entry((sale, buyer)).or_insert((0, limit));
        entry.0 += units;
        entry.1 = entry.1.max(limit);
    }
    let takes: Vec<(i64, i64)> = takes.into_iter().collect();
    let holdings: Vec<(i64, i64, i64, i64)> = holdings.into_iter().map(|((s, u), (n, l))| (s, u, n, l)).collect();
    let mut tx = store.begin_unjournalled().await?;
    tx.apply_flash_rows(&rows.checkouts, &rows.orders, &rows.lines, &takes, &holdings).await?;
    tx.set_journal_applied_seq(last.seq).await?;
    tx.commit().await?;
    Ok(rows)
}

/// The applier: on its own thread (with its own small runtime), so its turns are not queued
/// behind request tasks, and so the request runtime never runs the tables' inserts.
fn spawn_applier(store: Store, journal: Arc<Journal>) {
    let started = std::thread::Builder::new().name("xingqu-journal-apply".to_owned()).spawn(move || {
        match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(runtime) => runtime.block_on(run_applier(store, journal)),
            Err(error) => tracing::error!(%error, "no runtime for the flash-sale journal's applier"),
        }
    });
    if let Err(error) = started {
        tracing::error!(%error, "the flash-sale journal's applier did not start");
    }
}

async fn run_applier(store: Store, journal: Arc<Journal>) {
    loop {
        let (due, stopping) = {
            let state = lock(&journal.state);
            let stopping = journal.stopping.load(Ordering::SeqCst);
            let due = match state.unapplied.front() {
                None => None,
                Some(_) if state.hurry || stopping => Some(Duration::ZERO),
                Some(_)
                    if state.unapplied.iter().map(|(frame, _)| frame.orders).sum::<usize>() >= APPLY_BACKLOG_MAX =>
                {
                    Some(Duration::ZERO)
                }
                Some((_, oldest)) => {
                    let quiet = QUIET.saturating_sub(state.last_append.elapsed());
                    let lag = APPLY_LAG_MAX.saturating_sub(oldest.elapsed());
                    Some(quiet.min(lag))
                }
            };
            (due, stopping)
        };
        match due {
            None if stopping => return,
            None => {
                let _ = tokio::time::timeout(Duration::from_secs(1), journal.wake.notified()).await;
            }
            Some(wait) if !wait.is_zero() => {
                let _ = tokio::time::timeout(wait, journal.wake.notified()).await;
            }
            Some(_) => {
                if let Err(error) = apply_front(&store, &journal).await {
                    tracing::error!(%error, "applying the flash-sale journal failed; retrying in a second");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
}

/// Applies the oldest frames (up to a batch), then forgets what they held and empties the file
/// when everything in it is applied.
async fn apply_front(store: &Store, journal: &Journal) -> Result<(), StoreError> {
    let frames: Vec<Arc<Written>> = {
        let state = lock(&journal.state);
        let mut orders = 0;
        state
            .unapplied
            .iter()
            .take_while(|(frame, _)| {
                let fits = orders == 0 || orders + frame.orders <= APPLY_ORDERS_MAX;
                orders += frame.orders;
                fits
            })
            .map(|(frame, _)| frame.clone())
            .collect()
    };
    let Some(last_seq) = frames.last().map(|f| f.seq) else { return Ok(()) };
    let rows = apply(store, &frames).await?;
    {
        let mut state = lock(&journal.state);
        for _ in &frames {
            state.unapplied.pop_front();
        }
        for o in &rows.orders {
            for pending in pendings(o.id, o.checkout_id, o.buyer_user_id, o.merchant_id) {
                if state.pending.get(&pending).is_some_and(|&seq| seq <= last_seq) {
                    state.pending.remove(&pending);
                }
            }
        }
        if state.unapplied.is_empty() {
            state.hurry = false;
        }
    }
    journal.applied.send_replace(last_seq);
    let file = lock(&journal.file);
    let mut state = lock(&journal.state);
    // Everything in the file is applied: the next frame may go at its beginning (what follows it
    // there has older sequence numbers, which recovery does not read past).
    if state.unapplied.is_empty() && state.file_bytes >= TRUNCATE_BYTES {
        state.file_bytes = 0;
    }
    drop(file);
    Ok(())
}

/// What a transaction did to the journal's pools, settled when it ends: reservations are given
/// back if it does not commit, and give-backs are added only once it has.
#[derive(Debug)]
pub(crate) struct Effects {
    journal: Option<Arc<Journal>>,
    takes: Vec<(i64, i64)>,
    holdings: Vec<(i64, i64, i64, i64)>,
    returned_takes: Vec<(i64, i64)>,
    returned_holdings: Vec<(i64, i64, i64, i64)>,
    /// The commit was attempted: reservations stay (a commit that reported an error may still
    /// have landed, and keeping them only makes the pool more careful).
    committing: bool,
}

impl Effects {
    pub(crate) fn new(journal: Option<Arc<Journal>>) -> Self {
        Effects {
            journal,
            takes: Vec::new(),
            holdings: Vec::new(),
            returned_takes: Vec::new(),
            returned_holdings: Vec::new(),
            committing: false,
        }
    }

    pub(crate) async fn reserve_units(
        &mut self,
        conn: &mut sqlx::AnyConnection,
        flash_sale_id: i64,
        units: i64,
    ) -> Result<bool, StoreError> {
        let Some(journal) = &self.journal else { return Ok(true) };
        let reserved = journal.reserve_units(conn, flash_sale_id, units).await?;
        if reserved {
            self.takes.push((flash_sale_id, units));
        }
        Ok(reserved)
    }

    pub(crate) async fn reserve_holding(
        &mut self,
        conn: &mut sqlx::AnyConnection,
        flash_sale_id: i64,
        user_id: i64,
        units: i64,
        limit_units: i64,
    ) -> Result<(), StoreError> {
        let Some(journal) = &self.journal else { return Ok(()) };
        journal.reserve_holding(conn, flash_sale_id, user_id, units, limit_units).await?;
        self.holdings.push((flash_sale_id, user_id, units, limit_units));
        Ok(())
    }

    pub(crate) fn returned_units(&mut self, flash_sale_id: i64, units: i64) {
        if self.journal.is_some() {
            self.returned_takes.push((flash_sale_id, units));
        }
    }

    pub(crate) fn released_holding(&mut self, flash_sale_id: i64, user_id: i64, units: i64) {
        if self.journal.is_some() {
            self.returned_holdings.push((flash_sale_id, user_id, units, 0));
        }
    }

    /// Locks pool loading while give-backs commit, so a pool loaded meanwhile cannot count them
    /// twice (once read from the tables, once added here). Hold the guard across the commit.
    pub(crate) async fn before_commit(&mut self) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        self.committing = true;
        let journal = self.journal.as_ref()?;
        if self.returned_takes.is_empty() && self.returned_holdings.is_empty() {
            return None;
        }
        Some(journal.loading.clone().lock_owned().await)
    }

    /// The transaction committed: give-backs go to the pools.
    pub(crate) fn committed(&mut self) {
        let Some(journal) = &self.journal else { return };
        let mut state = lock(&journal.state);
        give_back(&mut state.pools, &self.returned_takes, &self.returned_holdings);
        self.returned_takes.clear();
        self.returned_holdings.clear();
    }
}

impl Drop for Effects {
    fn drop(&mut self) {
        let Some(journal) = &self.journal else { return };
        let mut state = lock(&journal.state);
        if !self.committing {
            give_back(&mut state.pools, &self.takes, &self.holdings);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(buyer_user_id: i64) -> Vec<u8> {
        let checkout = NewCheckout {
            id: 1,
            buyer_user_id,
            idempotency_key: "flash/7/k".into(),
            request_sha256: "d".into(),
            total_fen: 2990,
            created_at_ms: 5,
        };
        let order = NewOrder {
            id: 2,
            checkout_id: 1,
            buyer_user_id,
            merchant_id: 3,
            trade_type: "flash_sale",
            flash_sale_id: Some(7),
            goods_list_fen: 5990,
            discount_fen: 3000,
            shipping_fen: 0,
            total_fen: 2990,
            address: "延吉市".into(),
            dispatch_promise: "within_48h",
            created_at_ms: 5,
            expires_at_ms: 900_005,
        };
        let line = NewLine {
            id: 4,
            order_id: 2,
            sku_id: 5,
            product_id: 6,
            product_version: 1,
            title: "延边大米".into(),
            spec: "5 kg".into(),
            unit_price_fen: 5990,
            quantity: 1,
            list_total_fen: 5990,
            discount_fen: 3000,
            paid_fen: 2990,
            discounts: "[]".into(),
            commission_bps: 500,
            dispatch_promise: "within_48h",
            flash_sale_id: Some(7),
            merchant_net_fen: 2990,
            protect_window_days: 0,
            protect_from: "paid".into(),
            services: "[]".into(),
            insurance_premium_fen: 0,
            insurance_cap_fen: 0,
            unsealed_no_return_confirmed: false,
        };
        encode_record(&checkout, &order, &line, 2)
    }

    #[test]
    fn frames_read_back_until_a_torn_or_corrupt_one() {
        let mut bytes = Vec::new();
        let mut ends = Vec::new();
        for seq in 1..=3u64 {
            let records = [record(10 + seq as i64), record(20)];
            bytes.extend(frame_bytes(seq, &records.iter().map(Vec::as_slice).collect::<Vec<_>>()));
            ends.push(bytes.len());
        }
        let (frames, used) = decode(&bytes);
        let seen: Vec<(u64, usize)> = frames.iter().map(|f| (f.seq, f.orders)).collect();
        assert_eq!((seen, used), (vec![(1, 2), (2, 2), (3, 2)], ends[2]));
        let rows = parse(&frames.into_iter().map(Arc::new).collect::<Vec<_>>()).expect("parse");
        assert_eq!(rows.orders.len(), 6);
        assert_eq!(
            (rows.orders[0].buyer_user_id, rows.orders[0].trade_type, rows.limits[0]),
            (11, "flash_sale", (7, 2))
        );
        assert_eq!(rows.lines[1].title, "延边大米");

        // A write that stopped halfway: the whole frames before it stand.
        let fourth = frame_bytes(4, &[record(30).as_slice()]);
        bytes.extend_from_slice(&fourth[..fourth.len() / 2]);
        let (frames, used) = decode(&bytes);
        assert_eq!((frames.len(), used), (3, ends[2]));

        // A flipped bit in the second frame: only the first stands.
        let mut corrupt = bytes.clone();
        corrupt[ends[0] + FRAME_HEADER_BYTES + 20] ^= 0x20;
        assert_eq!(decode(&corrupt).0.len(), 1);
    }

    #[test]
    fn reading_stops_at_the_zeros_ahead_and_at_an_earlier_pass() {
        let frame = |seq: u64| frame_bytes(seq, &[record(seq as i64).as_slice()]);
        // Frames, then the zeros written ahead of them.
        let mut bytes = [frame(5), frame(6)].concat();
        let end = bytes.len();
        bytes.resize(end + 4096, 0);
        let (frames, used) = decode(&bytes);
        assert_eq!((frames.iter().map(|f| f.seq).collect::<Vec<_>>(), used), (vec![5, 6], end));

        // Writing started over at the beginning: frame 7 lies over frame 1 of the earlier pass,
        // whose frames 2 and 3 follow it and are not read.
        let mut file = [frame(1), frame(2), frame(3)].concat();
        let new = frame(7);
        file[..new.len()].copy_from_slice(&new);
        let (frames, used) = decode(&file);
        assert_eq!((frames.iter().map(|f| f.seq).collect::<Vec<_>>(), used), (vec![7], new.len()));
    }

    #[test]
    fn records_of_the_earlier_json_encoding_read_back() {
        let binary = record(11);
        assert_eq!(binary[0], RECORD_POSTCARD);
        let new = decode_record(&binary).expect("binary record");
        let json = serde_json::to_vec(&RecordRef {
            checkout: &new.checkout,
            order: &new.order,
            line: &new.line,
            limit_units: new.limit_units,
        })
        .expect("json");
        assert!(json.len() > binary.len());
        let old = decode_record(&json).expect("json record");
        assert_eq!((old.checkout, old.order, old.line, old.limit_units), (new.checkout, new.order, new.line, 2));
        assert!(decode_record(&[]).is_err() && decode_record(&[7, 1, 2]).is_err());
        assert!(decode_record(&binary[..binary.len() / 2]).is_err());
    }

    #[test]
    fn admission_takes_all_or_nothing() {
        let mut pools = HashMap::new();
        pools.insert(7, Pool { remaining_units: 3, held_units: [(2, 1)].into_iter().collect() });
        // The buyer holds 1 of a limit of 2: a second unit fits, a third does not.
        assert!(admit(&mut pools, &[(7, 1)], &[(7, 2, 1, 2)]).is_ok());
        assert!(matches!(admit(&mut pools, &[(7, 1)], &[(7, 2, 1, 2)]), Err(StoreError::Constraint)));
        assert_eq!(pools[&7].remaining_units, 2);
        // Two units for other buyers fit; a third does not, and nothing of the refused group is taken.
        assert!(admit(&mut pools, &[(7, 1), (7, 1)], &[(7, 3, 1, 2), (7, 4, 1, 2)]).is_ok());
        assert!(matches!(admit(&mut pools, &[(7, 1)], &[(7, 5, 1, 2)]), Err(StoreError::Constraint)));
        assert_eq!((pools[&7].remaining_units, pools[&7].held_units.get(&5)), (0, None));
        // An unknown pool admits nothing.
        assert!(admit(&mut pools, &[(8, 1)], &[]).is_err());
        give_back(&mut pools, &[(7, 2)], &[(7, 3, 1, 0)]);
        assert_eq!((pools[&7].remaining_units, pools[&7].held_units[&3]), (2, 0));
    }

    #[test]
    fn journal_paths_only_for_files() {
        assert_eq!(journal_path("sqlite://data/x.db?mode=rwc"), Some(PathBuf::from("data/x.db.flash-journal")));
        assert_eq!(journal_path("sqlite:x.db"), Some(PathBuf::from("x.db.flash-journal")));
        assert_eq!(journal_path("sqlite::memory:"), None);
        assert_eq!(journal_path("sqlite://x.db?mode=ro"), None);
        assert_eq!(journal_path("postgres://h/db"), None);
    }
}
