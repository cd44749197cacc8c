//! The `routes:` section: several subscriptions in one sidecar, each with the topics it reads,
//! an optional CEL filter, rules that pick a path per record (first match wins), and its own
//! delivery settings over the top-level `delivery`. Validation compiles every expression
//! once, so a syntax error or an unknown variable stops the program naming the route and the
//! position. Pure: the routing stage evaluates them.

use std::sync::Arc;

use http::Uri;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::settings::DeliverySettings;
use super::{invalid, ConfigError, DeliveryConfig};

/// What a CEL expression may name: the record's topic, partition, offset, timestamp
/// (milliseconds, or null), key (text), headers (a map of text), `ce` (its CloudEvents
/// attributes, or those of the event the sidecar would wrap it in) and `value` (the value
/// parsed as JSON, null when it is not JSON).
pub const VARIABLES: [&str; 8] = [
    "topic",
    "partition",
    "offset",
    "timestamp",
    "key",
    "headers",
    "ce",
    "value",
];

/// One route: a subscription with its own filter, paths and delivery settings.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// The route's name in metrics (`route` label) and logs: letters, digits, `-` and `_`.
    pub name: String,
    /// Topics this route reads, each one of `kafka.topics`; empty = all of them.
    #[serde(default)]
    pub topics: Vec<String>,
    /// A consumer group of the route's own: its topics are read by a consumer of their own
    /// in this group, with its own commits, rebalances and lag, independent of the other
    /// routes (routes naming the same group share that consumer). Absent = `kafka.group_id`.
    #[serde(default)]
    pub group_id: Option<String>,
    /// A CEL expression; the route takes only the records for which it is `true` (an
    /// expression that fails on a record, e.g. a missing header, counts as `false`).
    #[serde(default)]
    pub filter: Option<String>,
    /// Rules tried in order; the first whose `match` is `true` gives the record's path.
    /// Absent = every record the route takes goes to its `delivery.url`.
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    /// Where a record goes when rules are given and none matched: a path on the route's
    /// `delivery.url`, or `skip` (the default: the route does not take the record).
    #[serde(default)]
    pub default: Option<String>,
    /// This route's delivery settings over the top-level `delivery`: any key of `delivery`,
    /// maps merged key by key (e.g. only `retry.max_attempts`), other values replaced.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Map<String, serde_json::Value>>")]
    pub delivery: Option<serde_yaml::Mapping>,
}

/// A rule of a route.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// A CEL expression over the record.
    #[serde(rename = "match")]
    pub condition: String,
    /// The path (starting with `/`, a query allowed) on the route's `delivery.url` that
    /// matching records are posted to.
    pub path: String,
}

/// A compiled CEL expression and its text (for errors and logs).
#[derive(Clone)]
pub struct Expression {
    pub source: String,
    pub program: Arc<cel::Program>,
    /// The variables it reads (a subset of [`VARIABLES`]).
    pub variables: Vec<String>,
}

impl std::fmt::Debug for Expression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Expression").field(&self.source).finish()
    }
}

/// A rule, validated.
#[derive(Debug, Clone)]
pub struct Rule {
    pub condition: Expression,
    pub uri: Uri,
}

/// A route, validated.
#[derive(Debug, Clone)]
pub struct RouteSettings {
    pub name: Arc<str>,
    /// The topics it reads (resolved: never empty).
    pub topics: Vec<String>,
    /// Its own consumer group; `None` = `kafka.group_id`.
    pub group_id: Option<String>,
    pub filter: Option<Expression>,
    pub rules: Vec<Rule>,
    /// Where a record goes when rules are given and none matched; `None` = skipped.
    pub default: Option<Uri>,
    pub delivery: DeliverySettings,
}

impl RouteSettings {
    /// The one route of a config without `routes:`: every topic, every record, to
    /// `delivery.url`.
    pub fn everything(topics: &[String], delivery: DeliverySettings) -> RouteSettings {
        RouteSettings {
            name: Arc::from("default"),
            topics: topics.to_vec(),
            group_id: None,
            filter: None,
            rules: Vec::new(),
            default: None,
            delivery,
        }
    }

