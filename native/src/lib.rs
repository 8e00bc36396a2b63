//! The aggregator's hot path in Rust: parse, validate and aggregate a batch of Kafka messages.
//!
//! The pure-Python code is the reference and the judge:
//! - `PartitionCore` keeps exactly the state of `eventdash.stats.partition_state.PartitionStats`
//!   (same buckets, same eviction, same Misra-Gries cut, same insertion order, so the encoded
//!   snapshots are byte-identical);
//! - `process_batch` accepts only records it is sure the reference accepts with the same values.
//!   At anything else (an error event, a record it would not accept, a partition it does not
//!   hold) it stops and returns the index: the caller runs that one message through the
//!   reference (`parse_event`, dead letters) and calls again from the next. Rejections, reasons
//!   and dead letters therefore always come from the reference.
//!
//! A differential property test (tests/unit/test_native_engine.py) checks both give identical
//! snapshots, offsets and dead letters for random streams, invalid records included.
//! All limits come from the Python modules that own them (`EventRules`, `PartitionCore::new`).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};

use blake2::digest::{Update, VariableOutput};
use blake2::Blake2bVar;
use indexmap::IndexMap;
use rustc_hash::{FxBuildHasher, FxHashMap};
use pyo3::exceptions::{PyOverflowError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};
use serde::Deserialize;

/// Order of `eventdash.events.model.EVENT_TYPES`; the Python side checks it at import.
pub const EVENT_TYPES: [&str; 4] = ["productview", "addtobasket", "removefrombasket", "purchase"];
const PRODUCTVIEW: usize = 0;
const ADDTOBASKET: usize = 1;
const PURCHASE: usize = 3;

type Counter = IndexMap<String, u64, FxBuildHasher>;
/// Session ids hashed lately: a session sends several events (as `hll.hash64`'s lru_cache).
const SESSION_HASH_CACHE: usize = 16_384;

/// Validation limits of `eventdash.events.validation` (passed in, owned there).
#[pyclass(module = "eventdash_native", frozen)]
pub struct EventRules {
    max_bytes: usize,
    max_text_chars: usize,
    max_ts: i64,
    future_tolerance_ms: i64,
    max_price: i64,
    max_quantity: i64,
    max_product_id_chars: usize,
    max_product_name_chars: usize,
    max_category_chars: usize,
    reserved_category: String, // the statistics' own "(other)": no event may name it
}

#[pymethods]
impl EventRules {
    #[new]
    #[pyo3(signature = (*, max_bytes, max_text_chars, max_ts, future_tolerance_ms, max_price, max_quantity,
                        max_product_id_chars, max_product_name_chars, max_category_chars, reserved_category))]
    #[allow(clippy::too_many_arguments)]
    fn new(max_bytes: usize, max_text_chars: usize, max_ts: i64, future_tolerance_ms: i64, max_price: i64,
           max_quantity: i64, max_product_id_chars: usize, max_product_name_chars: usize,
           max_category_chars: usize, reserved_category: String) -> Self {
        EventRules { max_bytes, max_text_chars, max_ts, future_tolerance_ms, max_price, max_quantity,
                     max_product_id_chars, max_product_name_chars, max_category_chars, reserved_category }
    }
}

/// No unknown fields: serde skips the values of unknown fields without the checks orjson makes
/// (UTF-8, surrogate escapes, number range, depth), so a record with any goes to the reference.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireEvent<'a> {
    #[serde(borrow)]
    event_id: Cow<'a, str>,
    #[serde(borrow, rename = "type")]
    kind: Cow<'a, str>,
    ts: i64,
    #[serde(borrow)]
    session_id: Cow<'a, str>,
    #[serde(borrow)]
    user_id: Cow<'a, str>,
    #[serde(borrow)]
    product_id: Cow<'a, str>,
    #[serde(borrow, default)]
    product_name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    category: Option<Cow<'a, str>>,
    price: serde_json::Number,
    quantity: i64,
}

/// An event the reference accepts, with the values it would compute.
struct Accepted<'a> {
    type_index: usize,
    ts: i64,
    session_id: Cow<'a, str>,
    product_id: Cow<'a, str>,
    product_name: Cow<'a, str>,
    price_cents: i64,
    quantity: i64,
    category: Cow<'a, str>,
}

fn is_printable_ascii(text: &str) -> bool {
    text.bytes().all(|b| (0x20..=0x7e).contains(&b))
}

