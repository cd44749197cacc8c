//! Routes: which of the routes reading a partition take each record, and to which URL.
//!
//! - [`Matcher`] (pure): a record against the routes of its topic; each route's filter, then
//!   its rules in order (first match wins), then its default or skip. Expressions are CEL,
//!   compiled once by `config::routes`; the record's variables are built only when an
//!   expression reads them ([`variables`]).
//! - [`fanout`]: one partition's records shared out to a worker per route ("lane"), each with
//!   its own order, retries and failure policy; the partition's committable offset is the
//!   lowest offset some lane that took it has not acknowledged.

use std::sync::Arc;

use http::Uri;
use tracing::debug;

use crate::config::{CloudEventsSettings, Expression, RouteSettings, Rule};
use crate::delivery::Deliverer;
use crate::ops::Metrics;
use crate::partition::WorkerSettings;
use crate::record::Record;

pub mod fanout;
pub mod variables;

pub use fanout::{FanOut, Lane};

/// A route at run time: what it takes, how it delivers, and its metrics (with a `route`
/// label when the config has `routes:`).
pub struct Route {
    pub matching: RouteMatch,
    pub topics: Vec<String>,
    /// No filter and no rules: a partition read by this route alone needs no fanout.
    pub takes_everything: bool,
    pub deliverer: Arc<Deliverer>,
    pub settings: Arc<WorkerSettings>,
    pub metrics: Metrics,
    /// `format: cloudevents` attributes of plain records and the default content type, for
    /// the `ce` variable.
    pub cloudevents: CloudEventsSettings,
    pub content_type: String,
}

impl Route {
    /// Whether this route reads `topic`.
    pub fn reads(&self, topic: &str) -> bool {
        self.topics.iter().any(|read| read == topic)
    }
}

/// What one route does with a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The route does not take it.
    Skip,
    /// The route takes it to this URL (`None`: the route's `delivery.url`).
    Deliver(Option<Uri>),
}

/// One route's filter and rules.
#[derive(Debug, Clone)]
pub struct RouteMatch {
    pub name: Arc<str>,
    filter: Option<Expression>,
    rules: Vec<Rule>,
    default: Option<Uri>,
}

impl RouteMatch {
    pub fn new(route: &RouteSettings) -> Self {
        Self {
            name: route.name.clone(),
            filter: route.filter.clone(),
            rules: route.rules.clone(),
            default: route.default.clone(),
        }
    }

    fn expressions(&self) -> impl Iterator<Item = &Expression> {
        self.filter
            .iter()
            .chain(self.rules.iter().map(|rule| &rule.condition))
    }
}

/// The routes of one topic, and what their expressions read.
pub struct Matcher {
    routes: Vec<RouteMatch>,
    /// The CEL functions; each record's variables live in a scope over it.
    root: cel::Context<'static, 'static>,
    reads: variables::Reads,
    /// How a plain record would be wrapped as a CloudEvent (its `ce` variable).
    cloudevents: CloudEventsSettings,
    content_type: String,
    metrics: Metrics,
}

impl Matcher {
    /// `routes` in lane order; `cloudevents` and `content_type` give the `ce` attributes of a
    /// record that is not a CloudEvent (as `format: cloudevents` would wrap it).
    pub fn new(
        routes: Vec<RouteMatch>,
        cloudevents: CloudEventsSettings,
        content_type: String,
        metrics: Metrics,
    ) -> Self {
        let reads = variables::Reads::of(routes.iter().flat_map(RouteMatch::expressions));
        Self {
            routes,
            root: cel::Context::default(),
            reads,
            cloudevents,
            content_type,
            metrics,
        }
    }

    /// The routes, in lane order.
    pub fn routes(&self) -> &[RouteMatch] {
        &self.routes
    }

