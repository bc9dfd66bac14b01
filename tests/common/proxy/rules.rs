//! What to fault: which requests a rule takes, what it does to them, when it
//! expires, and its counters. Pure bookkeeping; no I/O.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use axum::http::Method;

/// Which requests a rule looks at: a method (or any) and a path.
#[derive(Debug, Clone)]
pub struct Match {
    method: Option<Method>,
    text: String,
    /// `text` must be the whole path (query excluded), not a part of path and query.
    whole_path: bool,
}

impl Match {
    /// `method` requests whose path and query contain `text`:
    /// `Match::new(Method::POST, "/_bulk")`.
    pub fn new(method: Method, text: &str) -> Match {
        let text = text.to_owned();
        Match {
            method: Some(method),
            text,
            whole_path: false,
        }
    }

    /// Requests of any method whose path and query contain `text`.
    pub fn any_method(text: &str) -> Match {
        let text = text.to_owned();
        Match {
            method: None,
            text,
            whole_path: false,
        }
    }

    /// `method` requests to exactly `path`, whatever their query:
    /// `Match::path(Method::PUT, "/idx")` takes `PUT /idx` (create the
    /// index) and leaves `PUT /idx/_settings` alone.
    pub fn path(method: Method, path: &str) -> Match {
        let text = path.to_owned();
        Match {
            method: Some(method),
            text,
            whole_path: true,
        }
    }

    fn matches(&self, method: &Method, target: &str) -> bool {
        if self.method.as_ref().is_some_and(|m| m != method) {
            return false;
        }
        if self.whole_path {
            target.split('?').next() == Some(self.text.as_str())
        } else {
            target.contains(&self.text)
        }
    }
}

/// What the proxy does to a request a due rule matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answers this status with an engine-like JSON error; the node never
    /// sees the request.
    RespondWithoutForwarding(u16),
    /// Forwards, waits for the node's whole answer (the change is applied),
    /// discards it and answers this status with an engine-like JSON error.
    ForwardThenRespond(u16),
    /// Never answers and never forwards, until the client gives up or the
    /// proxy stops.
    HangWithoutForwarding,
    /// Forwards, lets the node answer in full (the change is applied), and
    /// never answers the client until it gives up or the proxy stops.
    ForwardThenHang,
    /// Forwards, waits for the node's whole answer, then sends its status,
    /// headers (with the full `Content-Length`) and the first half of its
    /// body, and closes the connection. An answer without a body (to a
    /// `HEAD`) cannot be cut and goes through whole.
    DropMidAnswer,
    /// Waits this long, then forwards and streams the answer back as
    /// usual: a node whose answers are slow (what live search feels like
    /// on a busy cluster), for as long as the test wants.
    DelayThenForward(std::time::Duration),
}

/// A fault, the requests it applies to, and when it expires.
#[derive(Debug, Clone)]
pub struct Rule {
    on: Match,
    fault: Fault,
    /// 1-based: matching requests before this one pass untouched.
    starting_at: u64,
    /// How many requests get the fault; `None` never expires.
    times: Option<u64>,
}

impl Rule {
    /// `fault` for the next request `on` matches, once.
    pub fn new(on: Match, fault: Fault) -> Rule {
        Rule {
            on,
            fault,
            starting_at: 1,
            times: Some(1),
        }
    }

    /// For the next `n` matching requests instead of one.
    pub fn times(self, n: u64) -> Rule {
        Rule {
            times: Some(n),
            ..self
        }
    }

    /// For every matching request, never expiring.
    pub fn always(self) -> Rule {
        Rule {
            times: None,
            ..self
        }
    }

    /// Lets the first `k - 1` matching requests through: the fault starts
    /// with the k-th (`starting_at(2)`: "the 2nd `_bulk`").
    pub fn starting_at(self, k: u64) -> Rule {
        assert!(k >= 1, "starting_at counts from 1");
        Rule {
            starting_at: k,
            ..self
        }
    }
}

/// A rule's counters, as the test reads them; the proxy holds a clone.
#[derive(Clone)]
pub struct RuleHandle(Arc<RuleState>);

struct RuleState {
    rule: Rule,
    matched: AtomicU64,
    fired: AtomicU64,
}

impl RuleHandle {
    pub(super) fn new(rule: Rule) -> RuleHandle {
        RuleHandle(Arc::new(RuleState {
            rule,
            matched: AtomicU64::new(0),
            fired: AtomicU64::new(0),
        }))
    }

    /// Requests the rule's [`Match`] took, whether the fault applied or not.
    pub fn matched(&self) -> u64 {
        self.0.matched.load(Relaxed)
    }

    /// Requests the fault was applied to.
    pub fn fired(&self) -> u64 {
        self.0.fired.load(Relaxed)
    }
}

/// The fault for a request of `method` to `target` (path and query): that
/// of the first due rule in `rules`. Counts the request in every rule that
/// matches it, due or not, so that `starting_at` counts all matches.
pub(super) fn pick(rules: &[RuleHandle], method: &Method, target: &str) -> Option<Fault> {
    let mut chosen = None;
    for RuleHandle(state) in rules.iter().filter(|h| h.0.rule.on.matches(method, target)) {
        let nth = state.matched.fetch_add(1, Relaxed) + 1;
        let rule = &state.rule;
        let left = rule.times.is_none_or(|t| state.fired.load(Relaxed) < t);
        if chosen.is_none() && nth >= rule.starting_at && left {
            state.fired.fetch_add(1, Relaxed);
            chosen = Some(rule.fault);
        }
    }
    chosen
}
