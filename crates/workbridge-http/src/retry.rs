//! When to retry, and how long to wait.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;

/// Exponential backoff with decorrelated jitter: each wait is drawn between `initial` and three
/// times the previous wait, capped at `max`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct BackoffConfig {
    /// The shortest wait (default 200 ms).
    pub initial: Duration,
    /// The longest wait we choose ourselves (default 30 s); a server's `Retry-After` may ask
    /// for longer, and is honoured.
    pub max: Duration,
    /// Growth factor of the upper bound (default 3).
    pub multiplier: f64,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            initial: Duration::from_millis(200),
            max: Duration::from_secs(30),
            multiplier: 3.0,
        }
    }
}

impl BackoffConfig {
    /// Sets the shortest wait.
    #[must_use]
    pub fn initial(mut self, d: Duration) -> Self {
        self.initial = d;
        self
    }

    /// Sets the longest self-chosen wait.
    #[must_use]
    pub fn max(mut self, d: Duration) -> Self {
        self.max = d;
        self
    }

    /// The next wait after `previous`, drawn with `rng`.
    pub fn next_wait(&self, previous: Duration, rng: &mut impl Rng) -> Duration {
        let lo = self.initial.as_secs_f64();
        let hi = (previous.as_secs_f64() * self.multiplier).max(lo);
        let pick = if hi > lo {
            rng.random_range(lo..=hi)
        } else {
            lo
        };
        Duration::from_secs_f64(pick.min(self.max.as_secs_f64()))
    }
}

/// Which failures are retried, and for how long.
///
/// Defaults: up to 5 retries within 2 minutes; 408, 429 and 5xx (but 501) responses and
/// connection failures are retried for every method; timeouts only for idempotent requests
/// (GET, HEAD, PUT, DELETE, OPTIONS, or a request marked idempotent), since a timed-out POST
/// may have been applied. A `PUT` the server applies without a condition is not safe to repeat
/// when others write too (a second copy writes over an edit made between the two): mark such a
/// request [`RequestBuilder::idempotent(false)`](crate::RequestBuilder::idempotent). Every wait is at least what the server asked for with `Retry-After`,
/// `X-RateLimit-Reset` or `X-RateLimit-Delay`; when that is beyond the time left, the error is
/// returned at once, carrying the wait in [`Error::retry_after`](workbridge_core::Error::retry_after).
/// A wait the server asks for is honoured up to [`RetryConfig::max_server_wait`] (default
/// 5 minutes): a `Retry-After` of years is clamped, not obeyed for ever.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RetryConfig {
    /// Most retries after the first attempt (default 5). Zero disables retries.
    pub max_retries: u32,
    /// Most time spent on one request, retries and waits included (default 120 s).
    pub max_elapsed: Duration,
    /// Longest wait honoured from a server's `Retry-After` / rate-limit headers (default 300 s).
    pub max_server_wait: Duration,
    /// The backoff between attempts.
    pub backoff: BackoffConfig,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_retries: 5,
            max_elapsed: Duration::from_secs(120),
            max_server_wait: Duration::from_secs(300),
            backoff: BackoffConfig::default(),
        }
    }
}

impl RetryConfig {
    /// No retries at all.
    pub fn disabled() -> Self {
        RetryConfig {
            max_retries: 0,
            ..RetryConfig::default()
        }
    }

    /// Sets the most retries.
    #[must_use]
    pub fn max_retries(mut self, n: u32) -> Self {
        self.max_retries = n;
        self
    }

    /// Sets the most time per request.
    #[must_use]
    pub fn max_elapsed(mut self, d: Duration) -> Self {
        self.max_elapsed = d;
        self
    }

    /// Sets the longest wait honoured from a server's headers.
    #[must_use]
    pub fn max_server_wait(mut self, d: Duration) -> Self {
        self.max_server_wait = d;
        self
    }

    /// Sets the backoff.
    #[must_use]
    pub fn backoff(mut self, b: BackoffConfig) -> Self {
        self.backoff = b;
        self
    }
}

/// Whether a response status is worth retrying unchanged.
pub fn is_retryable_status(status: StatusCode) -> bool {
    status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || (status.is_server_error() && status != StatusCode::NOT_IMPLEMENTED)
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// `Retry-After` as a wait: delta-seconds, or an HTTP-date relative to `now`.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let at = DateTime::parse_from_rfc2822(value)
        .ok()?
        .with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

/// The wait the server asks for in its headers, if any: the largest of `Retry-After`
/// (seconds or HTTP-date), `X-RateLimit-Delay` (seconds, fractional) and, on a 429 only,
/// `X-RateLimit-Reset` (Unix time when the window resets).
pub fn server_wait(
    status: StatusCode,
    headers: &HeaderMap,
    now: DateTime<Utc>,
) -> Option<Duration> {
    let retry_after = header_str(headers, "retry-after").and_then(|v| parse_retry_after(v, now));
    let delay = header_str(headers, "x-ratelimit-delay")
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64);
    let reset = if status == StatusCode::TOO_MANY_REQUESTS {
        header_str(headers, "x-ratelimit-reset")
            .and_then(|v| v.parse::<i64>().ok())
            .and_then(|epoch| DateTime::from_timestamp(epoch, 0))
            .map(|at| (at - now).to_std().unwrap_or(Duration::ZERO))
    } else {
        None
    };
    [retry_after, delay, reset].into_iter().flatten().max()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use rand::SeedableRng;
    use reqwest::header::HeaderValue;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 27, 10, 0, 0).unwrap()
    }

    #[test]
    fn retry_after_seconds_and_http_date() {
        assert_eq!(
            parse_retry_after("30", now()),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Fri, 27 Nov 2026 10:01:05 GMT", now()),
            Some(Duration::from_secs(65))
        );
        assert_eq!(
            parse_retry_after("Fri, 27 Nov 2026 09:00:00 GMT", now()),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now()), None);
        assert_eq!(parse_retry_after("-3", now()), None);
    }

    #[test]
    fn server_wait_takes_the_largest_hint() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("2"));
        h.insert("x-ratelimit-delay", HeaderValue::from_static("3.5"));
        let reset = now().timestamp() + 10;
        h.insert(
            "x-ratelimit-reset",
            HeaderValue::from_str(&reset.to_string()).unwrap(),
        );
        assert_eq!(
            server_wait(StatusCode::OK, &h, now()),
            Some(Duration::from_secs_f64(3.5))
        );
        assert_eq!(
            server_wait(StatusCode::TOO_MANY_REQUESTS, &h, now()),
            Some(Duration::from_secs(10))
        );
        assert_eq!(server_wait(StatusCode::OK, &HeaderMap::new(), now()), None);
    }

    #[test]
    fn retryable_statuses() {
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(is_retryable_status(StatusCode::from_u16(s).unwrap()), "{s}");
        }
        for s in [400, 401, 403, 404, 409, 412, 501] {
            assert!(
                !is_retryable_status(StatusCode::from_u16(s).unwrap()),
                "{s}"
            );
        }
    }

    #[test]
    fn jitter_stays_within_bounds_and_grows() {
        let cfg = BackoffConfig::default();
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        let mut prev = cfg.initial;
        let mut longest = Duration::ZERO;
        for _ in 0..50 {
            let w = cfg.next_wait(prev, &mut rng);
            assert!(w >= cfg.initial && w <= cfg.max, "{w:?}");
            assert!(w <= prev.mul_f64(3.0).max(cfg.initial));
            longest = longest.max(w);
            prev = w;
        }
        assert!(
            longest > Duration::from_secs(1),
            "backoff grows: {longest:?}"
        );
    }
}