fn text_fits(text: &str, max_chars: usize) -> bool {
    !text.is_empty() && (text.len() <= max_chars || text.chars().count() <= max_chars)
}

/// `Some` only where `parse_event` surely accepts the record with these values; `None` hands the
/// record to the reference (which may still accept it: unusual numbers, non-ASCII names...).
fn accept<'a>(raw: &'a [u8], rules: &EventRules, now_ms: i64) -> Option<Accepted<'a>> {
    if raw.len() > rules.max_bytes {
        return None;
    }
    // serde would read a JSON array into a struct too: the reference wants an object.
    if raw.iter().find(|b| !b" \t\r\n".contains(b)) != Some(&b'{') {
        return None;
    }
    let wire: WireEvent<'a> = serde_json::from_slice(raw).ok()?;
    let max_text = rules.max_text_chars;
    if !(text_fits(&wire.event_id, max_text) && text_fits(&wire.session_id, max_text)
        && text_fits(&wire.user_id, max_text)) {
        return None;
    }
    let product_id = wire.product_id;
    if product_id.is_empty() || product_id.len() > rules.max_product_id_chars || !is_printable_ascii(&product_id) {
        return None;
    }
    let type_index = EVENT_TYPES.iter().position(|t| *t == wire.kind)?;
    if !(0 <= wire.ts && wire.ts < rules.max_ts && wire.ts <= now_ms + rules.future_tolerance_ms) {
        return None;
    }
    let price_cents = if let Some(price) = wire.price.as_i64() {
        if !(0..=rules.max_price).contains(&price) {
            return None;
        }
        price * 100
    } else if wire.price.is_f64() {
        let price = wire.price.as_f64()?;
        // -0.0 passes as the reference's `price < 0` does; NaN and infinities fail here
        if !(price >= -(rules.max_price as f64) && price <= rules.max_price as f64) || price < 0.0 {
            return None;
        }
        (price * 100.0).round_ties_even() as i64 // Python's round(): half to even, exact below 2^53
    } else {
        return None; // an integer beyond i64
    };
    if !(0..=rules.max_quantity).contains(&wire.quantity) {
        return None;
    }
    let product_name = match wire.product_name {
        None => Cow::Borrowed(""),
        Some(name) if name.len() <= rules.max_product_name_chars && is_printable_ascii(&name) => name,
        Some(_) => return None, // Unicode printability is the reference's call
    };
    let category = match wire.category {
        None => Cow::Borrowed(""),
        Some(category) if category.len() <= rules.max_category_chars && is_printable_ascii(&category)
            && category != rules.reserved_category => category,
        Some(_) => return None,
    };
    Some(Accepted { type_index, ts: wire.ts, session_id: wire.session_id, product_id, product_name,
                    price_cents, quantity: wire.quantity, category })
}

type CategoryCounts = IndexMap<String, [u64; 4], FxBuildHasher>;

struct MinuteBucket {
    sketches: [Vec<u8>; 3],
    views: Counter,
    purchases: Counter,
    revenue: IndexMap<String, u128, FxBuildHasher>, // cents of the units in `purchases` (same ids)
    categories: CategoryCounts,
}

impl MinuteBucket {
    fn new(registers: usize) -> Self {
        MinuteBucket { sketches: [vec![0; registers], vec![0; registers], vec![0; registers]],
                       views: Counter::default(), purchases: Counter::default(),
                       revenue: IndexMap::default(), categories: CategoryCounts::default() }
    }
}

/// The state of `PartitionStats` (without `invalid`, which the Python wrapper keeps).
#[pyclass(module = "eventdash_native")]
pub struct PartitionCore {
    horizon_seconds: i64,
    funnel_minutes: i64,
    max_candidates: usize,
    max_categories: usize,
    other_category: String,
    precision: u32,
    totals: [[u128; 3]; 4], // per type: count, units, revenue in cents
    late_total: u64,
    watermark_ms: i64,
    seconds: BTreeMap<i64, [u64; 4]>,
    minute_counts: BTreeMap<i64, [u64; 4]>, // every minute with a second in the horizon
    finished_minutes: Vec<(i64, [u64; 4])>, // minutes that left the horizon, until taken
    finished_through_minute: i64, // minutes up to this one are final: never counted again
    minutes: BTreeMap<i64, MinuteBucket>,
    product_names: IndexMap<String, String, FxBuildHasher>,
    product_categories: IndexMap<String, String, FxBuildHasher>,
    session_hashes: FxHashMap<String, u64>, // at most SESSION_HASH_CACHE entries, then cleared
}

