//! The report page: `page(&ReportData)` renders `index.html` from the report's data only, so
//! every number on the page is in `report.json`.
//!
//! The page is static and self-contained: inline CSS, one small inline script (click a table
//! header to sort; images that fail to load are marked and counted on `<body>` as
//! `data-broken-images`, script errors as `data-errors`), figures beside it, nothing from the
//! network. Every text from the inputs is escaped ([`escape`]).

use std::fmt::Write;

use super::gallery::GalleryPair;
use super::{PairRow, QualityRow, ReportData, SignificanceSection};

/// HTML-escapes `&`, `<`, `>`, `"` and `'`.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Section ids, in page order.
pub const SECTIONS: [&str; 11] = [
    "summary",
    "training",
    "table",
    "matches",
    "significance",
    "evolution",
    "cka",
    "quality",
    "classifier-match",
    "causal",
    "prune",
];

const STYLE: &str = "body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;\
color:#222}h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}\
table{border-collapse:collapse;margin:.8em 0;font-size:.9em}th,td{border:1px solid #ccc;\
padding:.25em .6em;text-align:right}th{background:#f3f3f3;cursor:pointer}td.l,th.l{text-align:left}\
img{max-width:100%;border:1px solid #eee}.figs{display:flex;flex-wrap:wrap;gap:1em}\
.figs figure{margin:0;flex:1 1 45%}figcaption{font-size:.85em;color:#555}.note{background:#fff8e1;\
padding:.6em;border-left:4px solid #f0c040}.yes{color:#1a7f37;font-weight:bold}\
.no{color:#b42318;font-weight:bold}.unk{color:#666}.broken{outline:3px solid red}";

/// Counts errors and broken images onto `<body>`, then makes every table sortable.
const SCRIPT: &str = r#"
window.__errors = 0;
window.addEventListener('error', function () { window.__errors++; }, true);
window.addEventListener('load', function () {
  var broken = 0, imgs = document.images;
  for (var i = 0; i < imgs.length; i++) {
    if (!imgs[i].complete || imgs[i].naturalWidth === 0) { broken++; imgs[i].classList.add('broken'); }
  }
  document.body.setAttribute('data-images', imgs.length);
  document.body.setAttribute('data-broken-images', broken);
  document.body.setAttribute('data-errors', window.__errors);
  document.body.setAttribute('data-loaded', '1');
});
document.addEventListener('click', function (ev) {
  var th = ev.target.closest('th');
  if (!th) return;
  var table = th.closest('table'), body = table.tBodies[0], col = th.cellIndex;
  var asc = th.getAttribute('data-dir') !== 'asc';
  th.setAttribute('data-dir', asc ? 'asc' : 'desc');
  var rows = Array.prototype.slice.call(body.rows);
  rows.sort(function (a, b) {
    var x = a.cells[col].getAttribute('data-v') || a.cells[col].textContent;
    var y = b.cells[col].getAttribute('data-v') || b.cells[col].textContent;
    var nx = parseFloat(x), ny = parseFloat(y);
    var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
    return asc ? c : -c;
  });
  rows.forEach(function (r) { body.appendChild(r); });
});
"#;

fn num(v: f64, digits: usize) -> String {
    if v.is_finite() {
        format!("{v:.digits$}")
    } else {
        "n/a".into()
    }
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("n/a".into(), |v| num(v, digits))
}