    /// Whether the route takes every record of its topics unchanged (no filter, no rules).
    pub fn takes_everything(&self) -> bool {
        self.filter.is_none() && self.rules.is_empty()
    }
}

/// Validates `routes` against the consumed topics and the top-level `delivery` (which each
/// route's `delivery` overrides). Empty `routes` = the one route of `delivery`.
pub(super) fn validate(
    routes: &[RouteConfig],
    group_id: &str,
    topics: &[String],
    delivery: &DeliveryConfig,
    top: &DeliverySettings,
) -> Result<Vec<RouteSettings>, ConfigError> {
    if routes.is_empty() {
        return Ok(vec![RouteSettings::everything(topics, top.clone())]);
    }
    let base = serde_yaml::to_value(delivery)
        .map_err(|error| invalid("delivery", format!("cannot be merged into routes: {error}")))?;
    let mut validated: Vec<RouteSettings> = Vec::with_capacity(routes.len());
    for (index, route) in routes.iter().enumerate() {
        let name = route.name.as_str();
        let key = format!("routes[{name}]");
        if name.is_empty()
            || name.len() > 64
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
        {
            return Err(invalid(
                &format!("routes[{index}].name"),
                "must be 1 to 64 letters, digits, `-` or `_`",
            ));
        }
        if validated.iter().any(|other| &*other.name == name) {
            return Err(invalid(&format!("{key}.name"), "is used by two routes"));
        }
        for topic in &route.topics {
            if !topics.contains(topic) {
                return Err(invalid(
                    &format!("{key}.topics"),
                    format!("`{topic}` is not one of kafka.topics; add it there"),
                ));
            }
        }
        let route_topics = if route.topics.is_empty() {
            topics.to_vec()
        } else {
            route.topics.clone()
        };
        let delivery = route_delivery(&base, route.delivery.as_ref(), &key, topics)?;
        let filter = route
            .filter
            .as_deref()
            .map(|source| compile(source, &format!("{key}.filter")))
            .transpose()?;
        let mut rules = Vec::with_capacity(route.rules.len());
        for (position, rule) in route.rules.iter().enumerate() {
            let rule_key = format!("{key}.rules[{position}]");
            rules.push(Rule {
                condition: compile(&rule.condition, &format!("{rule_key}.match"))?,
                uri: with_path(
                    &delivery.endpoint.uri,
                    &rule.path,
                    &format!("{rule_key}.path"),
                )?,
            });
        }
        let default = match route.default.as_deref() {
            None | Some("skip") => None,
            Some(path) => Some(with_path(
                &delivery.endpoint.uri,
                path,
                &format!("{key}.default"),
            )?),
        };
        if route.default.is_some() && rules.is_empty() {
            return Err(invalid(
                &format!("{key}.default"),
                "applies only when rules are given; remove it or add rules",
            ));
        }
        if !rules.is_empty() && delivery.batch.is_some() {
            return Err(invalid(
                &format!("{key}.rules"),
                "cannot be combined with delivery.batch (a batch is one request to one URL); make one batched route per path with a filter instead",
            ));
        }
        let route_group = match route.group_id.as_deref().map(str::trim) {
            None => None,
            Some("") => {
                return Err(invalid(
                    &format!("{key}.group_id"),
                    "is empty; remove it to use kafka.group_id",
                ))
            }
            Some(group) if group == group_id => None,
            Some(group) => Some(group.to_string()),
        };
        validated.push(RouteSettings {
            name: Arc::from(name),
            topics: route_topics,
            group_id: route_group,
            filter,
            rules,
            default,
            delivery,
        });
    }
    for topic in topics {
        if !validated.iter().any(|route| route.topics.contains(topic)) {
            return Err(invalid(
                "routes",
                format!("no route reads kafka.topics `{topic}`; add it to a route or remove it"),
            ));
        }
    }
    Ok(validated)
}

