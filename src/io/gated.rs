//! LSTM/GRU weight files: PsychRNN's LSTM keys (`W_f`, `W_i`, `W_c`, `W_o`, `b_*`,
//! `init_hidden`, `init_cell`, `W_out`, `b_out`), plus `psychrnn/cell` naming the cell in files
//! psychrnn writes.

use ndarray::{Array1, Array2};

use super::{NpyArray, NpyData, WeightsFile};
use crate::error::{Error, Result};
use crate::model::{Cell, GatedRnn, GatedRnnConfig, GatedRnnParams};

const CELL_KEY: &str = "psychrnn/cell";

fn cell_code(cell: Cell) -> i64 {
    match cell {
        Cell::Lstm => 0,
        Cell::PsychrnnLstm => 1,
        Cell::Gru => 2,
    }
}

impl GatedRnn {
    /// Reads a gated network: a psychrnn file says its cell; a PsychRNN LSTM file (no
    /// `psychrnn/cell`) is [`Cell::PsychrnnLstm`] unless `cell` says otherwise. PsychRNN stores
    /// `init_hidden`/`init_cell` as `[N_batch, N_rec]`; row 0 is used, as its `LSTMSimulator` does.
    pub fn from_weights(file: &WeightsFile, cell: Option<Cell>, dt: f64) -> Result<Self> {
        let stored = match file.get(CELL_KEY).and_then(NpyArray::to_f64_vec).as_deref() {
            None => None,
            Some([c]) => Some(match *c as i64 {
                0 => Cell::Lstm,
                1 => Cell::PsychrnnLstm,
                2 => Cell::Gru,
                other => return Err(file.bad(CELL_KEY, format!("holds {other}, expected 0, 1 or 2"))),
            }),
            Some(_) => return Err(file.bad(CELL_KEY, "is not a scalar".into())),
        };
        let guessed = if file.get("W_z").is_some() {
            Cell::Gru
        } else {
            Cell::PsychrnnLstm
        };
        let cell = cell.or(stored).unwrap_or(guessed);
        let w_out = file.require("W_out")?;
        let (n_out, n) = match w_out.shape.as_slice() {
            [o, n] if *o > 0 && *n > 0 => (*o, *n),
            other => {
                return Err(Error::Shape {
                    field: format!("W_out in {}", file.source),
                    expected: vec![0, 0],
                    got: other.to_vec(),
                });
            }
        };
        let first = format!("W_{}", cell.gates()[0]);
        let rows = file.require(&first)?.shape.first().copied().unwrap_or(0);
        if rows <= n {
            return Err(Error::Shape {
                field: format!("{first} in {}", file.source),
                expected: vec![n + 1, n],
                got: file.require(&first)?.shape.clone(),
            });
        }
        let n_in = rows - n;
        // Row 0 of a `[rows, n]` initial state.
        let initial = |key: &str| -> Result<Array1<f32>> {
            let a = file.require(key)?;
            let ok = match a.shape.as_slice() {
                [m] => *m == n,
                [r, m] => *r >= 1 && *m == n,
                _ => false,
            };
            if !ok {
                return Err(Error::shape(format!("{key} in {}", file.source), &[1, n], &a.shape));
            }
            let v = a
                .to_f32_vec()
                .ok_or_else(|| file.bad(key, "is not a numeric array".into()))?;
            Ok(Array1::from(v[..n].to_vec()))
        };
        let matrix = |key: &str, r: usize, c: usize| -> Result<Array2<f32>> {
            Ok(Array2::from_shape_vec((r, c), file.matrix(key, &[r, c])?).expect("shape checked"))
        };
        let vector = |key: &str, len: usize| -> Result<Array1<f32>> { Ok(Array1::from(file.matrix(key, &[len])?)) };
        let params = GatedRnnParams {
            w_out: matrix("W_out", n_out, n)?,
            b_out: vector("b_out", n_out)?,
            init_hidden: initial("init_hidden")?,
            init_cell: if cell.has_cell_state() {
                initial("init_cell")?
            } else {
                Array1::zeros(0)
            },
            w_gates: cell
                .gates()
                .iter()
                .map(|g| matrix(&format!("W_{g}"), n + n_in, n))
                .collect::<Result<_>>()?,
            b_gates: cell
                .gates()
                .iter()
                .map(|g| vector(&format!("b_{g}"), n))
                .collect::<Result<_>>()?,
        };
        let config = GatedRnnConfig {
            cell,
            n_in,
            n_rec: n,
            n_out,
            dt,
            ..GatedRnnConfig::new(cell)
        };
        GatedRnn::from_parts(config, params)
    }

    /// The weights file: PsychRNN's LSTM keys (initial states as `[1, n_rec]`, which PsychRNN's
    /// `LSTMSimulator` reads) and `psychrnn/cell`.
    pub fn to_weights(&self) -> WeightsFile {
        let mut entries: Vec<(String, NpyArray)> = self
            .param_names()
            .into_iter()
            .zip(self.slices())
            .zip(self.param_shapes())
            .map(|((name, data), shape)| (name, NpyArray::from_f32(shape, data.to_vec())))
            .collect();
        entries.push((
            CELL_KEY.into(),
            NpyArray {
                shape: Vec::new(),
                data: NpyData::I64(vec![cell_code(self.config.cell)]),
            },
        ));
        WeightsFile {
            entries,
            source: "<memory>".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::TrialRng;

    #[test]
    fn gated_files_round_trip() {
        for cell in [Cell::Lstm, Cell::PsychrnnLstm, Cell::Gru] {
            let net = GatedRnnConfig {
                n_rec: 5,
                n_in: 3,
                ..GatedRnnConfig::new(cell)
            }
            .init(&mut TrialRng::seeded(2))
            .unwrap();
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("g.npz");
            net.to_weights().write(&path, false).unwrap();
            let back = GatedRnn::from_weights(&WeightsFile::read(&path).unwrap(), None, 10.0).unwrap();
            assert_eq!(back, net);
        }
    }

    #[test]
    fn psychrnn_lstm_file_uses_row_zero_of_the_initial_states() {
        let net = GatedRnnConfig {
            n_rec: 4,
            ..GatedRnnConfig::new(Cell::PsychrnnLstm)
        }
        .init(&mut TrialRng::seeded(3))
        .unwrap();
        let mut file = net.to_weights();
        file.entries.retain(|(k, _)| k != CELL_KEY);
        // PsychRNN's [N_batch, N_rec] layout, 3 batch slots.
        for (k, a) in file.entries.iter_mut() {
            if k.starts_with("init_") {
                let row = a.to_f32_vec().unwrap();
                *a = NpyArray::from_f32(vec![3, 4], [row.clone(), vec![9.0; 4], vec![9.0; 4]].concat());
            }
        }
        let back = GatedRnn::from_weights(&file, None, 10.0).unwrap();
        assert_eq!(back.config.cell, Cell::PsychrnnLstm);
        assert_eq!(back.params, net.params);
        file.entries.retain(|(k, _)| k != "W_o");
        assert!(matches!(
            GatedRnn::from_weights(&file, None, 10.0),
            Err(Error::MissingKey { .. })
        ));
    }
}
