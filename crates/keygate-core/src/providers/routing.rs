//! Model groups: the deployments that serve one model name, their weights and health, and the
//! fallback models tried after them. Built once per config load, next to the routes.
//!
//! Which deployment a request tries, and what happens after a failure, is [`Attempts`]' job;
//! this module only holds the static shape (groups, fallback chains) and the shared health.
//! A group of one deployment and no fallbacks is served as a plain route: no state is read or
//! written for it on the request path.

mod attempts;
mod health;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;

use http::HeaderValue;

use super::route::ModelRoute;
use crate::config::{Byok, ModelConfig, Price, RouterConfig};

pub use attempts::{retry_reason, Attempts};
use health::Health;

/// Most deployments one group may have (a request tracks the ones it tried in a bit set).
pub const MAX_DEPLOYMENTS: usize = 64;

/// Why the models cannot be grouped as configured.
#[derive(Debug, thiserror::Error)]
pub enum RoutingError {
    /// A fallback names no configured model.
    #[error("models[{index}].fallbacks: `{fallback}` is not a configured model (model `{model}`)")]
    UnknownFallback {
        /// Position of the entry in `models:`.
        index: usize,
        /// The entry's model name.
        model: String,
        /// The unknown name.
        fallback: String,
    },
    /// A model lists itself as its fallback.
    #[error("models[{index}].fallbacks: model `{model}` cannot fall back to itself")]
    SelfFallback {
        /// Position of the entry in `models:`.
        index: usize,
        /// The entry's model name.
        model: String,
    },
    /// Deployments of one group disagree on `byok`: a caller's key would be sent to some only.
    #[error(
        "models[{index}].byok: every deployment of model `{model}` must have the same byok policy"
    )]
    ByokMismatch {
        /// Position of the entry in `models:`.
        index: usize,
        /// The entry's model name.
        model: String,
    },
    /// A fallback needs the caller's own key, which a fallback never gets.
    #[error("models[{index}].fallbacks: `{fallback}` has `byok: require` and cannot serve as a fallback (a caller's own key is only sent to the model it names)")]
    FallbackRequiresByok {
        /// Position of the entry in `models:`.
        index: usize,
        /// The fallback's name.
        fallback: String,
    },
    /// A group has more deployments than [`MAX_DEPLOYMENTS`].
    #[error("model `{0}` has more than 64 deployments")]
    TooManyDeployments(String),
}

/// Every model group of a config, and the retry policy they share.
#[derive(Debug)]
pub struct Routing {
    groups: Vec<ModelGroup>,
    /// Looked up on every request (foldhash: the names are the operator's).
    by_name: HashMap<String, usize, foldhash::fast::RandomState>,
    policy: RouterConfig,
}

/// The deployments of one model name, and the models to fall back to.
#[derive(Debug)]
pub struct ModelGroup {
    name: String,
    deployments: Vec<Deployment>,
    /// Groups a request visits after this one, in order: the fallbacks depth first (a
    /// fallback's own fallbacks right after it), each group at most once, this one never.
    chain: Vec<usize>,
    /// The highest price any deployment this group's requests may reach charges (its own
    /// and its fallbacks'), per kind of token: what a budget reservation is made at.
    reserve_price: Option<Price>,
}

/// One deployment of a group: a route, its share of traffic and its health.
#[derive(Debug)]
pub struct Deployment {
    /// The route (provider, upstream model, keys, timeout, price).
    pub route: Arc<ModelRoute>,
    /// `{name}#{n}`, n counting the group's entries from 0 in config order: sent back in
    /// `x-keygate-deployment` and used in logs and metrics.
    pub id: HeaderValue,
    weight: f64,
    health: Health,
}