/// A sortable table: header names (the first `left` columns left-aligned) and rows of cells.
fn table(out: &mut String, header: &[&str], left: usize, rows: &[Vec<String>]) {
    out.push_str("<table><thead><tr>");
    for (i, h) in header.iter().enumerate() {
        let class = if i < left { " class=\"l\"" } else { "" };
        let _ = write!(out, "<th{class}>{}</th>", escape(h));
    }
    out.push_str("</tr></thead><tbody>");
    for r in rows {
        out.push_str("<tr>");
        for (i, c) in r.iter().enumerate() {
            let class = if i < left { " class=\"l\"" } else { "" };
            let _ = write!(out, "<td{class}>{}</td>", escape(c));
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>\n");
}

fn figure(out: &mut String, src: &str, caption: &str) {
    let _ = write!(
        out,
        "<figure><img src=\"{}\" alt=\"{}\"><figcaption>{}</figcaption></figure>",
        escape(src),
        escape(caption),
        escape(caption)
    );
}

fn missing(out: &mut String, data: &ReportData, section: &str) -> bool {
    let notes: Vec<&String> = data
        .missing
        .iter()
        .filter(|(s, _)| s == section)
        .map(|(_, n)| n)
        .collect();
    for n in &notes {
        let _ = write!(out, "<p class=\"note\">Not shown: {}</p>", escape(n));
    }
    !notes.is_empty()
}

fn pair_rows(pairs: &[PairRow]) -> Vec<Vec<String>> {
    let yes = |b: bool| if b { "yes" } else { "" }.to_string();
    pairs
        .iter()
        .map(|p| {
            vec![
                p.unit_a.clone(),
                p.unit_b.clone(),
                num(p.score, 3),
                p.rank.to_string(),
                yes(p.strict_buddy),
                yes(p.rosetta_buddy),
                opt(p.p[0], 3),
                opt(p.p[1], 3),
            ]
        })
        .collect()
}

const PAIR_HEADER: [&str; 8] = [
    "unit of A",
    "unit of B",
    "r",
    "rank in B's column",
    "strict buddy",
    "Rosetta buddy",
    "p (random-init)",
    "p (permuted-z)",
];

/// A row of gallery figures, each captioned with its units, score and chosen z; `b` prefixes
/// B's unit name.
fn gallery_figures(o: &mut String, list: &[GalleryPair], b: &str) {
    o.push_str("<div class=\"figs\">");
    for g in list {
        figure(
            o,
            &g.figure,
            &format!(
                "A {} / {b}{}: r = {}, on z #{}: {}",
                g.unit_a,
                g.unit_b,
                num(g.score, 3),
                g.sample,
                num(g.sample_score, 3)
            ),
        );
    }
    o.push_str("</div>");
}

/// The significance rows: one per null model and layer pair.
fn significance_table(o: &mut String, s: &SignificanceSection) {
    let rows: Vec<Vec<String>> = s
        .rows
        .iter()
        .map(|r| {
            vec![
                r.null.clone(),
                r.layer_a.clone(),
                r.layer_b.clone(),
                num(r.observed, 3),
                num(r.null_mean, 3),
                opt(r.null_sd, 3),
                opt(r.z, 1),
                num(r.p, 3),
                num(r.assigned, 3),
                num(r.assigned_null_mean, 3),
                opt(r.assigned_z, 1),
                num(r.assigned_p, 3),
                format!("{} / {}", r.significant_pairs, r.tested_pairs),
            ]
        })
        .collect();
    table(
        o,
        &[
            "null",
            "layer of A",
            "layer of B",
            "mean best r",
            "null mean",
            "null sd",
            "z",
            "p",
            "mean assigned r",
            "null mean",
            "z",
            "p",
            "significant pairs",
        ],
        3,
        &rows,
    );
}

/// The whole page.
pub fn page(d: &ReportData) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>unitmatch report</title><style>{STYLE}</style><script>{SCRIPT}</script></head>\
         <body>\n<h1>unitmatch report: which units of GAN A correspond to which units of GAN B</h1>\n"
    );
    let _ = write!(
        o,
        "<p>Made by unitmatch {}; every number on this page is in <a href=\"report.json\">report.json</a>.</p>",
        escape(d.versions["unitmatch"].as_str().unwrap_or("?"))
    );

    o.push_str("<section id=\"summary\"><h2>Summary</h2>");
    if let Some(t) = &d.table {
        let _ = write!(
            o,
            "<p>A: <code>{}</code> (width {}); B: <code>{}</code> (width {}). {} units x {} units, \
             measure {}, {} latent codes.</p>",
            escape(&t.checkpoints[0]),
            opt(t.widths[0], 3),
            escape(&t.checkpoints[1]),
            opt(t.widths[1], 3),
            t.units[0],
            t.units[1],
            escape(&t.measure),
            t.samples
        );
    }
    o.push_str("<p>The seed's three findings, tested on these outputs:</p><ol>");
    for f in &d.findings {
        let (class, word) = match f.holds {
            Some(true) => ("yes", "holds"),
            Some(false) => ("no", "does not hold"),
            None => ("unk", "undecided"),
        };
        let _ = write!(
            o,
            "<li><b>{}</b>: <span class=\"{class}\">{word}</span>. {}</li>",
            escape(&f.claim),
            escape(&f.evidence)
        );
    }
    o.push_str("</ol></section>\n");

    o.push_str("<section id=\"training\"><h2>Training</h2>");
    if !missing(&mut o, d, "training") {
        let rows: Vec<Vec<String>> = d
            .training
            .iter()
            .map(|r| {
                let last = r.epochs.last();
                vec![
                    r.name.clone(),
                    r.seed.map_or("?".into(), |s| s.to_string()),
                    opt(r.width, 3),
                    r.epochs.len().to_string(),
                    opt(last.map(|e| e.g_loss), 4),
                    opt(last.map(|e| e.d_loss), 4),
                    opt(last.map(|e| e.img_per_s), 0),
                ]
            })
            .collect();
        table(
            &mut o,
            &[
                "run",
                "seed",
                "width",
                "epochs",
                "last G loss",
                "last D loss",
                "img/s",
            ],
            1,
            &rows,
        );
        o.push_str("<div class=\"figs\">");
        for r in &d.training {
            if let Some(g) = &r.gif {
                figure(
                    &mut o,
                    g,
                    &format!("{}: samples per epoch (fixed z)", r.name),
                );
            }
            if let Some(g) = &r.last_grid {
                figure(
                    &mut o,
                    g,
                    &format!("{}: samples after the last epoch", r.name),
                );
            }
            if let Some(g) = &r.losses_png {
                figure(&mut o, g, &format!("{}: losses per epoch", r.name));
            }
        }
        o.push_str("</div>");
    }
    o.push_str("</section>\n");

    o.push_str("<section id=\"table\"><h2>The A x B table</h2>");
    if !missing(&mut o, d, "table")
        && let Some(t) = &d.table
    {
        let _ = write!(
            o,
            "<p>Colour map: RdBu_r, centred on 0, limits ±1. Dead units: {} in A, {} in B. \
             Vector version: <a href=\"{}\">{}</a>.</p><div class=\"figs\">",
            t.dead[0],
            t.dead[1],
            escape(&t.figures.table_svg),
            escape(&t.figures.table_svg)
        );
        figure(&mut o, &t.figures.table, "Full table, layer by layer");
        figure(
            &mut o,
            &t.figures.reordered,
            "Reordered so the one-to-one assignment is the diagonal",
        );
        figure(
            &mut o,
            &t.figures.block,
            "One cell per layer pair: mean best-match r",
        );
        figure(
            &mut o,
            &t.figures.depth_a,
            &format!(
                "Scores vs depth, A (row max){}",
                t.figures
                    .depth_band
                    .as_ref()
                    .map_or(String::new(), |b| format!("; grey band: {b}"))
            ),
        );
        figure(
            &mut o,
            &t.figures.depth_b,
            "Scores vs depth, B (column max)",
        );
        o.push_str("</div>");
        let rows: Vec<Vec<String>> = t
            .layer_pairs
            .iter()
            .map(|p| {
                vec![
                    p.layer_a.clone(),
                    p.layer_b.clone(),
                    num(p.mean, 3),
                    num(p.max, 3),
                    num(p.mean_row_max, 3),
                    num(p.mean_col_max, 3),
                ]
            })
            .collect();
        table(
            &mut o,
            &[
                "layer of A",
                "layer of B",
                "mean r",
                "max r",
                "mean row max",
                "mean column max",
            ],
            2,
            &rows,
        );
    }
    o.push_str("</section>\n");

    o.push_str("<section id=\"matches\"><h2>Matches</h2>");
    if !missing(&mut o, d, "matches")
        && let Some(m) = &d.matches
    {
        let _ = write!(
            o,
            "<p>Strict mutual best buddies: {} pairs ({:.1}% of A's units); Rosetta buddies \
             (k = {}): {} ({:.1}%). Whole-table one-to-one assignment: mean r = {}. Identity \
             pairing (unit k with unit k): mean r = {}; {} of {} units of A have their best \
             match at their own index.</p>",
            m.strict_buddies,
            100.0 * m.strict_fraction_a,
            m.k,
            m.rosetta_buddies,
            100.0 * m.rosetta_fraction_a,
            num(m.assignment_mean, 3),
            opt(m.identity_mean, 3),
            m.identity_best,
            m.live_a
        );
        o.push_str("<h3>Top pairs</h3>");
        table(&mut o, &PAIR_HEADER, 2, &pair_rows(&m.top_pairs));
        o.push_str("<h3>Strict buddies</h3>");
        table(&mut o, &PAIR_HEADER, 2, &pair_rows(&m.buddies));
        let _ = write!(
            o,
            "<h3>Galleries</h3><p>Each row: the z (of the first {}) on which the pair agrees \
             most; the image, the unit's map over it (jet, bilinear to 32 x 32, min-max \
             normalised, alpha {}), and the raw map, for A then B.</p>",
            m.gallery_samples, m.gallery_alpha
        );
        if let Some(n) = &m.gallery_note {
            let _ = write!(o, "<p class=\"note\">{}</p>", escape(n));
        }
        for (title, list) in [
            ("Top pairs", &m.top_galleries),
            ("Strict buddies", &m.buddy_galleries),
        ] {
            if list.is_empty() {
                continue;
            }
            let _ = write!(o, "<h4>{}</h4>", escape(title));
            gallery_figures(&mut o, list, "B ");
        }
    }
    o.push_str("</section>\n");

    o.push_str("<section id=\"significance\"><h2>Significance against null models</h2>");
    if !missing(&mut o, d, "significance")
        && let Some(s) = &d.significance
    {
        let _ = write!(
            o,
            "<p>{} draws per null model (smallest attainable p = {}); pairs flagged at alpha = {} \
             with the {} correction. random-init: B replaced by untrained generators of the same \
             architecture; permuted-z: B's maps paired with other z of the same batch.</p>",
            s.draws,
            num(s.min_p, 3),
            s.alpha,
            escape(&s.correction)
        );
        significance_table(&mut o, s);
    }
    o.push_str("</section>\n");

    o.push_str("<section id=\"evolution\"><h2>Evolution over training</h2>");
    if !missing(&mut o, d, "evolution")
        && let Some(e) = &d.evolution
    {
        o.push_str("<div class=\"figs\">");
        figure(
            &mut o,
            &e.figures[0],
            "Mean best-match r per layer against epoch",
        );
        figure(&mut o, &e.figures[1], "Linear CKA per layer against epoch");
        o.push_str(
            "</div><h3>First and last trained epoch (the seed's Figure 2)</h3><div class=\"figs\">",
        );
        for (epoch, full, _) in &e.first_last {
            figure(&mut o, full, &format!("Epoch {epoch}: full table"));
        }
        for (epoch, _, block) in &e.first_last {
            figure(
                &mut o,
                block,
                &format!("Epoch {epoch}: one cell per layer pair"),
            );
        }
        o.push_str("</div>");
        let rows: Vec<Vec<String>> = e
            .rows
            .iter()
            .map(|r| {
                vec![
                    r.epoch.to_string(),
                    r.layer_a.clone(),
                    r.layer_b.clone(),
                    num(r.mean_row_max, 3),
                    num(r.mean_assigned, 3),
                    r.strict_buddies.to_string(),
                    opt(r.cka_linear, 3),
                    opt(r.cka_debiased, 3),
                    opt(r.nulls[0].and_then(|n| n.0), 1),
                    opt(r.nulls[1].and_then(|n| n.0), 1),
                ]
            })
            .collect();
        table(
            &mut o,
            &[
                "epoch",
                "layer of A",
                "layer of B",
                "mean best r",
                "mean assigned r",
                "strict buddies",
                "linear CKA",
                "debiased CKA",
                "z (random-init)",
                "z (permuted-z)",
            ],
            0,
            &rows,
        );
    }
    o.push_str("</section>\n");

    o.push_str("<section id=\"cka\"><h2>Layer similarity (CKA)</h2>");
    if !missing(&mut o, d, "cka")
        && let Some(c) = &d.cka
    {
        o.push_str(
            "<p>Samples are (z, position) pairs at the two layers' common resolution (the \
             smaller layer upsampled bilinearly, align_corners = true).</p><div class=\"figs\">",
        );
        figure(
            &mut o,
            &c.figure,
            "Linear CKA between the layers of A and of B",
        );
        o.push_str("</div>");
        let rows: Vec<Vec<String>> = c
            .rows
            .iter()
            .map(|r| {
                vec![
                    format!("{}.{}", r.network_p, r.layer_p),
                    format!("{}.{}", r.network_q, r.layer_q),
                    format!("{}x{}", r.resolution.0, r.resolution.1),
                    opt(r.linear, 3),
                    opt(r.debiased, 3),
                ]
            })
            .collect();
        table(
            &mut o,
            &["layer", "layer", "resolution", "linear CKA", "debiased CKA"],
            3,
            &rows,
        );
    }
    o.push_str("</section>\n");

    o.push_str("<section id=\"quality\"><h2>GAN quality through the classifier</h2>");
    if !missing(&mut o, d, "quality")
        && let Some(q) = &d.quality
    {
        if let Some(acc) = q.classifier_accuracy {
            let _ = write!(
                o,
                "<p>Classifier: test accuracy {:.2}% ({} epochs, {} s of training). ",
                100.0 * acc,
                q.classifier_epochs.map_or("?".into(), |e| e.to_string()),
                opt(q.classifier_seconds, 0)
            );
        } else {
            o.push_str("<p>");
        }
        let _ = write!(
            o,
            "FD-FMNIST is the Frechet distance between Gaussians fitted to the classifier's \
             128 penultimate features, against the 10,000 test images; KID uses the cubic \
             polynomial kernel; IS is exp(E KL(p(y|x) || p(y))) with the classifier's \
             probabilities; KL is the class histogram's divergence from uniform. {} generated \
             images per generator.</p>",
            q.samples
        );
        let rows = |list: &[QualityRow]| -> Vec<Vec<String>> {
            list.iter()
                .map(|r| {
                    vec![
                        r.name.clone(),
                        num(r.fd, 3),
                        format!("{} ± {}", num(r.kid, 4), num(r.kid_std_error, 4)),
                        num(r.is_mean, 2),
                        num(r.kl_from_uniform, 3),
                    ]
                })
                .collect()
        };
        let header = ["images", "FD-FMNIST", "KID", "IS", "KL(classes || uniform)"];
        o.push_str("<h3>Real-data calibration</h3>");
        table(&mut o, &header, 1, &rows(&q.calibration));
        o.push_str("<h3>Generators</h3>");
        table(&mut o, &header, 1, &rows(&q.generators));
        o.push_str("<div class=\"figs\">");
        for (f, caption) in &q.figures {
            figure(&mut o, f, caption);
        }
        o.push_str("</div>");
    }

    o.push_str("</section>\n");

    o.push_str("<section id=\"classifier-match\"><h2>GAN A against the classifier</h2>");
    if !missing(&mut o, d, "classifier-match")
        && let Some(c) = &d.classifier_match
    {
        let _ = write!(
            o,
            "<p>B is the Fashion-MNIST classifier, run on GAN A's images of the same {} z; its \
             maps are brought to A's layer sizes by the same bilinear rule. {} units of A x {} \
             classifier units. Strict mutual best buddies: {} ({:.1}% of A's units); Rosetta \
             buddies (k = {}): {} ({:.1}%).</p><div class=\"figs\">",
            c.samples,
            c.units[0],
            c.units[1],
            c.strict_buddies,
            100.0 * c.strict_fraction_a,
            c.k,
            c.rosetta_buddies,
            100.0 * c.rosetta_fraction_a
        );
        figure(&mut o, &c.figures[0], "GAN A x classifier table");
        figure(
            &mut o,
            &c.figures[1],
            "One cell per layer pair: mean best-match r",
        );
        o.push_str("</div>");
        if let Some(s) = &c.significance {
            let _ = write!(
                o,
                "<p>Against {} draws of each null model (random-init: untrained classifiers of \
                 the same architecture; smallest attainable p = {}):</p>",
                s.draws,
                num(s.min_p, 3)
            );
            significance_table(&mut o, s);
        }
        o.push_str("<h3>Strict buddies</h3>");
        table(&mut o, &PAIR_HEADER, 2, &pair_rows(&c.buddies));
        if let Some(n) = &c.gallery_note {
            let _ = write!(o, "<p class=\"note\">{}</p>", escape(n));
        }
        if !c.galleries.is_empty() {
            o.push_str(
                "<p>Galleries: B's image panels show A's image, which the classifier saw.</p>",
            );
            gallery_figures(&mut o, &c.galleries, "");
        }
    }
    o.push_str("</section>\n");

    o.push_str("<section id=\"causal\"><h2>Are matched units causally alike?</h2>");
    if !missing(&mut o, d, "causal")
        && let Some(c) = &d.causal
    {
        let f = |k: &str| c.summary[k].as_f64();
        let _ = write!(
            o,
            "<p>For each of the top {} pairs (block1/block2 units, by table score), unit i of A \
             and unit j of B are ablated (set to 0) on the same z, and the agreement is the \
             Pearson correlation of the two |delta image| maps over samples and pixels \
             (within-pixel: after removing each pixel's mean over samples). Controls: (a) j in B \
             against a random other unit of i's layer in A; (b) random unmatched pairs of the \
             same layers. Mean agreement of the top pairs {} (within-pixel {}); control (a) {} \
             ({}); control (b) {} ({}). Pairs above their control at p &lt;= 0.05: {} of {} \
             against (a), {} against (b); smallest attainable p {}.</p>",
            c.rows.len(),
            opt(f("mean_agreement"), 3),
            opt(f("mean_agreement_within_pixel"), 3),
            opt(f("mean_control_random_a"), 3),
            opt(f("mean_control_random_a_within_pixel"), 3),
            opt(f("mean_control_unmatched"), 3),
            opt(f("mean_control_unmatched_within_pixel"), 3),
            c.summary["pairs_p_random_a_le_005"].as_u64().unwrap_or(0),
            c.rows.len(),
            c.summary["pairs_p_unmatched_le_005"].as_u64().unwrap_or(0),
            opt(f("min_attainable_p"), 3)
        );
        let rows: Vec<Vec<String>> = c
            .rows
            .iter()
            .map(|r| {
                vec![
                    r.units[0].clone(),
                    r.units[1].clone(),
                    num(r.score, 3),
                    opt(r.agreement[0], 3),
                    opt(r.agreement[1], 3),
                    opt(r.control_random_a[0], 3),
                    opt(r.control_random_a[1], 3),
                    opt(r.control_unmatched[0], 3),
                    opt(r.control_unmatched[1], 3),
                ]
            })
            .collect();
        table(
            &mut o,
            &[
                "unit of A",
                "unit of B",
                "r",
                "agreement",
                "within-pixel",
                "control (a) mean",
                "p (a)",
                "control (b) mean",
                "p (b)",
            ],
            2,
            &rows,
        );
        o.push_str("<div class=\"figs\">");
        for (src, caption) in &c.figures {
            figure(&mut o, src, caption);
        }
        o.push_str("</div>");
    }
    o.push_str("</section>\n");

    o.push_str("<section id=\"prune\"><h2>Removing duplicate units</h2>");
    if !missing(&mut o, d, "prune")
        && let Some(p) = &d.prune
    {
        let c = &p.curve;
        let _ = write!(
            o,
            "<p>Near-duplicate units (|r| &gt;= tau within a layer) removed and folded into their \
             kept twin (the next layer's weights absorb the least-squares slope and intercept), \
             against removing as many units at random or by smallest filter L1 norm, without \
             folding. {} parameters before pruning; FD-FMNIST before: {}.</p>",
            c["params"].as_u64().unwrap_or(0),
            opt(c["fd_unpruned"].as_f64(), 1)
        );
        let points = c["points"].as_array().cloned().unwrap_or_default();
        let fd = c["fd"].as_array().cloned().unwrap_or_default();
        let rows: Vec<Vec<String>> = points
            .iter()
            .enumerate()
            .map(|(i, q)| {
                vec![
                    q["method"].as_str().unwrap_or("").to_string(),
                    opt(q["tau"].as_f64(), 2),
                    format!(
                        "{} + {}",
                        q["removed"][0].as_u64().unwrap_or(0),
                        q["removed"][1].as_u64().unwrap_or(0)
                    ),
                    opt(q["params_removed"].as_f64().map(|v| 100.0 * v), 1),
                    opt(q["mean_abs_delta"].as_f64(), 4),
                    opt(q["border_abs_delta"].as_f64(), 4),
                    opt(fd.get(i).and_then(|v| v.as_f64()), 1),
                ]
            })
            .collect();
        table(
            &mut o,
            &[
                "method",
                "tau",
                "units removed (block1 + block2)",
                "% params removed",
                "mean |delta image|",
                "on the border",
                "FD-FMNIST",
            ],
            1,
            &rows,
        );
        if let Some(f) = &p.figure {
            o.push_str("<div class=\"figs\">");
            figure(
                &mut o,
                f,
                "Change of the images and FD-FMNIST against parameters removed",
            );
            o.push_str("</div>");
        }
    }
    o.push_str("</section>\n</body></html>\n");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_covers_markup_characters() {
        assert_eq!(
            escape(r#"<a href="x">Tom & 'Jerry'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;Tom &amp; &#39;Jerry&#39;&lt;/a&gt;"
        );
    }
}
