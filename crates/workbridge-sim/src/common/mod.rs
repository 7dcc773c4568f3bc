//! What every simulator shares: the options every builder takes, the clock, fault injection and
//! request accounting, serving.

mod admin;
mod clock;
mod control;
mod credential;
mod serve;

use std::sync::Mutex;

pub use admin::AdminServer;
pub use clock::SimClock;
pub(crate) use control::{Control, MiddlewareState, control_layer};
pub use control::{Exchange, Faults, SimControl};
pub(crate) use credential::Credential;
pub use serve::{Certificate, Tls};
pub(crate) use serve::{Running, serve};

/// The value of a handler's step, or the answer the request ends with: what `?` is for a
/// handler that returns a `Response` (its steps fail with the error answer).
macro_rules! or_answer {
    ($step:expr) => {
        match $step {
            Ok(v) => v,
            Err(answer) => return answer,
        }
    };
}
pub(crate) use or_answer;

/// A mutex's guard, a poisoned one included: a simulator keeps serving after a handler panicked.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What every simulator's builder takes, by the same names: where it listens, how it fails,
/// what time it is, and what it holds at start.
///
/// Each builder has a method per field (`port`, `tls`, `faults`, `clock`, `seed_items`,
/// `rng_seed`) and [`options`](crate::servicenow::ServiceNowSimBuilder::options) to set them
/// all at once:
///
/// ```
/// use workbridge_sim::{Faults, SimOptions};
/// let mut options = SimOptions::default();
/// options.seed_items = 20;
/// options.faults = Faults::none().latency(std::time::Duration::from_millis(5));
/// let alm = workbridge_sim::alm::AlmSim::builder().options(options.clone());
/// let ado = workbridge_sim::azure_devops::AzureDevOpsSim::builder().options(options);
/// # let _ = (alm, ado);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SimOptions {
    /// The port to listen on, on 127.0.0.1 (0, the default: any free one).
    pub port: u16,
    /// HTTPS with a self-signed certificate made at start (default: plain HTTP).
    pub tls: Option<Tls>,
    /// The faults injected before requests are handled (default: none).
    pub faults: Faults,
    /// The clock (default: real time); share one to freeze or advance time from a test.
    pub clock: SimClock,
    /// How many sample items the simulator holds at start: incidents, work items or defects
    /// (default 0).
    pub seed_items: usize,
    /// The seed of the random choices the simulator makes: generated ids and the sample values
    /// of seeded items (default 1). The same seed gives the same data.
    pub rng_seed: u64,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            port: 0,
            tls: None,
            faults: Faults::none(),
            clock: SimClock::default(),
            seed_items: 0,
            rng_seed: 1,
        }
    }
}

/// The builder methods of [`SimOptions`], the same in every simulator's builder (which holds
/// them in a field `options`). `$items` names what `seed_items` seeds.
macro_rules! sim_options_methods {
    ($items:literal) => {
        /// Sets every shared option at once (see [`SimOptions`](crate::SimOptions)).
        #[must_use]
        pub fn options(mut self, options: $crate::SimOptions) -> Self {
            self.options = options;
            self
        }

        /// Listens on this port of 127.0.0.1 (default: any free one).
        #[must_use]
        pub fn port(mut self, port: u16) -> Self {
            self.options.port = port;
            self
        }

        /// Serves HTTPS with a self-signed certificate made at start (see [`crate::Tls`]); the
        /// base URL becomes `https://localhost:port`.
        #[must_use]
        pub fn tls(mut self, tls: $crate::Tls) -> Self {
            self.options.tls = Some(tls);
            self
        }

        /// Injects these faults (default: none).
        #[must_use]
        pub fn faults(mut self, faults: $crate::Faults) -> Self {
            self.options.faults = faults;
            self
        }

        /// Uses this clock (share it to freeze or advance time from a test).
        #[must_use]
        pub fn clock(mut self, clock: $crate::SimClock) -> Self {
            self.options.clock = clock;
            self
        }

        #[doc = concat!("Holds `n` sample ", $items, " at start (default none).")]
        #[must_use]
        pub fn seed_items(mut self, n: usize) -> Self {
            self.options.seed_items = n;
            self
        }

        /// Seeds the random choices: generated ids and the sample values of seeded items
        /// (default 1).
        #[must_use]
        pub fn rng_seed(mut self, seed: u64) -> Self {
            self.options.rng_seed = seed;
            self
        }
    };
}
pub(crate) use sim_options_methods;
