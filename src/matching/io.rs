//! Files of the matching: writing a [`MatchReport`] next to a table, and reading a compare folder
//! back into a [`SimilarityTable`].

use std::fmt::Write as _;
use std::path::Path;

use ndarray::Array2;
use ndarray_npy::ReadNpyExt;

use super::{Assignment, MatchError, MatchReport};
use crate::fsutil::atomic_write;
use crate::similarity::{LayerRange, Measure, SimilarityTable, UnitInfo};

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> MatchError + '_ {
    move |e| MatchError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

fn invalid(path: &Path, message: impl Into<String>) -> MatchError {
    MatchError::Invalid {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn write(path: &Path, text: &str) -> Result<(), MatchError> {
    atomic_write(path, text.as_bytes()).map_err(io_err(path))
}

fn cells(u: &UnitInfo) -> String {
    format!("{},{},{}", u.flat, u.layer, u.channel)
}

/// Writes `matches.csv`, `assignment.csv`, `buddies.csv` and `matching.json` into `dir` (created
/// if needed), each atomically. `report` must come from [`super::match_table`] on `table`.
///
/// - matches.csv: one row per unit of A then of B: `network,flat,layer,channel,best_flat,
///   best_layer,best_channel,score,rank,buddy,rosetta_buddy` (best fields empty for no match).
///   `buddy`: the best match ranks this unit first (strict buddies); `rosetta_buddy`: it ranks
///   it within its top k (for B's rows this mirrors the A -> B Rosetta rule).
/// - assignment.csv: `scope,flat_a,layer_a,channel_a,flat_b,layer_b,channel_b,score,dead`;
///   scope `all` for the whole-table assignment, `layer_a|layer_b` for a per-layer one.
/// - buddies.csv: `kind,flat_a,layer_a,channel_a,flat_b,layer_b,channel_b,score,rank`, kind
///   `strict` or `rosetta`.
/// - matching.json: options, unit counts, assignment totals, buddy fractions, counts per layer
///   pair, top pairs overall and per layer pair.
pub fn write_match_outputs(
    report: &MatchReport,
    table: &SimilarityTable,
    dir: &Path,
) -> Result<(), MatchError> {
    let (n, m) = table.values.dim();
    if report.best_a.len() != n || report.best_b.len() != m || table.rows.len() != n {
        return Err(invalid(
            dir,
            "the match report does not belong to this table",
        ));
    }
    if table.cols.len() != m {
        return Err(invalid(dir, "table has fewer unit records than columns"));
    }
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let k = report.options.k;
    let mut text = String::from(
        "network,flat,layer,channel,best_flat,best_layer,best_channel,score,rank,buddy,rosetta_buddy\n",
    );
    let sides = [
        ("a", &report.best_a, &table.rows, &table.cols),
        ("b", &report.best_b, &table.cols, &table.rows),
    ];
    for (network, best, own, other) in sides {
        for (m, u) in best.iter().zip(own.iter()) {
            let (partner, rank) = m.best.map_or((",,,,".to_string(), 0), |p| {
                let o = &other[p.flat];
                let cells = format!(
                    "{},{},{},{},{}",
                    o.flat, o.layer, o.channel, p.score, p.rank
                );
                (cells, p.rank)
            });
            let (buddy, rosetta) = (m.best.is_some() && rank == 1, m.best.is_some() && rank <= k);
            let _ = writeln!(text, "{network},{},{partner},{buddy},{rosetta}", cells(u));
        }
    }
    write(&dir.join("matches.csv"), &text)?;

    let mut text =
        String::from("scope,flat_a,layer_a,channel_a,flat_b,layer_b,channel_b,score,dead\n");
    let scoped = std::iter::once(("all".to_string(), &report.assignment))
        .chain((report.layer_assignments.iter()).map(|(la, lb, a)| (format!("{la}|{lb}"), a)));
    for (scope, a) in scoped {
        for &(i, j, score) in &a.pairs {
            let (u, v) = (&table.rows[i], &table.cols[j]);
            let dead = u.dead || v.dead;
            let _ = writeln!(text, "{scope},{},{},{score},{dead}", cells(u), cells(v));
        }
    }
    write(&dir.join("assignment.csv"), &text)?;

    let mut text =
        String::from("kind,flat_a,layer_a,channel_a,flat_b,layer_b,channel_b,score,rank\n");
    for (kind, pairs) in [("strict", &report.strict), ("rosetta", &report.rosetta)] {
        for p in pairs.iter() {
            let (u, v) = (&table.rows[p.a], &table.cols[p.b]);
            let _ = writeln!(
                text,
                "{kind},{},{},{},{}",
                cells(u),
                cells(v),
                p.score,
                p.rank
            );
        }
    }
    write(&dir.join("buddies.csv"), &text)?;

    let totals = |a: &Assignment| serde_json::json!({"pairs": a.pairs.len(), "total": a.total, "mean": a.mean, "dead": a.dead});
    let live = |u: &[UnitInfo]| u.iter().filter(|u| !u.dead).count();
    let json = serde_json::json!({
        "kind": "unitmatch.match",
        "measure": table.measure,
        "options": report.options,
        "units_a": n,
        "units_b": m,
        "live_a": live(&table.rows),
        "live_b": live(&table.cols),
        "strict_buddies": report.strict.len(),
        "rosetta_buddies": report.rosetta.len(),
        "fraction_with_buddy": report.fractions,
        "assignment": totals(&report.assignment),
        "layer_pairs": report.layer_pairs,
        "layer_assignments": report.layer_assignments.iter().map(|(la, lb, a)| {
            serde_json::json!({"layer_a": la, "layer_b": lb, "assignment": totals(a)})
        }).collect::<Vec<_>>(),
        "top_pairs": report.top_pairs,
        "layer_top_pairs": report.layer_top_pairs.iter().map(|(la, lb, p)| {
            serde_json::json!({"layer_a": la, "layer_b": lb, "pairs": p})
        }).collect::<Vec<_>>(),
    });
    let text = serde_json::to_string_pretty(&json).unwrap_or_default();
    write(&dir.join("matching.json"), &text)
}

/// Units of one `units_*.csv` (format of `compare`: `flat,layer,channel,mean,std,dead`) and its
/// layer blocks, in file order; `first_layer` numbers the blocks' `layer` field.
fn read_units(
    path: &Path,
    network: &str,
    first_layer: usize,
) -> Result<(Vec<UnitInfo>, Vec<LayerRange>), MatchError> {
    let text = std::fs::read_to_string(path).map_err(io_err(path))?;
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    const HEADER: &str = "flat,layer,channel,mean,std,dead";
    if lines.next().map(|(_, l)| l.trim()) != Some(HEADER) {
        return Err(invalid(path, format!("expected the header `{HEADER}`")));
    }
    let (mut units, mut ranges) = (Vec::<UnitInfo>::new(), Vec::<LayerRange>::new());
    for (n, line) in lines {
        let bad = |what: &str| invalid(path, format!("line {}: {what}: `{line}`", n + 1));
        let f: Vec<&str> = line.trim().split(',').collect();
        let [flat, layer, channel, mean, std, dead] = f[..] else {
            return Err(bad("expected 6 fields"));
        };
        let unit = UnitInfo {
            flat: flat.parse().map_err(|_| bad("bad flat index"))?,
            network: network.to_string(),
            layer: layer.to_string(),
            channel: channel.parse().map_err(|_| bad("bad channel"))?,
            mean: mean.parse().map_err(|_| bad("bad mean"))?,
            std: std.parse().map_err(|_| bad("bad std"))?,
            dead: dead.parse().map_err(|_| bad("bad dead flag"))?,
        };
        if unit.flat != units.len() {
            return Err(bad(&format!("flat index should be {}", units.len())));
        }
        if let Some(r) = ranges.last_mut().filter(|r| r.name == unit.layer) {
            r.end += 1;
        } else if ranges.iter().any(|r| r.name == unit.layer) {
            return Err(bad("the layer's units are not contiguous"));
        } else {
            ranges.push(LayerRange {
                name: unit.layer.clone(),
                layer: first_layer + ranges.len(),
                start: units.len(),
                end: units.len() + 1,
            });
        }
        units.push(unit);
    }
    Ok((units, ranges))
}

/// Rebuilds the table of a compare folder: `table.npy` (float32, or float64), `units_a.csv`,
/// `units_b.csv` (layer blocks from the layer column, in order; A's layers numbered first, as in
/// the accumulator) and the measure from `run.json` (`inputs.measure`). Errors name the file.
pub fn load_table(dir: &Path) -> Result<SimilarityTable, MatchError> {
    let run = dir.join("run.json");
    let text = std::fs::read_to_string(&run).map_err(io_err(&run))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| invalid(&run, e.to_string()))?;
    let measure: Measure = serde_json::from_value(v["inputs"]["measure"].clone())
        .map_err(|e| invalid(&run, format!("inputs.measure: {e}")))?;
    let (rows, row_layers) = read_units(&dir.join("units_a.csv"), "a", 0)?;
    let (cols, col_layers) = read_units(&dir.join("units_b.csv"), "b", row_layers.len())?;
    let path = dir.join("table.npy");
    let bytes = std::fs::read(&path).map_err(io_err(&path))?;
    let values = match Array2::<f32>::read_npy(&bytes[..]) {
        Ok(a) => a.mapv(f64::from),
        Err(e) => Array2::<f64>::read_npy(&bytes[..]).map_err(|_| invalid(&path, e.to_string()))?,
    };
    if values.dim() != (rows.len(), cols.len()) {
        return Err(invalid(
            &path,
            format!(
                "shape {:?} does not match units_a.csv ({} units) x units_b.csv ({} units)",
                values.dim(),
                rows.len(),
                cols.len()
            ),
        ));
    }
    if let Some((ij, x)) = values.indexed_iter().find(|(_, x)| !x.is_finite()) {
        return Err(invalid(&path, format!("non-finite value {x} at {ij:?}")));
    }
    Ok(SimilarityTable {
        measure,
        rows,
        cols,
        values,
        row_layers,
        col_layers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matching::tests::make_table;
    use crate::matching::{MatchOptions, match_table};
    use ndarray_npy::WriteNpyExt;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn random_table(seed: u64) -> SimilarityTable {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let values = Array2::from_shape_fn((5, 4), |_| rng.random_range(-1.0..1.0));
        let mut t = make_table(
            values,
            &[("gen.block1", 3), ("gen.out", 2)],
            &[("gen.block1", 2), ("gen.out", 2)],
        );
        t.measure = Measure::Seed;
        t.rows[4].dead = true;
        t.values.row_mut(4).fill(0.0);
        t
    }

    /// Units CSV exactly as `compare` writes it.
    fn units_csv(units: &[UnitInfo]) -> String {
        let mut text = String::from("flat,layer,channel,mean,std,dead\n");
        for u in units {
            text.push_str(&format!(
                "{},{},{},{:.9e},{:.9e},{}\n",
                u.flat, u.layer, u.channel, u.mean, u.std, u.dead
            ));
        }
        text
    }

    fn write_folder(t: &SimilarityTable, dir: &Path) {
        let values: Array2<f32> = t.values.mapv(|v| v as f32);
        values
            .write_npy(std::fs::File::create(dir.join("table.npy")).unwrap())
            .unwrap();
        std::fs::write(dir.join("units_a.csv"), units_csv(&t.rows)).unwrap();
        std::fs::write(dir.join("units_b.csv"), units_csv(&t.cols)).unwrap();
        let run = serde_json::json!({"kind": "unitmatch.compare", "inputs": {"measure": "seed"}});
        std::fs::write(dir.join("run.json"), run.to_string()).unwrap();
    }

    fn error_of(dir: &Path) -> String {
        load_table(dir).unwrap_err().to_string()
    }

    #[test]
    fn load_table_round_trip_and_errors() {
        let t = random_table(11);
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        write_folder(&t, dir);
        let u = load_table(dir).unwrap();
        assert_eq!(u.measure, Measure::Seed);
        assert_eq!(u.values, t.values.mapv(|v| f64::from(v as f32)));
        assert_eq!(
            (u.row_layers.clone(), u.col_layers.clone()),
            (t.row_layers.clone(), t.col_layers.clone())
        );
        assert_eq!(u.col_layers[1].layer, 3);
        for (a, b) in u.rows.iter().zip(&t.rows).chain(u.cols.iter().zip(&t.cols)) {
            assert_eq!(
                (a.flat, &a.network, &a.layer, a.channel, a.dead),
                (b.flat, &b.network, &b.layer, b.channel, b.dead)
            );
            assert!((a.mean - b.mean).abs() < 1e-8 && (a.std - b.std).abs() < 1e-8);
        }
        assert_eq!((u.rows.len(), u.cols.len()), (5, 4));

        let csv = units_csv(&t.rows);
        // One unit fewer than table rows.
        let short: String = csv.lines().take(5).map(|l| format!("{l}\n")).collect();
        std::fs::write(dir.join("units_a.csv"), short).unwrap();
        let e = error_of(dir);
        assert!(e.contains("table.npy") && e.contains("units_a.csv"), "{e}");
        std::fs::write(
            dir.join("units_a.csv"),
            csv.replace("gen.out,1", "gen.out,x"),
        )
        .unwrap();
        let e = error_of(dir);
        assert!(
            e.contains("units_a.csv") && e.contains("line 6") && e.contains("channel"),
            "{e}"
        );
        let mixed = csv
            .replace("3,gen.out", "3,gen.block1")
            .replace("2,gen.block1", "2,gen.out");
        std::fs::write(dir.join("units_a.csv"), mixed).unwrap();
        let e = error_of(dir);
        assert!(e.contains("units_a.csv") && e.contains("contiguous"), "{e}");
        std::fs::write(dir.join("units_a.csv"), &csv).unwrap();
        std::fs::remove_file(dir.join("units_b.csv")).unwrap();
        assert!(error_of(dir).contains("units_b.csv"));
        write_folder(&t, dir);
        std::fs::write(dir.join("table.npy"), b"not numpy").unwrap();
        assert!(error_of(dir).contains("table.npy"));
        write_folder(&t, dir);
        std::fs::write(dir.join("run.json"), r#"{"inputs": {"measure": "cka"}}"#).unwrap();
        let e = error_of(dir);
        assert!(
            e.contains("run.json") && e.contains("inputs.measure"),
            "{e}"
        );
        std::fs::remove_file(dir.join("run.json")).unwrap();
        assert!(error_of(dir).contains("run.json"));
    }

    #[test]
    fn match_outputs_are_written() {
        let t = random_table(5);
        let opts = MatchOptions {
            k: 2,
            top_n: 3,
            ..MatchOptions::default()
        };
        let report = match_table(&t, &opts);
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("matching");
        write_match_outputs(&report, &t, &dir).unwrap();
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
        let matches = read("matches.csv");
        let lines: Vec<&str> = matches.lines().collect();
        assert_eq!(lines.len(), 1 + 5 + 4);
        assert!(lines[0].starts_with("network,flat,layer,channel,best_flat"));
        // A4 is dead: no best match, no buddy.
        assert_eq!(lines[5], "a,4,gen.out,1,,,,,,false,false");
        let strict_rows = lines[1..]
            .iter()
            .filter(|l| l.ends_with(",true,true"))
            .count();
        assert_eq!(strict_rows, 2 * report.strict.len());
        let assignment = read("assignment.csv");
        // 4 pairs over the whole table; per layer pair min(3,2) + min(3,2) + min(2,2) + min(2,2).
        assert_eq!(assignment.lines().count(), 1 + 4 + 2 + 2 + 2 + 2);
        assert_eq!(
            assignment.lines().filter(|l| l.starts_with("all,")).count(),
            4
        );
        assert_eq!(
            assignment
                .lines()
                .filter(|l| l.starts_with("gen.out|gen.block1,"))
                .count(),
            2
        );
        let buddies = read("buddies.csv");
        assert_eq!(
            buddies.lines().count(),
            1 + report.strict.len() + report.rosetta.len()
        );
        assert!(!report.strict.is_empty() && report.rosetta.len() >= report.strict.len());
        let json: serde_json::Value = serde_json::from_str(&read("matching.json")).unwrap();
        for key in [
            "options",
            "measure",
            "units_a",
            "units_b",
            "live_a",
            "strict_buddies",
            "rosetta_buddies",
            "fraction_with_buddy",
            "assignment",
            "layer_pairs",
            "layer_assignments",
            "top_pairs",
            "layer_top_pairs",
        ] {
            assert!(json.get(key).is_some(), "missing {key}");
        }
        assert_eq!(json["options"]["k"], 2);
        assert_eq!(json["live_a"], 4);
        assert_eq!(json["layer_pairs"].as_array().unwrap().len(), 4);
        assert_eq!(json["top_pairs"].as_array().unwrap().len(), 3);
        let total = json["assignment"]["total"].as_f64().unwrap();
        assert!((total - report.assignment.total).abs() < 1e-12);
        // The live 4x4 part fills the whole-table assignment; within (gen.out, *) the dead unit
        // is paired with the leftover column and marked.
        assert_eq!(json["assignment"]["dead"], 0);
        assert_eq!(json["layer_assignments"][2]["layer_a"], "gen.out");
        assert_eq!(json["layer_assignments"][2]["assignment"]["dead"], 1);
        assert_eq!(
            assignment.lines().filter(|l| l.ends_with(",true")).count(),
            2
        );
        let frac = json["fraction_with_buddy"]["strict_a"].as_f64().unwrap();
        assert!((frac - report.strict.len() as f64 / 4.0).abs() < 1e-12);
        // A report of another table is refused, naming the folder.
        let other = make_table(Array2::zeros((1, 1)), &[("x", 1)], &[("y", 1)]);
        let e = write_match_outputs(&report, &other, &dir)
            .unwrap_err()
            .to_string();
        assert!(e.contains("matching"), "{e}");
    }
}