/// `int.from_bytes(blake2b(text.encode(), digest_size=8).digest(), "big")`, as `hll.hash64`.
fn hash64(text: &str) -> u64 {
    let mut hasher = Blake2bVar::new(8).expect("8 is a valid blake2b digest size");
    hasher.update(text.as_bytes());
    let mut digest = [0u8; 8];
    hasher.finalize_variable(&mut digest).expect("the buffer has the digest's size");
    u64::from_be_bytes(digest)
}

fn add_hash(precision: u32, registers: &mut [u8], h: u64) {
    let rest_bits = 64 - precision;
    let index = (h >> rest_bits) as usize;
    let rest = h & ((1u64 << rest_bits) - 1);
    let rank = (rest_bits - (64 - rest.leading_zeros()) + 1) as u8;
    if rank > registers[index] {
        registers[index] = rank;
    }
}

/// `_count_product` up to the names: (whether the counter was cut, whether the id is still in it).
fn count_product(max_candidates: usize, counter: &mut Counter, product_id: &str, amount: u64) -> (bool, bool) {
    match counter.get_mut(product_id) {
        Some(count) => *count += amount,
        None => {
            counter.insert(product_id.to_string(), amount);
        }
    }
    let cut = counter.len() > max_candidates;
    if cut {
        let mut items: Vec<(String, u64)> = counter.drain(..).collect();
        items.sort_by(|a, b| b.1.cmp(&a.1)); // stable, as Python's sorted(reverse=True)
        items.truncate(max_candidates / 2);
        counter.extend(items);
    }
    (cut, counter.contains_key(product_id))
}

impl PartitionCore {
    /// `PartitionStats.apply`; nothing changes when a total would overflow.
    fn apply_event(&mut self, event: &Accepted) -> Result<(), &'static str> {
        let t = event.type_index;
        let quantity = event.quantity as u128;
        let count = self.totals[t][0].checked_add(1).ok_or("count overflow")?;
        let units = self.totals[t][1].checked_add(quantity).ok_or("units overflow")?;
        let revenue = if t == PURCHASE {
            self.totals[t][2].checked_add(event.price_cents as u128 * quantity).ok_or("revenue overflow")?
        } else {
            self.totals[t][2]
        };
        self.totals[t] = [count, units, revenue];

