//! The built-in tasks by name, for the command line and for configs read from JSON.

use std::collections::BTreeMap;

use ndarray::ArrayView3;
use serde_json::Value;

use super::{DelayedDiscrimination, MatchToCategory, PerceptualDiscrimination, Task, TaskSpec, TrialBatch};
use crate::error::{Error, Result};
use crate::io::NpyArray;
use crate::rng::TrialRng;

/// One of the built-in tasks, chosen by its kebab-case name.
#[derive(Clone, Debug)]
pub enum BuiltinTask {
    /// `perceptual-discrimination`.
    PerceptualDiscrimination(PerceptualDiscrimination),
    /// `delayed-discrimination`.
    DelayedDiscrimination(DelayedDiscrimination),
    /// `match-to-category`.
    MatchToCategory(MatchToCategory),
}

impl BuiltinTask {
    /// The names accepted by [`BuiltinTask::new`].
    pub const NAMES: [&'static str; 3] = [
        "perceptual-discrimination",
        "delayed-discrimination",
        "match-to-category",
    ];

    /// Builds a task from its name and a JSON object of PsychRNN constructor arguments
    /// (`dt`, `tau`, `T`, `N_batch`, `coherence`, …; missing keys take the defaults).
    pub fn new(name: &str, config: &Value) -> Result<Self> {
        let parse = |what: &str| -> Result<Value> {
            if config.is_null() {
                Ok(Value::Object(Default::default()))
            } else if config.is_object() {
                Ok(config.clone())
            } else {
                Err(Error::Config {
                    path: what.into(),
                    message: "task config must be a JSON object".into(),
                })
            }
        };
        let cfg = parse("task config")?;
        let de = |e: serde_json::Error| Error::Config {
            path: "task config".into(),
            message: e.to_string(),
        };
        Ok(match name {
            "perceptual-discrimination" => {
                Self::PerceptualDiscrimination(PerceptualDiscrimination::new(serde_json::from_value(cfg).map_err(de)?)?)
            }
            "delayed-discrimination" => {
                Self::DelayedDiscrimination(DelayedDiscrimination::new(serde_json::from_value(cfg).map_err(de)?)?)
            }
            "match-to-category" => {
                Self::MatchToCategory(MatchToCategory::new(serde_json::from_value(cfg).map_err(de)?)?)
            }
            _ => {
                return Err(Error::Unknown {
                    kind: "task",
                    name: name.into(),
                    known: Self::NAMES.join(", "),
                });
            }
        })
    }

    /// Calls `visitor` with the concrete task (for generic code such as training).
    pub fn visit<V: TaskVisitor>(&self, visitor: V) -> V::Output {
        match self {
            Self::PerceptualDiscrimination(t) => visitor.visit(t),
            Self::DelayedDiscrimination(t) => visitor.visit(t),
            Self::MatchToCategory(t) => visitor.visit(t),
        }
    }

    /// Sizes and time grid.
    pub fn spec(&self) -> &TaskSpec {
        match self {
            Self::PerceptualDiscrimination(t) => t.spec(),
            Self::DelayedDiscrimination(t) => t.spec(),
            Self::MatchToCategory(t) => t.spec(),
        }
    }

    /// A batch with its trial parameters as JSON objects (PsychRNN's keys): drawn when `trials` is
    /// `None`, else exactly the given JSON array of trial-parameter objects.
    pub fn batch_json(&self, rng: &mut TrialRng, trials: Option<&Value>) -> Result<TrialBatch<Value>> {
        match self {
            Self::PerceptualDiscrimination(t) => json_batch(t, rng, trials),
            Self::DelayedDiscrimination(t) => json_batch(t, rng, trials),
            Self::MatchToCategory(t) => json_batch(t, rng, trials),
        }
    }

    /// The task's accuracy of `output` against `target` under `mask`, all `[batch, time, n_out]`.
    pub fn accuracy(&self, target: ArrayView3<'_, f32>, output: ArrayView3<'_, f32>, mask: ArrayView3<'_, f32>) -> f64 {
        match self {
            Self::PerceptualDiscrimination(t) => t.accuracy(target, output, mask),
            Self::DelayedDiscrimination(t) => t.accuracy(target, output, mask),
            Self::MatchToCategory(t) => t.accuracy(target, output, mask),
        }
    }
}

