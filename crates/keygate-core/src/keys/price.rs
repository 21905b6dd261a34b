//! What a request costs: USD per million tokens, from the model's `price` in the config or from
//! an embedded table of common OpenAI and Anthropic models (matched on the upstream model id,
//! longest prefix wins, so dated snapshots such as `gpt-4o-2024-08-06` find `gpt-4o`). A model
//! with no price costs nothing, and budgets do not limit it.

use crate::config::Price;
use crate::providers::translate::Usage;

/// (model id prefix, input, output, cached input) in USD per million tokens.
const TABLE: &[(&str, f64, f64, f64)] = &[
    ("gpt-4o-mini", 0.15, 0.60, 0.075),
    ("gpt-4o", 2.50, 10.00, 1.25),
    ("gpt-4.1-nano", 0.10, 0.40, 0.025),
    ("gpt-4.1-mini", 0.40, 1.60, 0.10),
    ("gpt-4.1", 2.00, 8.00, 0.50),
    ("gpt-4-turbo", 10.00, 30.00, 10.00),
    ("gpt-4", 30.00, 60.00, 30.00),
    ("gpt-3.5-turbo", 0.50, 1.50, 0.50),
    ("o1-mini", 1.10, 4.40, 0.55),
    ("o1", 15.00, 60.00, 7.50),
    ("o3-mini", 1.10, 4.40, 0.55),
    ("o3", 2.00, 8.00, 0.50),
    ("o4-mini", 1.10, 4.40, 0.275),
    ("text-embedding-3-small", 0.02, 0.0, 0.02),
    ("text-embedding-3-large", 0.13, 0.0, 0.13),
    ("text-embedding-ada-002", 0.10, 0.0, 0.10),
    ("claude-3-5-haiku", 0.80, 4.00, 0.08),
    ("claude-3-haiku", 0.25, 1.25, 0.03),
    ("claude-3-5-sonnet", 3.00, 15.00, 0.30),
    ("claude-3-7-sonnet", 3.00, 15.00, 0.30),
    ("claude-sonnet-4", 3.00, 15.00, 0.30),
    ("claude-3-opus", 15.00, 75.00, 1.50),
    ("claude-opus-4", 15.00, 75.00, 1.50),
    ("claude-haiku-4", 1.00, 5.00, 0.10),
];

/// The price of `upstream_model`: the configured one, else the table's.
pub fn price_of(configured: Option<Price>, upstream_model: &str) -> Option<Price> {
    configured.or_else(|| {
        TABLE
            .iter()
            .filter(|(prefix, ..)| upstream_model.starts_with(prefix))
            .max_by_key(|(prefix, ..)| prefix.len())
            .map(|&(_, input, output, cached)| Price {
                input_per_mtok: input,
                output_per_mtok: output,
                cached_input_per_mtok: Some(cached),
            })
    })
}

/// USD for `usage` at `price`.
pub fn cost(price: &Price, usage: &Usage) -> f64 {
    let cached = usage.cached_input_tokens.min(usage.input_tokens);
    let fresh = usage.input_tokens - cached;
    let cached_price = price.cached_input_per_mtok.unwrap_or(price.input_per_mtok);
    (fresh as f64 * price.input_per_mtok
        + cached as f64 * cached_price
        + usage.output_tokens as f64 * price.output_per_mtok)
        / 1_000_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_and_overrides() {
        let mini = price_of(None, "gpt-4o-mini-2024-07-18").unwrap();
        assert_eq!(mini.input_per_mtok, 0.15);
        assert_eq!(
            price_of(None, "gpt-4o-2024-08-06").unwrap().input_per_mtok,
            2.5
        );
        assert!(price_of(None, "llama3").is_none());
        let own = Price {
            input_per_mtok: 1.0,
            output_per_mtok: 2.0,
            cached_input_per_mtok: None,
        };
        assert_eq!(price_of(Some(own), "gpt-4o").unwrap().input_per_mtok, 1.0);
    }

    #[test]
    fn cost_counts_cached_tokens_at_their_price() {
        let price = price_of(None, "gpt-4o").unwrap();
        let usage = Usage {
            input_tokens: 1_000_000,
            output_tokens: 1_000_000,
            cached_input_tokens: 500_000,
        };
        let got = cost(&price, &usage);
        assert!((got - (1.25 + 0.625 + 10.0)).abs() < 1e-9, "{got}");
    }
}