        let ts = event.ts;
        let second = ts.div_euclid(1000);
        if ts > self.watermark_ms {
            let new_second = second != self.watermark_ms.div_euclid(1000);
            self.watermark_ms = ts;
            if new_second {
                self.evict();
            }
        } else if second <= self.watermark_ms.div_euclid(1000) - self.horizon_seconds {
            self.late_total += 1;
            return Ok(());
        }
        self.seconds.entry(second).or_insert([0; 4])[t] += 1;
        let minute = ts.div_euclid(60_000);
        if minute > self.finished_through_minute {
            self.minute_counts.entry(minute).or_insert([0; 4])[t] += 1;
        }
        if minute <= self.watermark_ms.div_euclid(60_000) - self.funnel_minutes && !self.minutes.contains_key(&minute) {
            return Ok(()); // in the horizon but older than the longest funnel window
        }
        let stage = match t {
            PRODUCTVIEW => Some(0),
            ADDTOBASKET => Some(1),
            PURCHASE => Some(2),
            _ => None,
        };
        let h = stage.map(|_| self.session_hash(&event.session_id)); // before the bucket is borrowed
        let (precision, max_candidates, max_categories) = (self.precision, self.max_candidates, self.max_categories);
        let bucket = self.minutes.entry(minute).or_insert_with(|| MinuteBucket::new(1 << precision));
        if let Some(counts) = bucket.categories.get_mut(event.category.as_ref()) {
            counts[t] += 1; // the common case: one hash of the category
        } else {
            let category: &str = if bucket.categories.len() < max_categories { &event.category }
                                 else { &self.other_category };
            match bucket.categories.get_mut(category) {
                Some(counts) => counts[t] += 1,
                None => {
                    let mut counts = [0u64; 4];
                    counts[t] = 1;
                    bucket.categories.insert(category.to_string(), counts);
                }
            }
        }
        let (Some(stage), Some(h)) = (stage, h) else { return Ok(()) };
        add_hash(precision, &mut bucket.sketches[stage], h);
        let counted = match t {
            PRODUCTVIEW => Some(count_product(max_candidates, &mut bucket.views, &event.product_id, 1)),
            PURCHASE => {
                let (cut, present) = count_product(max_candidates, &mut bucket.purchases, &event.product_id,
                                                   event.quantity as u64);
                if cut {
                    let purchases = &bucket.purchases;
                    bucket.revenue.retain(|pid, _| purchases.contains_key(pid));
                }
                if present {
                    let add = event.price_cents as u128 * event.quantity as u128;
                    match bucket.revenue.get_mut(event.product_id.as_ref()) {
                        Some(cents) => *cents = cents.checked_add(add).ok_or("revenue overflow")?,
                        None => {
                            bucket.revenue.insert(event.product_id.to_string(), add);
                        }
                    }
                }
                Some((cut, present))
            }
            _ => None,
        };
        if let Some((cut, present)) = counted {
            if cut {
                self.prune_names();
            }
            if !event.product_name.is_empty() && present {
                match self.product_names.get_mut(event.product_id.as_ref()) {
                    Some(name) if *name == event.product_name => {}
                    Some(name) => *name = event.product_name.to_string(),
                    None => {
                        self.product_names.insert(event.product_id.to_string(), event.product_name.to_string());
                    }
                }
            }
            if !event.category.is_empty() && present {
                match self.product_categories.get_mut(event.product_id.as_ref()) {
                    Some(category) if *category == event.category => {}
                    Some(category) => *category = event.category.to_string(),
                    None => {
                        self.product_categories.insert(event.product_id.to_string(), event.category.to_string());
                    }
                }
            }
        }
        Ok(())
    }

    fn session_hash(&mut self, session_id: &str) -> u64 {
        if let Some(h) = self.session_hashes.get(session_id) {
            return *h;
        }
        if self.session_hashes.len() >= SESSION_HASH_CACHE {
            self.session_hashes.clear();
        }
        let h = hash64(session_id);
        self.session_hashes.insert(session_id.to_string(), h);
        h
    }

    fn prune_names(&mut self) {
        let live: HashSet<&str> = self.minutes.values()
            .flat_map(|b| b.views.keys().chain(b.purchases.keys()))
            .map(String::as_str)
            .collect();
        let keep: Vec<bool> = self.product_names.keys().map(|id| live.contains(id.as_str())).collect();
        let mut flags = keep.into_iter();
        self.product_names.retain(|_, _| flags.next().unwrap_or(false));
        let keep: Vec<bool> = self.product_categories.keys().map(|id| live.contains(id.as_str())).collect();
        let mut flags = keep.into_iter();
        self.product_categories.retain(|_, _| flags.next().unwrap_or(false));
    }

    fn evict(&mut self) {
        let oldest_second = self.watermark_ms.div_euclid(1000) - self.horizon_seconds + 1;
        if matches!(self.seconds.keys().next(), Some(first) if *first < oldest_second) {
            self.seconds = self.seconds.split_off(&oldest_second);
        }
        let oldest_count_minute = oldest_second.div_euclid(60);
        self.finished_through_minute = self.finished_through_minute.max(oldest_count_minute - 1);
        if matches!(self.minute_counts.keys().next(), Some(first) if *first < oldest_count_minute) {
            let kept = self.minute_counts.split_off(&oldest_count_minute);
            let finished = std::mem::replace(&mut self.minute_counts, kept);
            self.finished_minutes.extend(finished);
        }
        let oldest_minute = (oldest_second * 1000).div_euclid(60_000)
            .max(self.watermark_ms.div_euclid(60_000) - self.funnel_minutes + 1);
        if matches!(self.minutes.keys().next(), Some(first) if *first < oldest_minute) {
            self.minutes = self.minutes.split_off(&oldest_minute);
            self.prune_names();
        }
    }
}

type Totals = Vec<(u128, u128, u128)>;
type MinuteExport<'py> = (i64, Vec<Bound<'py, PyBytes>>, Vec<(String, u64)>, Vec<(String, u64)>,
                          Vec<(String, [u64; 4])>, Vec<(String, u128)>);