/// The top-level `delivery` (as YAML) with the route's keys merged over it, validated. Errors
/// name the route's keys.
fn route_delivery(
    base: &serde_yaml::Value,
    overrides: Option<&serde_yaml::Mapping>,
    key: &str,
    topics: &[String],
) -> Result<DeliverySettings, ConfigError> {
    let mut merged = base.clone();
    if let Some(overrides) = overrides {
        merge(&mut merged, &serde_yaml::Value::Mapping(overrides.clone()));
    }
    let config: DeliveryConfig = serde_yaml::from_value(merged)
        .map_err(|error| invalid(&format!("{key}.delivery"), error.to_string()))?;
    config.validate(topics).map_err(|error| match error {
        ConfigError::Invalid {
            key: inner,
            message,
        } => ConfigError::Invalid {
            key: format!("{key}.{inner}"),
            message,
        },
        other => other,
    })
}

/// Merges `over` into `into`: maps key by key (recursively), anything else replaced.
fn merge(into: &mut serde_yaml::Value, over: &serde_yaml::Value) {
    match (into, over) {
        (serde_yaml::Value::Mapping(into), serde_yaml::Value::Mapping(over)) => {
            for (key, value) in over {
                match into.get_mut(key) {
                    Some(existing) if existing.is_mapping() && value.is_mapping() => {
                        merge(existing, value)
                    }
                    _ => {
                        into.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (into, over) => *into = over.clone(),
    }
}

/// Compiles a CEL expression; the error gives the position and names unknown variables.
pub fn compile(source: &str, key: &str) -> Result<Expression, ConfigError> {
    let program = cel::Program::compile(source).map_err(|errors| {
        let first = errors.errors.first().map_or_else(
            || "is not a valid CEL expression".to_string(),
            |error| {
                format!(
                    "CEL syntax error at line {}, column {}: {}",
                    error.pos.0, error.pos.1, error.msg
                )
            },
        );
        invalid(key, first)
    })?;
    let references = program.references();
    let mut variables: Vec<String> = references
        .variables()
        .into_iter()
        .map(str::to_string)
        .collect();
    variables.sort();
    variables.dedup();
    if let Some(unknown) = variables
        .iter()
        .find(|name| !VARIABLES.contains(&name.as_str()))
    {
        return Err(invalid(
            key,
            format!(
                "CEL expression names `{unknown}`, which is not a record variable; use one of {}",
                VARIABLES.join(", ")
            ),
        ));
    }
    Ok(Expression {
        source: source.to_string(),
        program: Arc::new(program),
        variables,
    })
}

/// `path` (with its query) on the scheme and host of `base`.
fn with_path(base: &Uri, path: &str, key: &str) -> Result<Uri, ConfigError> {
    if !path.starts_with('/') {
        return Err(invalid(
            key,
            "must be a path starting with `/` (on the route's delivery.url)",
        ));
    }
    let mut parts = base.clone().into_parts();
    parts.path_and_query = Some(
        path.parse()
            .map_err(|_| invalid(key, "is not a valid URL path"))?,
    );
    Uri::from_parts(parts).map_err(|_| invalid(key, "does not make a valid URL"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn config(routes: &str) -> Result<crate::config::Settings, ConfigError> {
        let text = format!(
            "kafka: {{bootstrap_servers: 'k:9092', group_id: g, topics: [orders, users]}}\n\
             delivery: {{url: 'http://app:8080/events', retry: {{max_attempts: 3}}}}\n{routes}"
        );
        Config::from_yaml(&text, |_| None).and_then(|config| config.settings())
    }

    fn message(result: Result<crate::config::Settings, ConfigError>) -> String {
        match result {
            Err(error) => error.to_string(),
            Ok(_) => panic!("expected an error"),
        }
    }

    #[test]
    fn no_routes_is_one_route_of_every_topic() {
        let settings = config("").expect("valid");
        assert_eq!(settings.routes.len(), 1);
        assert!(settings.routes[0].takes_everything());
        assert_eq!(settings.routes[0].topics, ["orders", "users"]);
    }

    #[test]
    fn route_delivery_merges_over_the_top_level() {
        let settings = config(
            "routes:\n\
             - name: audit\n  topics: [users]\n  delivery: {url: 'http://audit:9000/in', retry: {initial_backoff: 50ms}}\n\
             - name: orders\n  topics: [orders]\n  rules: [{match: 'ce.type == \"order.created\"', path: /created?v=1}]\n  default: /other\n",
        )
        .expect("valid");
        let audit = &settings.routes[0];
        assert_eq!(audit.delivery.endpoint.uri, "http://audit:9000/in");
        assert_eq!(
            audit.delivery.retry.max_attempts, 3,
            "kept from the top level"
        );
        assert_eq!(
            audit.delivery.retry.initial_backoff,
            std::time::Duration::from_millis(50)
        );
        let orders = &settings.routes[1];
        assert_eq!(orders.rules[0].uri, "http://app:8080/created?v=1");
        assert_eq!(
            orders.default.as_ref().map(ToString::to_string).as_deref(),
            Some("http://app:8080/other")
        );
        assert_eq!(orders.rules[0].condition.variables, ["ce"]);
        assert_eq!(audit.group_id, None);
    }

    #[test]
    fn a_route_may_name_a_group_of_its_own() {
        let settings = config(
            "routes: [{name: main}, {name: audit, group_id: g-audit}, {name: same, group_id: g}]",
        )
        .expect("valid");
        let groups: Vec<Option<&str>> = settings
            .routes
            .iter()
            .map(|route| route.group_id.as_deref())
            .collect();
        assert_eq!(
            groups,
            [None, Some("g-audit"), None],
            "kafka.group_id is no group of its own"
        );
    }

    #[test]
    fn a_syntax_error_names_the_route_and_the_position() {
        let text = message(config(
            "routes: [{name: orders, rules: [{match: 'topic == ', path: /x}]}]",
        ));
        assert!(
            text.contains("routes[orders].rules[0].match") && text.contains("line 1, column 10"),
            "{text}"
        );
    }

    #[test]
    fn unknown_variables_are_named() {
        let text = message(config("routes: [{name: a, filter: 'tpoic == \"x\"'}]"));
        assert!(
            text.contains("routes[a].filter") && text.contains("`tpoic`"),
            "{text}"
        );
    }

    #[test]
    fn route_errors_name_their_keys() {
        let cases = [
            ("routes: [{name: 'a b'}]", "routes[0].name"),
            ("routes: [{name: a}, {name: a}]", "routes[a].name"),
            ("routes: [{name: a, topics: [nope]}]", "routes[a].topics"),
            ("routes: [{name: a, topics: [orders]}]", "no route reads kafka.topics `users`"),
            ("routes: [{name: a, default: /x}]", "routes[a].default"),
            ("routes: [{name: a, group_id: ' '}]", "routes[a].group_id"),
            (
                "routes: [{name: a, rules: [{match: 'true', path: x}]}]",
                "routes[a].rules[0].path",
            ),
            (
                "routes: [{name: a, delivery: {retry: {max_backoff: 1ms}}}]",
                "routes[a].delivery.retry.max_backoff",
            ),
            ("routes: [{name: a, delivery: {nope: 1}}]", "routes[a].delivery"),
            (
                "routes: [{name: a, rules: [{match: 'true', path: /x}], delivery: {batch: {max_records: 10}}}]",
                "routes[a].rules",
            ),
        ];
        for (routes, expected) in cases {
            let text = message(config(routes));
            assert!(text.contains(expected), "{routes}: {text}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2_000))]
        #[test]
        fn compiling_random_cel_like_text_never_panics(
            source in "[a-z\\[\\](){}.,:?!=<>&|+*/%'\" 0-9\\\\-]{0,40}"
        ) {
            let _ = compile(&source, "k");
        }
    }

    #[test]
    fn compiling_arbitrary_text_never_panics() {
        for source in [
            "",
            "(",
            ")",
            "[[[[",
            "a.b.c(",
            "'unterminated",
            "1 +",
            "?:",
            "\u{0}",
            "ce.",
            "{",
            "headers[",
            "!!!!",
            "1 ? 2",
            "a in",
            "💥",
        ] {
            let _ = compile(source, "k");
        }
    }
}
