//! A small price table: list prices in US dollars per million tokens, by
//! model-name prefix. Unknown models (and local ones) are counted in tokens
//! only (cost 0).

/// (provider, model prefix, input $/Mtok, output $/Mtok); the longest
/// matching prefix wins.
const PRICES: &[(&str, &str, f64, f64)] = &[
    ("anthropic", "claude-opus-4", 15.0, 75.0),
    ("anthropic", "claude-opus-4-5", 5.0, 25.0),
    ("anthropic", "claude-sonnet-4", 3.0, 15.0),
    ("anthropic", "claude-3-7-sonnet", 3.0, 15.0),
    ("anthropic", "claude-3-5-sonnet", 3.0, 15.0),
    ("anthropic", "claude-haiku-4-5", 1.0, 5.0),
    ("anthropic", "claude-3-5-haiku", 0.8, 4.0),
    ("anthropic", "claude-3-haiku", 0.25, 1.25),
    ("openai", "gpt-4o", 2.5, 10.0),
    ("openai", "gpt-4o-mini", 0.15, 0.6),
    ("openai", "gpt-4.1", 2.0, 8.0),
    ("openai", "gpt-4.1-mini", 0.4, 1.6),
    ("openai", "gpt-4.1-nano", 0.1, 0.4),
    ("openai", "o3", 2.0, 8.0),
    ("openai", "o4-mini", 1.1, 4.4),
    ("openai", "gpt-5", 1.25, 10.0),
    ("openai", "gpt-5-mini", 0.25, 2.0),
];

/// Cost of `input` and `output` tokens of `provider:model` in millionths of a
/// dollar; `None` when the model is not in the table.
pub fn cost_micro_usd(provider: &str, model: &str, input: u64, output: u64) -> Option<u64> {
    let (_, _, pin, pout) = PRICES
        .iter()
        .filter(|(p, prefix, _, _)| *p == provider && model.starts_with(prefix))
        .max_by_key(|(_, prefix, _, _)| prefix.len())?;
    // $/Mtok is exactly micro-dollars per token.
    Some((input as f64 * pin + output as f64 * pout).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_wins_and_unknown_models_have_no_price() {
        assert_eq!(cost_micro_usd("anthropic", "claude-sonnet-4-5-20250929", 1000, 100), Some(4500));
        assert_eq!(cost_micro_usd("openai", "gpt-4o-mini-2024-07-18", 1_000_000, 0), Some(150_000));
        assert_eq!(cost_micro_usd("ollama", "llama3", 10, 10), None);
        assert_eq!(cost_micro_usd("openai", "my-finetune", 10, 10), None);
    }
}
