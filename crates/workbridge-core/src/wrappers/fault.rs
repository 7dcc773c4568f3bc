use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{Around, BoxFut, CallInfo, wrapped_repository};
use crate::error::{Error, ErrorKind};
use crate::repository::Operation;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Trigger {
    Always,
    Ratio(f64),
    Nth(u64),
}

/// When and how a [`FaultRepository`] fails a call.
///
/// By default a rule fails every call of every operation before it reaches the backend.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultRule {
    kind: ErrorKind,
    ops: Vec<Operation>,
    trigger: Trigger,
    reply_lost: bool,
    in_flight: bool,
    retry_after: Option<Duration>,
    temporary: Option<bool>,
}

impl FaultRule {
    /// A rule failing with `kind`.
    pub fn new(kind: ErrorKind) -> Self {
        FaultRule {
            kind,
            ops: Vec::new(),
            trigger: Trigger::Always,
            reply_lost: false,
            in_flight: false,
            retry_after: None,
            temporary: None,
        }
    }

    /// Only these operations (default: all).
    #[must_use]
    pub fn on(mut self, ops: impl IntoIterator<Item = Operation>) -> Self {
        self.ops = ops.into_iter().collect();
        self
    }

    /// Only write operations.
    #[must_use]
    pub fn on_writes(self) -> Self {
        self.on(Operation::ALL.into_iter().filter(|o| o.is_write()))
    }

    /// Fails each matching call with probability `p` (0.0 to 1.0), drawn from the seeded RNG.
    #[must_use]
    pub fn ratio(mut self, p: f64) -> Self {
        self.trigger = Trigger::Ratio(p.clamp(0.0, 1.0));
        self
    }

    /// Fails only the `n`th matching call (1-based).
    #[must_use]
    pub fn nth(mut self, n: u64) -> Self {
        self.trigger = Trigger::Nth(n);
        self
    }

    /// Lets the call reach the backend and run, then fails it: a write that happened but whose
    /// reply was lost (a timeout after the server committed).
    #[must_use]
    pub fn reply_lost(mut self) -> Self {
        self.reply_lost = true;
        self
    }

    /// Fails the call before the backend sees it, but as a call that may still take effect
    /// ([`Error::maybe_applied`]): a request held on its way, which the client gave up on and
    /// which may yet be delivered. The test delivers it, or not, itself.
    #[must_use]
    pub fn in_flight(mut self) -> Self {
        self.in_flight = true;
        self
    }

    /// Sets the `retry_after` of the injected error.
    #[must_use]
    pub fn retry_after(mut self, wait: Duration) -> Self {
        self.retry_after = Some(wait);
        self
    }

    /// Overrides whether the injected error is temporary.
    #[must_use]
    pub fn temporary(mut self, temporary: bool) -> Self {
        self.temporary = Some(temporary);
        self
    }

    fn matches(&self, op: Operation) -> bool {
        self.ops.is_empty() || self.ops.contains(&op)
    }

    fn error(&self, call: &CallInfo) -> Error {
        let what = if self.reply_lost {
            "injected fault: the call ran but its reply was lost"
        } else {
            "injected fault"
        };
        let mut e = Error::new(self.kind, what)
            .with_operation(call.op.as_str())
            .with_maybe_applied(self.reply_lost || self.in_flight);
        if let Some(t) = &call.item_type {
            e = e.with_item_type(t.clone());
        }
        if let (Some(t), Some(id)) = (&call.item_type, &call.item_id) {
            e = e.with_item(t.clone(), id.clone());
        }
        if let Some(w) = self.retry_after {
            e = e.with_retry_after(w);
        }
        if let Some(t) = self.temporary {
            e = e.with_temporary(t);
        }
        e
    }
}

struct FaultState {
    rng: StdRng,
    matched: Vec<u64>,
    injected: u64,
}

/// Fails calls of the inner repository by rule, with a seeded RNG so runs repeat exactly.
///
/// The first rule that fires decides; a fired `reply_lost` rule lets the backend perform the
/// call and then returns the error, the way a timeout after a committed write looks to a client.
pub struct FaultRepository<R> {
    inner: R,
    rules: Vec<FaultRule>,
    state: Mutex<FaultState>,
}

impl<R> FaultRepository<R> {
    /// Wraps `inner`, with no rules yet, seeding the RNG with `seed`.
    pub fn new(inner: R, seed: u64) -> Self {
        FaultRepository {
            inner,
            rules: Vec::new(),
            state: Mutex::new(FaultState {
                rng: StdRng::seed_from_u64(seed),
                matched: Vec::new(),
                injected: 0,
            }),
        }
    }

    /// Adds a rule.
    #[must_use]
    pub fn with_rule(mut self, rule: FaultRule) -> Self {
        self.rules.push(rule);
        self
    }

    /// How many faults were injected so far.
    pub fn injected(&self) -> u64 {
        self.state.lock().map_or(0, |s| s.injected)
    }

    /// The wrapped repository.
    pub fn inner(&self) -> &R {
        &self.inner
    }

    fn decide(&self, op: Operation) -> Option<&FaultRule> {
        let mut st = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let st = &mut *st;
        st.matched.resize(self.rules.len(), 0);
        let mut fired = None;
        for (i, rule) in self.rules.iter().enumerate() {
            if !rule.matches(op) {
                continue;
            }
            st.matched[i] += 1;
            let fire = match rule.trigger {
                Trigger::Always => true,
                Trigger::Ratio(p) => st.rng.random_bool(p),
                Trigger::Nth(n) => st.matched[i] == n,
            };
            if fire && fired.is_none() {
                fired = Some(rule);
            }
        }
        if fired.is_some() {
            st.injected += 1;
        }
        fired
    }
}

impl<R: fmt::Debug> fmt::Debug for FaultRepository<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultRepository")
            .field("inner", &self.inner)
            .field("rules", &self.rules)
            .finish_non_exhaustive()
    }
}

impl<R: fmt::Display> fmt::Display for FaultRepository<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.inner)
    }
}

impl<R: Send + Sync> Around for FaultRepository<R> {
    fn around<'a, T: Send + 'a>(&'a self, call: CallInfo, fut: BoxFut<'a, T>) -> BoxFut<'a, T> {
        Box::pin(async move {
            match self.decide(call.op) {
                None => fut.await,
                Some(rule) if rule.reply_lost => {
                    let _ = fut.await;
                    Err(rule.error(&call))
                }
                Some(rule) => Err(rule.error(&call)),
            }
        })
    }
}

wrapped_repository!(FaultRepository);