    /// What each route (in lane order) does with `record`, written to `decisions`.
    pub fn decide(&self, record: &Record, decisions: &mut Vec<Decision>) {
        decisions.clear();
        let mut scope = self.root.new_inner_scope();
        variables::add(
            &mut scope,
            record,
            &self.reads,
            &self.cloudevents,
            &self.content_type,
        );
        for route in &self.routes {
            decisions.push(self.route_decision(route, &scope, record));
        }
    }

    fn route_decision(
        &self,
        route: &RouteMatch,
        scope: &cel::Context<'_, '_>,
        record: &Record,
    ) -> Decision {
        if let Some(filter) = &route.filter {
            if !self.holds(route, filter, scope, record) {
                return Decision::Skip;
            }
        }
        if route.rules.is_empty() {
            return Decision::Deliver(None);
        }
        for rule in &route.rules {
            if self.holds(route, &rule.condition, scope, record) {
                return Decision::Deliver(Some(rule.uri.clone()));
            }
        }
        match &route.default {
            Some(uri) => Decision::Deliver(Some(uri.clone())),
            None => Decision::Skip,
        }
    }

    /// Whether `expression` is `true` for the record; an error (a missing map key, a type
    /// mismatch) or a value that is not a boolean counts as `false`, and is counted.
    fn holds(
        &self,
        route: &RouteMatch,
        expression: &Expression,
        scope: &cel::Context<'_, '_>,
        record: &Record,
    ) -> bool {
        match expression.program.execute(scope) {
            Ok(cel::Value::Bool(holds)) => holds,
            other => {
                self.metrics
                    .route_filter_errors
                    .with_label_values(&[&route.name])
                    .inc();
                debug!(
                    route = %route.name,
                    expression = %expression.source,
                    topic = %record.topic,
                    partition = record.partition,
                    offset = record.offset,
                    result = ?other.map(|value| value.type_of()),
                    "Route expression did not give true or false; taken as false"
                );
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn matcher(routes: &str) -> Matcher {
        let text = format!(
            "kafka: {{bootstrap_servers: 'k:9092', group_id: g, topics: [orders]}}\n\
             delivery: {{url: 'http://app:8080/'}}\n{routes}"
        );
        let settings = Config::from_yaml(&text, |_| None)
            .and_then(|config| config.settings())
            .expect("valid config");
        Matcher::new(
            settings.routes.iter().map(RouteMatch::new).collect(),
            settings.delivery.format.cloudevents.clone(),
            "application/json".into(),
            Metrics::new(),
        )
    }

    fn decide(matcher: &Matcher, record: &Record) -> Vec<Decision> {
        let mut decisions = Vec::new();
        matcher.decide(record, &mut decisions);
        decisions
    }

    fn to(path: &str) -> Decision {
        Decision::Deliver(Some(format!("http://app:8080{path}").parse().expect("uri")))
    }

    /// A Kafka binary-mode CloudEvent of `event_type` with header `env: prod`.
    fn binary_event(event_type: &str) -> Record {
        binary_event_with(event_type, &[("env", b"prod")])
    }

    /// A Kafka binary-mode CloudEvent of `event_type` with `extra` headers.
    fn binary_event_with(event_type: &str, extra: &[(&str, &[u8])]) -> Record {
        let mut headers: Vec<(&str, &[u8])> = vec![
            ("ce_specversion", b"1.0"),
            ("ce_id", b"1"),
            ("ce_source", b"/shop"),
            ("ce_type", event_type.as_bytes()),
        ];
        headers.extend_from_slice(extra);
        Record {
            headers: Record::example_headers(&headers),
            ..Record::example()
        }
    }

    #[test]
    fn first_matching_rule_wins_then_the_default() {
        let matcher = matcher(
            "routes: [{name: shop, rules: [\
               {match: 'ce.type == \"order.created\"', path: /created},\
               {match: 'ce.type.startsWith(\"order.\")', path: /orders}], default: /other}]",
        );
        assert_eq!(
            decide(&matcher, &binary_event("order.created")),
            [to("/created")]
        );
        assert_eq!(
            decide(&matcher, &binary_event("order.paid")),
            [to("/orders")]
        );
        assert_eq!(decide(&matcher, &binary_event("user.new")), [to("/other")]);
    }

    #[test]
    fn filters_skip_and_errors_count_as_false() {
        let matcher = matcher(
            "routes: [\
               {name: prod, filter: 'headers[\"env\"] != \"test\"'},\
               {name: keyed, filter: 'key == \"k-1\" && partition == 2 && offset == 41'},\
               {name: strict, rules: [{match: 'headers[\"missing\"] == \"x\"', path: /x}]}]",
        );
        let record = binary_event("a");
        assert_eq!(
            decide(&matcher, &record),
            [
                Decision::Deliver(None),
                Decision::Deliver(None),
                Decision::Skip
            ]
        );
        let test = Record {
            headers: Record::example_headers(&[("env", b"test")]),
            key: None,
            ..Record::example()
        };
        assert_eq!(
            decide(&matcher, &test),
            [Decision::Skip, Decision::Skip, Decision::Skip]
        );
        let errors = matcher
            .metrics
            .route_filter_errors
            .with_label_values(&["strict"])
            .get();
        assert_eq!(errors, 2, "a missing header is an error, taken as false");
    }

    #[test]
    fn presence_tests_and_lists_work_as_the_readme_says() {
        let matcher = matcher(
            "routes: [{name: a, rules: [\
               {match: 'has(ce.subject)', path: /subject},\
               {match: '\"env\" in headers && headers[\"env\"] == \"prod\"', path: /prod},\
               {match: 'ce.type in [\"x\", \"a\"]', path: /listed}]}]",
        );
        assert_eq!(decide(&matcher, &binary_event("a")), [to("/prod")]);
        let no_env = binary_event_with("a", &[]);
        assert_eq!(decide(&matcher, &no_env), [to("/listed")]);
        let with_subject = binary_event_with("a", &[("ce_subject", b"s")]);
        assert_eq!(decide(&matcher, &with_subject), [to("/subject")]);
        let errors = matcher
            .metrics
            .route_filter_errors
            .with_label_values(&["a"])
            .get();
        assert_eq!(errors, 0, "presence tests never fail");
    }

    #[test]
    fn plain_records_have_the_attributes_they_would_be_wrapped_in() {
        let matcher = matcher(
            "routes: [{name: a, rules: [{match: 'ce.source == \"/kafka/orders\" && ce.type == \"com.example.record\"', path: /wrapped}]}]",
        );
        let mut settings = matcher.cloudevents.clone();
        settings.source = "/kafka/{topic}".into();
        settings.event_type = "com.example.record".into();
        let matcher = Matcher {
            cloudevents: settings,
            ..matcher
        };
        assert_eq!(decide(&matcher, &Record::example()), [to("/wrapped")]);
    }

    #[test]
    fn json_values_and_structured_events_can_be_matched() {
        let matcher = matcher(
            "routes: [{name: a, rules: [\
               {match: 'value.kind == \"test\"', path: /test},\
               {match: 'ce.type == \"s.t\" && ce.subject == \"x\"', path: /structured}]}]",
        );
        let json = Record {
            value: Some(bytes::Bytes::from_static(br#"{"kind":"test","n":1}"#)),
            ..Record::example()
        };
        assert_eq!(decide(&matcher, &json), [to("/test")]);
        let structured = Record {
            headers: Record::example_headers(&[("content-type", b"application/cloudevents+json")]),
            value: Some(bytes::Bytes::from_static(
                br#"{"specversion":"1.0","id":"1","source":"/s","type":"s.t","subject":"x","data":{"a":1}}"#,
            )),
            ..Record::example()
        };
        assert_eq!(decide(&matcher, &structured), [to("/structured")]);
        let binary_value = Record {
            value: Some(bytes::Bytes::from_static(&[0xff, 0x00, 0x7b])),
            ..Record::example()
        };
        assert_eq!(
            decide(&matcher, &binary_value),
            [Decision::Skip],
            "not JSON: value is null, the rules are false"
        );
    }
}