type Export<'py> = (Totals, u64, i64, Vec<(i64, [u64; 4])>, Vec<MinuteExport<'py>>, Vec<(String, String)>,
                    Vec<(i64, [u64; 4])>, i64, Vec<(String, String)>);
type MinuteLoad = (i64, Vec<Vec<u8>>, Vec<(String, u64)>, Vec<(String, u64)>, Vec<(String, [u64; 4])>,
                  Vec<(String, u128)>);

#[pymethods]
impl PartitionCore {
    #[new]
    #[pyo3(signature = (*, horizon_seconds, funnel_minutes, max_product_candidates, hll_precision, max_categories,
                        other_category))]
    fn new(horizon_seconds: i64, funnel_minutes: i64, max_product_candidates: usize, hll_precision: u32,
           max_categories: usize, other_category: String) -> PyResult<Self> {
        if !(4..=16).contains(&hll_precision) || horizon_seconds < 1 || funnel_minutes < 1 {
            return Err(PyValueError::new_err("bad PartitionCore limits"));
        }
        Ok(PartitionCore {
            horizon_seconds, funnel_minutes, max_candidates: max_product_candidates, max_categories, other_category,
            precision: hll_precision,
            totals: [[0; 3]; 4], late_total: 0, watermark_ms: 0, seconds: BTreeMap::new(),
            minute_counts: BTreeMap::new(), finished_minutes: Vec::new(), finished_through_minute: -1,
            minutes: BTreeMap::new(), product_names: IndexMap::default(), product_categories: IndexMap::default(),
            session_hashes: FxHashMap::default(),
        })
    }

    /// `PartitionStats.apply` for an event the reference parsed (the slow path).
    #[allow(clippy::too_many_arguments)]
    fn apply(&mut self, type_index: usize, ts: i64, session_id: &str, product_id: &str, product_name: &str,
             price_cents: i64, quantity: i64, category: &str) -> PyResult<()> {
        if type_index >= EVENT_TYPES.len() || price_cents < 0 || quantity < 0 {
            return Err(PyValueError::new_err("not an event parse_event accepts"));
        }
        let event = Accepted { type_index, ts, session_id: Cow::Borrowed(session_id),
                               product_id: Cow::Borrowed(product_id), product_name: Cow::Borrowed(product_name),
                               price_cents, quantity, category: Cow::Borrowed(category) };
        self.apply_event(&event).map_err(PyOverflowError::new_err)
    }

    fn shed_detail(&mut self) {
        for bucket in self.minutes.values_mut() {
            bucket.views.clear();
            bucket.purchases.clear();
            bucket.revenue.clear();
            bucket.categories.clear();
        }
        self.product_names.clear();
        self.product_categories.clear();
    }

    /// `PartitionStats.take_finished_minutes`.
    fn take_finished_minutes(&mut self) -> Vec<(i64, [u64; 4])> {
        std::mem::take(&mut self.finished_minutes)
    }

    /// (totals, late_total, watermark_ms, seconds, minutes, product_names, minute_counts,
    /// finished_through_minute), in the reference's orders.
    fn export<'py>(&self, py: Python<'py>) -> Export<'py> {
        let totals = self.totals.iter().map(|t| (t[0], t[1], t[2])).collect();
        let seconds = self.seconds.iter().map(|(s, c)| (*s, *c)).collect();
        let minutes = self.minutes.iter().map(|(m, b)| {
            let sketches = b.sketches.iter().map(|r| PyBytes::new(py, r)).collect();
            let views = b.views.iter().map(|(k, v)| (k.clone(), *v)).collect();
            let purchases = b.purchases.iter().map(|(k, v)| (k.clone(), *v)).collect();
            let categories = b.categories.iter().map(|(k, v)| (k.clone(), *v)).collect();
            let revenue = b.revenue.iter().map(|(k, v)| (k.clone(), *v)).collect();
            (*m, sketches, views, purchases, categories, revenue)
        }).collect();
        let names = self.product_names.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let minute_counts = self.minute_counts.iter().map(|(m, c)| (*m, *c)).collect();
        let categories = self.product_categories.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        (totals, self.late_total, self.watermark_ms, seconds, minutes, names, minute_counts,
         self.finished_through_minute, categories)
    }

    /// The state of a decoded snapshot, then the eviction `PartitionStats.from_snapshot` runs.
    /// OverflowError when a figure does not fit (the caller keeps the reference state then).
    #[allow(clippy::too_many_arguments)]
    fn load(&mut self, totals: Vec<(u128, u128, u128)>, late_total: u64, watermark_ms: i64,
            seconds: Vec<(i64, [u64; 4])>, minutes: Vec<MinuteLoad>,
            product_names: Vec<(String, String)>, minute_counts: Vec<(i64, [u64; 4])>,
            finished_through_minute: i64, product_categories: Vec<(String, String)>) -> PyResult<()> {
        let registers = 1usize << self.precision;
        if totals.len() != 4
            || minutes.iter().any(|(_, s, _, _, _, _)| s.len() != 3 || s.iter().any(|r| r.len() != registers)) {
            return Err(PyValueError::new_err("snapshot state of another shape"));
        }
        for (i, (count, units, revenue)) in totals.into_iter().enumerate() {
            self.totals[i] = [count, units, revenue];
        }
        self.late_total = late_total;
        self.watermark_ms = watermark_ms;
        self.seconds = seconds.into_iter().collect();
        self.minute_counts = minute_counts.into_iter().collect();
        self.finished_through_minute = finished_through_minute;
        self.minutes = minutes.into_iter().map(|(minute, sketches, views, purchases, categories, revenue)| {
            let [a, b, c]: [Vec<u8>; 3] = sketches.try_into().expect("checked above");
            (minute, MinuteBucket { sketches: [a, b, c], views: views.into_iter().collect(),
                                    purchases: purchases.into_iter().collect(),
                                    revenue: revenue.into_iter().collect(),
                                    categories: categories.into_iter().collect() })
        }).collect();
        self.product_names = product_names.into_iter().collect();
        self.product_categories = product_categories.into_iter().collect();
        self.evict();
        Ok(())
    }
}

