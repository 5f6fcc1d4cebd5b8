//! [`Recipe`]: the way back to one timeline of an exploration, and its one-line form.
//!
//! A timeline of an exploration is its root seed's run, reseeded at each split point on its way:
//! at the `position`-th assertion evaluation of the run, every random stream was replaced by the
//! same stream of a child `seed` (see `kernel::rng`). Replaying a recipe runs exactly that, in one
//! process, without forking: `MOONPOOL_RECIPE=<recipe>` or
//! [`SimulationBuilder::replay_recipe`](super::SimulationBuilder::replay_recipe).
//!
//! The one-line form is the root seed, then `/position:seed` per split point, the child seed in
//! 16 hexadecimal digits: `4242/12:9e3779b97f4a7c15/31:00000000deadbeef`. A recipe without split
//! points is a plain seed (`4242`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One split point of a recipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecipeStep {
    /// The assertion evaluation (counted from the start of the run, 1-based) after which the
    /// streams were reseeded.
    pub position: u64,
    /// The seed they were reseeded with.
    pub seed: u64,
}

/// The root seed and the split points that lead to one timeline of an exploration.
///
/// At each step's `position` (its parent's count of assertion evaluations), every random stream
/// of the run was replaced by the same stream of the step's `seed`; replaying does the same in one
/// process, without forking (`MOONPOOL_RECIPE=<recipe>` or
/// [`SimulationBuilder::replay_recipe`](super::SimulationBuilder::replay_recipe)). The one-line
/// form (`Display`, `FromStr`, and the JSON string) is the root seed, then `/position:seed` per
/// step with the seed in 16 hexadecimal digits: `4242/12:9e3779b97f4a7c15/31:00000000deadbeef`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Recipe {
    /// The root seed.
    pub seed: u64,
    /// The split points, in order.
    pub steps: Vec<RecipeStep>,
}

impl Recipe {
    /// The reseeds a world makes to replay it: (position, seed).
    pub(crate) fn reseeds(&self) -> Vec<(u64, u64)> {
        self.steps.iter().map(|s| (s.position, s.seed)).collect()
    }
}

impl fmt::Display for Recipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.seed)?;
        for step in &self.steps {
            write!(f, "/{}:{:016x}", step.position, step.seed)?;
        }
        Ok(())
    }
}

/// Why a text is not a [`Recipe`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "'{text}' is not a recipe: {reason} (expected seed/position:hexseed/..., e.g. 42/7:00000000000000ff)"
)]
pub struct RecipeError {
    text: String,
    reason: String,
}

fn digits(text: &str) -> Option<u64> {
    (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

impl FromStr for Recipe {
    type Err = RecipeError;

    fn from_str(text: &str) -> Result<Self, RecipeError> {
        let fail = |reason: String| RecipeError {
            text: text.to_string(),
            reason,
        };
        let mut parts = text.split('/');
        let root = parts.next().unwrap_or_default();
        let seed = digits(root)
            .ok_or_else(|| fail(format!("the root seed '{root}' is not decimal digits")))?;
        let mut steps: Vec<RecipeStep> = Vec::new();
        for part in parts {
            let (position, child) = part
                .split_once(':')
                .ok_or_else(|| fail(format!("the step '{part}' has no ':'")))?;
            let position = digits(position)
                .ok_or_else(|| fail(format!("the position '{position}' is not decimal digits")))?;
            let hex = !child.is_empty()
                && child.len() <= 16
                && child.bytes().all(|b| b.is_ascii_hexdigit());
            let child = hex
                .then(|| u64::from_str_radix(child, 16).ok())
                .flatten()
                .ok_or_else(|| {
                    fail(format!(
                        "the seed '{child}' is not 1 to 16 hexadecimal digits"
                    ))
                })?;
            if let Some(last) = steps.last()
                && last.position >= position
            {
                return Err(fail(format!(
                    "the positions do not increase ({} then {position})",
                    last.position
                )));
            }
            steps.push(RecipeStep {
                position,
                seed: child,
            });
        }
        Ok(Recipe { seed, steps })
    }
}

impl Serialize for Recipe {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Recipe {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The one-line replay command of `recipe`, from the simulation's replay template: its
/// `MOONPOOL_SEED={seed}` becomes `MOONPOOL_RECIPE=<recipe>` (a template without it is prefixed
/// with the variable; `{recipe}` in a template stands for the recipe).
#[cfg(any(feature = "explorer", test))]
pub(super) fn recipe_command(template: &str, recipe: &Recipe) -> String {
    let text = recipe.to_string();
    if template.contains("{recipe}") {
        return template
            .replace("{recipe}", &text)
            .replace("{seed}", &recipe.seed.to_string());
    }
    if template.contains("MOONPOOL_SEED={seed}") {
        return template.replace("MOONPOOL_SEED={seed}", &format!("MOONPOOL_RECIPE={text}"));
    }
    format!(
        "MOONPOOL_RECIPE={text} {}",
        template.replace("{seed}", &recipe.seed.to_string())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_recipes_round_trip_and_bad_ones_are_named() {
        let recipe = Recipe {
            seed: 4242,
            steps: vec![
                RecipeStep {
                    position: 12,
                    seed: 0x9e37_79b9_7f4a_7c15,
                },
                RecipeStep {
                    position: 31,
                    seed: 0xdead_beef,
                },
            ],
        };
        let text = recipe.to_string();
        assert_eq!(text, "4242/12:9e3779b97f4a7c15/31:00000000deadbeef");
        assert_eq!(text.parse::<Recipe>().unwrap(), recipe);
        assert_eq!("7".parse::<Recipe>().unwrap().steps, vec![]);
        let json = serde_json::to_string(&recipe).unwrap();
        assert_eq!(serde_json::from_str::<Recipe>(&json).unwrap(), recipe);
        for bad in [
            "",
            "x",
            "-1",
            "1/",
            "1/2",
            "1/a:ff",
            "1/2:",
            "1/2:xyz",
            "1/2:00000000000000000",
            "1/5:1/5:2",
            "1/5:1/4:2",
            " 1",
        ] {
            let error = bad.parse::<Recipe>().unwrap_err().to_string();
            assert!(error.contains("is not a recipe"), "{bad}: {error}");
        }
    }

    #[test]
    fn test_recipe_commands_follow_the_template() {
        let recipe: Recipe = "9/3:00000000000000ff".parse().unwrap();
        assert_eq!(
            recipe_command(
                "MOONPOOL_SEED={seed} cargo nextest run -E 'test(=t)'",
                &recipe
            ),
            "MOONPOOL_RECIPE=9/3:00000000000000ff cargo nextest run -E 'test(=t)'"
        );
        assert_eq!(
            recipe_command("my-runner --seed {seed}", &recipe),
            "MOONPOOL_RECIPE=9/3:00000000000000ff my-runner --seed 9"
        );
        assert_eq!(
            recipe_command("run --recipe {recipe}", &recipe),
            "run --recipe 9/3:00000000000000ff"
        );
    }
}