/// Generic code run on the concrete task behind a [`BuiltinTask`].
pub trait TaskVisitor {
    /// What the visit returns.
    type Output;
    /// Runs on the task.
    fn visit<T: Task>(self, task: &T) -> Self::Output;
}

fn json_batch<T: Task>(task: &T, rng: &mut TrialRng, trials: Option<&Value>) -> Result<TrialBatch<Value>> {
    let batch = match trials {
        None => task.batch(rng),
        Some(v) => {
            let params: Vec<T::Params> = serde_json::from_value(v.clone()).map_err(|e| Error::Config {
                path: "trials".into(),
                message: e.to_string(),
            })?;
            task.batch_from_params(params, rng)?
        }
    };
    let params = batch
        .params
        .iter()
        .map(|p| serde_json::to_value(p).expect("trial params serialise"))
        .collect();
    Ok(TrialBatch {
        x: batch.x,
        y: batch.y,
        mask: batch.mask,
        params,
        dt: batch.dt,
    })
}

/// Trial parameters as `p_<key>` arrays (PsychRNN's key names): int64 when every value of a key
/// is an integer, float64 otherwise.
pub fn params_to_arrays(params: &[Value]) -> Vec<(String, NpyArray)> {
    let mut columns: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for p in params {
        if let Value::Object(map) = p {
            for (k, v) in map {
                columns.entry(k.clone()).or_default().push(v);
            }
        }
    }
    columns
        .into_iter()
        .filter(|(_, vs)| vs.len() == params.len() && vs.iter().all(|v| v.is_number()))
        .map(|(k, vs)| {
            let array = if vs.iter().all(|v| v.is_i64()) {
                NpyArray {
                    shape: vec![vs.len()],
                    data: crate::io::NpyData::I64(vs.iter().map(|v| v.as_i64().expect("checked")).collect()),
                }
            } else {
                NpyArray::from_f64(
                    vec![vs.len()],
                    vs.iter().map(|v| v.as_f64().expect("checked")).collect(),
                )
            };
            (format!("p_{k}"), array)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_task_and_bad_config_are_errors() {
        assert!(matches!(
            BuiltinTask::new("go-no-go", &Value::Null),
            Err(Error::Unknown { .. })
        ));
        let err = BuiltinTask::new("perceptual-discrimination", &json!({"dt": 10, "coherance": 0.3})).unwrap_err();
        assert!(err.to_string().contains("coherance"), "{err}");
        let err = BuiltinTask::new("delayed-discrimination", &json!({"dt": -1})).unwrap_err();
        assert!(matches!(err, Error::OutOfRange { ref field, .. } if field == "dt"));
    }

    #[test]
    fn explicit_trials_and_param_arrays() {
        let task = BuiltinTask::new("perceptual-discrimination", &json!({"T": 1000})).unwrap();
        let trials = json!([
            {"coherence": 0.1, "direction": 0, "onset_time": 100.0, "stim_duration": 200.0, "stim_noise": 0.0},
            {"coherence": 0.7, "direction": 1, "onset_time": 150.5, "stim_duration": 300.0, "stim_noise": 0.0}
        ]);
        let b = task.batch_json(&mut TrialRng::seeded(0), Some(&trials)).unwrap();
        assert_eq!(b.x.shape(), &[2, 100, 2]);
        let arrays = params_to_arrays(&b.params);
        let keys: Vec<_> = arrays.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "p_coherence",
                "p_direction",
                "p_onset_time",
                "p_stim_duration",
                "p_stim_noise"
            ]
        );
        assert_eq!(arrays[1].1.data, crate::io::NpyData::I64(vec![0, 1]));
        assert_eq!(arrays[2].1.to_f64_vec().unwrap(), vec![100.0, 150.5]);
        let err = task
            .batch_json(&mut TrialRng::seeded(0), Some(&json!([{"coherence": 0.1}])))
            .unwrap_err();
        assert!(matches!(err, Error::Config { .. }));
    }
}