/// Aggregate `messages[start..]` into `cores` (input partition -> PartitionCore) until a message
/// needs the reference. Returns (index it stopped at or len(messages), events counted per type,
/// [(partition, last offset aggregated)]).
#[pyfunction]
fn process_batch<'py>(py: Python<'py>, messages: &Bound<'py, PyList>, start: usize, cores: &Bound<'py, PyDict>,
                      rules: &EventRules, now_ms: i64) -> PyResult<(usize, [u64; 4], Vec<(i64, i64)>)> {
    // per partition held: (partition, its core, index of the last message aggregated into it)
    let mut held: Vec<(i64, PyRefMut<'py, PartitionCore>, Option<usize>)> = Vec::new();
    let mut counts = [0u64; 4];
    let length = messages.len();
    let mut index = start;
    while index < length {
        let msg = messages.get_item(index)?;
        if !msg.call_method0(intern!(py, "error"))?.is_none() {
            break;
        }
        let partition: i64 = msg.call_method0(intern!(py, "partition"))?.extract()?;
        let slot = match held.iter().position(|(p, _, _)| *p == partition) {
            Some(slot) => slot,
            None => match cores.get_item(partition)? {
                Some(core) => {
                    held.push((partition, core.cast_into::<PartitionCore>()?.try_borrow_mut()?, None));
                    held.len() - 1
                }
                None => break, // revoked, or a partition on the reference's state
            },
        };
        let value = msg.call_method0(intern!(py, "value"))?;
        let Ok(raw) = value.cast::<PyBytes>() else { break };
        let Some(event) = accept(raw.as_bytes(), rules, now_ms) else { break };
        let entry = &mut held[slot];
        if entry.1.apply_event(&event).is_err() {
            break; // the reference path reports it, as an internal error, without losing the record
        }
        entry.2 = Some(index);
        counts[event.type_index] += 1;
        index += 1;
    }
    let mut last_offsets = Vec::with_capacity(held.len());
    for (partition, _, last) in &held {
        if let Some(last) = last {
            let offset: i64 = messages.get_item(*last)?.call_method0(intern!(py, "offset"))?.extract()?;
            last_offsets.push((*partition, offset));
        }
    }
    Ok((index, counts, last_offsets))
}

#[pymodule]
fn eventdash_native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add("EVENT_TYPES", EVENT_TYPES.to_vec())?;
    module.add_class::<EventRules>()?;
    module.add_class::<PartitionCore>()?;
    module.add_function(wrap_pyfunction!(process_batch, module)?)?;
    Ok(())
}