impl Routing {
    /// Groups `routes` (built from `models`, same order) by name and resolves fallbacks.
    pub fn build(
        models: &[ModelConfig],
        routes: &[Arc<ModelRoute>],
        policy: &RouterConfig,
    ) -> Result<Self, RoutingError> {
        let mut by_name: HashMap<String, usize, foldhash::fast::RandomState> = HashMap::default();
        let mut groups: Vec<ModelGroup> = Vec::new();
        let mut first_entry: Vec<usize> = Vec::new();
        for (index, (config, route)) in models.iter().zip(routes).enumerate() {
            let g = *by_name.entry(config.name.clone()).or_insert_with(|| {
                groups.push(ModelGroup {
                    name: config.name.clone(),
                    deployments: Vec::new(),
                    chain: Vec::new(),
                    reserve_price: None,
                });
                first_entry.push(index);
                groups.len() - 1
            });
            let group = &mut groups[g];
            if group.deployments.len() == MAX_DEPLOYMENTS {
                return Err(RoutingError::TooManyDeployments(config.name.clone()));
            }
            if group
                .deployments
                .first()
                .is_some_and(|first| first.route.byok != route.byok)
            {
                return Err(RoutingError::ByokMismatch {
                    index,
                    model: config.name.clone(),
                });
            }
            let id = format!("{}#{}", config.name, group.deployments.len());
            group.deployments.push(Deployment {
                route: route.clone(),
                id: HeaderValue::from_str(&id)
                    .unwrap_or_else(|_| HeaderValue::from_static("(unprintable)")),
                weight: config.weight,
                health: Health::default(),
            });
        }
        let mut fallbacks: Vec<Vec<usize>> = vec![Vec::new(); groups.len()];
        for (index, config) in models.iter().enumerate() {
            let g = by_name[&config.name];
            for name in &config.fallbacks {
                let Some(&f) = by_name.get(name) else {
                    return Err(RoutingError::UnknownFallback {
                        index,
                        model: config.name.clone(),
                        fallback: name.clone(),
                    });
                };
                if groups[f].primary().byok == Byok::Require {
                    return Err(RoutingError::FallbackRequiresByok {
                        index,
                        fallback: name.clone(),
                    });
                }
                if f == g {
                    return Err(RoutingError::SelfFallback {
                        index,
                        model: config.name.clone(),
                    });
                }
                if !fallbacks[g].contains(&f) {
                    fallbacks[g].push(f);
                }
            }
        }
        for (g, group) in groups.iter_mut().enumerate() {
            group.chain = chain(g, &fallbacks);
        }
        let own: Vec<Option<Price>> = groups
            .iter()
            .map(|group| {
                group
                    .deployments
                    .iter()
                    .fold(None, |max, d| highest(max, d.route.effective_price))
            })
            .collect();
        for (g, group) in groups.iter_mut().enumerate() {
            group.reserve_price = group
                .chain
                .iter()
                .fold(own[g], |max, &f| highest(max, own[f]));
        }
        Ok(Self {
            groups,
            by_name,
            policy: policy.clone(),
        })
    }

    /// The group clients call `name`.
    pub fn group(&self, name: &str) -> Option<&ModelGroup> {
        self.by_name.get(name).map(|&g| &self.groups[g])
    }

    /// The groups in config order (of their first entry).
    pub fn groups(&self) -> &[ModelGroup] {
        &self.groups
    }
}

impl ModelGroup {
    /// The name clients call it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The price a budget reservation is made at: the highest any deployment of this group or
    /// of its fallbacks charges, so whichever serves, the cost stays within the reservation.
    pub fn reserve_price(&self) -> Option<Price> {
        self.reserve_price
    }

    /// The first deployment in config order: its entry sets the group's `byok` policy, and the
    /// virtual key's scope is checked against it.
    pub fn primary(&self) -> &Arc<ModelRoute> {
        // A group is only ever created with its first deployment.
        &self.deployments[0].route
    }

    /// The deployments in config order.
    pub fn deployments(&self) -> &[Deployment] {
        &self.deployments
    }

    /// The names of the groups a request may fall back to, in the order they are tried.
    pub fn fallback_names<'a>(&'a self, routing: &'a Routing) -> impl Iterator<Item = &'a str> {
        self.chain.iter().map(|&g| routing.groups[g].name.as_str())
    }
}

impl Deployment {
    /// `{name}#{n}`, as text.
    pub fn label(&self) -> &str {
        self.id.to_str().unwrap_or("")
    }
}

/// The higher of two prices, per kind of token (an unpriced model costs nothing).
fn highest(a: Option<Price>, b: Option<Price>) -> Option<Price> {
    match (a, b) {
        (Some(a), Some(b)) => Some(Price {
            input_per_mtok: a.input_per_mtok.max(b.input_per_mtok),
            output_per_mtok: a.output_per_mtok.max(b.output_per_mtok),
            cached_input_per_mtok: Some(
                a.cached_input_per_mtok
                    .unwrap_or(a.input_per_mtok)
                    .max(b.cached_input_per_mtok.unwrap_or(b.input_per_mtok)),
            ),
        }),
        (a, None) => a,
        (None, b) => b,
    }
}

/// The groups visited after `start`, in order: depth first over `fallbacks`, each once.
fn chain(start: usize, fallbacks: &[Vec<usize>]) -> Vec<usize> {
    let mut seen = vec![false; fallbacks.len()];
    seen[start] = true;
    let mut order = Vec::new();
    // A stack of (group, next fallback to look at), instead of recursion.
    let mut stack = vec![(start, 0usize)];
    while let Some((g, next)) = stack.pop() {
        let Some(&f) = fallbacks[g].get(next) else {
            continue;
        };
        stack.push((g, next + 1));
        if !seen[f] {
            seen[f] = true;
            order.push(f);
            stack.push((f, 0));
        }
    }
    order
}
