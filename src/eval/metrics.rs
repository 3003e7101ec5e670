//! Window-level detection metrics, as in the paper: ROC curve and AUC, and
//! precision / recall / F1 at a threshold, for each P (a window is *anomalous*, or
//! *positive*, when it holds at least P attack packets).
//!
//! Conventions (also in docs/evaluation.md):
//! * **Alert rule: `score > threshold`** (strictly greater: "a score over the threshold is an
//!   alert"; the paper writes ≥, which differs only for a score exactly equal to the threshold).
//! * Windows without a score (the first two of a run, before the model has three windows) and
//!   windows whose score is NaN are left out of every metric; they are counted in
//!   [`Evaluation::windows_unscored`] / [`Evaluation::windows_nan_score`].
//! * 0/0 is 0: precision with no alert, recall/TPR with no positive window, FPR with no
//!   negative window, F1 when precision + recall = 0. F1 = 2·P·R/(P+R) = 2TP/(2TP+FP+FN).
//! * ROC: windows sorted by descending score; all windows with an equal score enter
//!   together (one diagonal step), so the AUC (trapezoid rule) equals the Mann–Whitney
//!   probability P(score⁺ > score⁻) + ½·P(score⁺ = score⁻).
//! * AUC needs at least one positive and one negative window; otherwise it is `None` with a
//!   reason (never NaN), and the ROC curve is empty.
//! * Per attack name, a window is anomalous for that attack when it holds at least P packets
//!   of that attack; this is reported for every P, and [`AttackDetection`] lists them.

/// The P values of the paper.
pub const DEFAULT_PS: [u64; 3] = [1, 10, 20];

/// One window as the evaluation sees it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WindowEval {
    /// Window start, nanoseconds since the Unix epoch (inclusive).
    pub start_ns: i64,
    /// Window end, nanoseconds since the Unix epoch (exclusive).
    pub end_ns: i64,
    /// The anomaly score of the window, `None` when the model gave none (first two windows).
    pub score: Option<f64>,
    /// Whether the window alerted, as the threshold in force judged it (an adaptive threshold
    /// moves); `None`: `score > threshold` of [`EvalConfig`].
    pub alerted: Option<bool>,
    /// Attack packets in the window, all attack names together.
    pub attack_packets: u64,
    /// Attack packets in the window per attack name (indexed like [`super::Labels::names`]).
    pub per_label: Vec<u64>,
}

/// What to evaluate.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalConfig {
    /// Alert when `score > threshold`.
    pub threshold: f64,
    /// The P values (each ≥ 1); evaluated in increasing order, duplicates dropped.
    pub ps: Vec<u64>,
}

impl EvalConfig {
    /// The paper's P values (1, 10, 20) with the given threshold.
    pub fn new(threshold: f64) -> Self {
        EvalConfig {
            threshold,
            ps: DEFAULT_PS.to_vec(),
        }
    }
}

/// Invalid input to [`evaluate`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetricsError {
    #[error("the threshold is NaN (expected a number; alerts are score > threshold)")]
    NanThreshold,
    #[error("no P value given (expected at least one, e.g. 1,10,20)")]
    NoP,
    #[error("P = 0 is not allowed (expected P >= 1: a window is anomalous when it holds at least P attack packets)")]
    ZeroP,
    #[error(
        "window {index} has {found} per-attack counts, expected {expected} (one per attack name)"
    )]
    PerLabelLength {
        index: usize,
        found: usize,
        expected: usize,
    },
}

/// A point of a ROC curve.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RocPoint {
    pub fpr: f64,
    pub tpr: f64,
    /// The point alerts on every window with `score >= min_alerted_score`
    /// (`+inf` for the first point, which alerts on nothing).
    pub min_alerted_score: f64,
    pub tp: u64,
    pub fp: u64,
}

/// Confusion counts and the rates derived from them (0/0 = 0).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Confusion {
    pub tp: u64,
    pub fp: u64,
    pub tn: u64,
    #[serde(rename = "fn")]
    pub fn_: u64,
    pub tpr: f64,
    pub fpr: f64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

impl Confusion {
    /// Rates from counts, with 0/0 = 0.
    pub fn from_counts(tp: u64, fp: u64, tn: u64, fn_: u64) -> Self {
        let recall = ratio(tp, tp + fn_);
        Confusion {
            tp,
            fp,
            tn,
            fn_,
            tpr: recall,
            fpr: ratio(fp, fp + tn),
            precision: ratio(tp, tp + fp),
            recall,
            f1: ratio(2 * tp, 2 * tp + fp + fn_),
        }
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// The threshold that maximises F1 on the evaluated windows.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct BestF1 {
    /// Alerting on `score > threshold` gives exactly this F1 on these windows: it is the
    /// next lower distinct score below `min_alerted_score` (or the largest f64 below it
    /// when every window is alerted). Any threshold in `[threshold, min_alerted_score)`
    /// gives the same alerts.
    pub threshold: f64,
    /// The lowest score that is alerted.
    pub min_alerted_score: f64,
    pub f1: f64,
    pub precision: f64,
    pub recall: f64,
    pub tp: u64,
    pub fp: u64,
}

/// Detection of one attack name at one P.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct AttackDetection {
    pub name: String,
    /// Scored windows holding at least P packets of this attack.
    pub anomalous_windows: u64,
    /// Of those, the windows alerted at the threshold.
    pub detected_windows: u64,
}

/// The metrics for one P.
#[derive(Clone, Debug, PartialEq)]
pub struct PEval {
    pub p: u64,
    /// Scored windows holding at least P attack packets.
    pub positive_windows: u64,
    /// Scored windows holding fewer than P attack packets.
    pub negative_windows: u64,
    /// The ROC curve from (0,0) to (1,1); empty when the AUC is undefined.
    pub roc: Vec<RocPoint>,
    /// ROC AUC; `None` when undefined (see `auc_undefined_reason`).
    pub auc: Option<f64>,
    pub auc_undefined_reason: Option<String>,
    /// At the configured threshold.
    pub at_threshold: Confusion,
    /// `None` when there is no positive window (F1 is 0 at every threshold).
    pub best_f1: Option<BestF1>,
    /// One entry per attack name, in label order.
    pub per_attack: Vec<AttackDetection>,
}

/// The evaluation of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    pub threshold: f64,
    /// All windows given.
    pub windows_total: u64,
    /// Windows with a (non-NaN) score: the ones evaluated.
    pub windows_scored: u64,
    /// Windows without a score.
    pub windows_unscored: u64,
    /// Windows whose score was NaN (left out).
    pub windows_nan_score: u64,
    /// Attack packets per name over all windows (scored or not), in label order.
    pub attack_packets: Vec<u64>,
    pub label_names: Vec<String>,
    /// One entry per P, in increasing P.
    pub by_p: Vec<PEval>,
}

impl Evaluation {
    /// The metrics for `p`, if it was evaluated.
    pub fn for_p(&self, p: u64) -> Option<&PEval> {
        self.by_p.iter().find(|e| e.p == p)
    }
}

/// Computes every metric. `label_names` gives the attack names; each window's `per_label`
/// must have one count per name.
pub fn evaluate(
    windows: &[WindowEval],
    label_names: &[String],
    cfg: &EvalConfig,
) -> Result<Evaluation, MetricsError> {
    if cfg.threshold.is_nan() {
        return Err(MetricsError::NanThreshold);
    }
    let mut ps = cfg.ps.clone();
    ps.sort_unstable();
    ps.dedup();
    if ps.is_empty() {
        return Err(MetricsError::NoP);
    }
    if ps[0] == 0 {
        return Err(MetricsError::ZeroP);
    }
    let n_labels = label_names.len();
    let mut attack_packets = vec![0u64; n_labels];
    let mut unscored = 0u64;
    let mut nan = 0u64;
    // (score, window index) of the evaluated windows, by descending score.
    let mut scored: Vec<(f64, usize)> = Vec::with_capacity(windows.len());
    for (i, w) in windows.iter().enumerate() {
        if w.per_label.len() != n_labels {
            return Err(MetricsError::PerLabelLength {
                index: i,
                found: w.per_label.len(),
                expected: n_labels,
            });
        }
        for (acc, c) in attack_packets.iter_mut().zip(&w.per_label) {
            *acc += c;
        }
        match w.score {
            None => unscored += 1,
            Some(s) if s.is_nan() => nan += 1,
            Some(s) => scored.push((s, i)),
        }
    }
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));

    let by_p = ps
        .iter()
        .map(|&p| eval_p(p, windows, &scored, label_names, cfg.threshold))
        .collect();
    Ok(Evaluation {
        threshold: cfg.threshold,
        windows_total: windows.len() as u64,
        windows_scored: scored.len() as u64,
        windows_unscored: unscored,
        windows_nan_score: nan,
        attack_packets,
        label_names: label_names.to_vec(),
        by_p,
    })
}

fn eval_p(
    p: u64,
    windows: &[WindowEval],
    scored: &[(f64, usize)],
    names: &[String],
    threshold: f64,
) -> PEval {
    let is_pos = |i: usize| windows[i].attack_packets >= p;
    let alerted = |s: f64, i: usize| windows[i].alerted.unwrap_or(s > threshold);
    let npos = scored.iter().filter(|&&(_, i)| is_pos(i)).count() as u64;
    let nneg = scored.len() as u64 - npos;

    // At the threshold.
    let (mut tp, mut fp) = (0u64, 0u64);
    for &(s, i) in scored {
        if alerted(s, i) {
            if is_pos(i) {
                tp += 1;
            } else {
                fp += 1;
            }
        }
    }
    let at_threshold = Confusion::from_counts(tp, fp, nneg - fp, npos - tp);

    // ROC, AUC and best F1, walking groups of equal scores from the top.
    let mut roc = Vec::new();
    let mut best: Option<BestF1> = None;
    // 2 * Σ over groups of fp_g * (tp_before + tp_g / 2), in integers.
    let mut auc2: u128 = 0;
    let (mut tp, mut fp) = (0u64, 0u64);
    let defined = npos > 0 && nneg > 0;
    if defined {
        roc.push(RocPoint {
            fpr: 0.0,
            tpr: 0.0,
            min_alerted_score: f64::INFINITY,
            tp: 0,
            fp: 0,
        });
    }
    let mut k = 0;
    while k < scored.len() {
        let s = scored[k].0;
        let (mut gtp, mut gfp) = (0u64, 0u64);
        while k < scored.len() && scored[k].0 == s {
            if is_pos(scored[k].1) {
                gtp += 1;
            } else {
                gfp += 1;
            }
            k += 1;
        }
        auc2 += u128::from(gfp) * u128::from(2 * tp + gtp);
        tp += gtp;
        fp += gfp;
        if defined {
            roc.push(RocPoint {
                fpr: ratio(fp, nneg),
                tpr: ratio(tp, npos),
                min_alerted_score: s,
                tp,
                fp,
            });
        }
        if npos > 0 {
            let c = Confusion::from_counts(tp, fp, nneg - fp, npos - tp);
            if best.is_none_or(|b| c.f1 > b.f1) {
                let threshold = scored.get(k).map_or_else(|| next_down(s), |n| n.0);
                best = Some(BestF1 {
                    threshold,
                    min_alerted_score: s,
                    f1: c.f1,
                    precision: c.precision,
                    recall: c.recall,
                    tp,
                    fp,
                });
            }
        }
    }
    let (auc, auc_undefined_reason) = if defined {
        let denom = 2.0 * npos as f64 * nneg as f64;
        (Some(auc2 as f64 / denom), None)
    } else {
        let why = match (npos, nneg) {
            (0, 0) => "no scored window".to_string(),
            (0, _) => format!("no positive window (no scored window holds >= {p} attack packets)"),
            _ => format!("no negative window (every scored window holds >= {p} attack packets)"),
        };
        (None, Some(why))
    };

    let per_attack = names
        .iter()
        .enumerate()
        .map(|(l, name)| {
            let (mut anomalous, mut detected) = (0u64, 0u64);
            for &(s, i) in scored {
                if windows[i].per_label[l] >= p {
                    anomalous += 1;
                    if s > threshold {
                        detected += 1;
                    }
                }
            }
            AttackDetection {
                name: name.clone(),
                anomalous_windows: anomalous,
                detected_windows: detected,
            }
        })
        .collect();

    PEval {
        p,
        positive_windows: npos,
        negative_windows: nneg,
        roc,
        auc,
        auc_undefined_reason,
        at_threshold,
        best_f1: best,
        per_attack,
    }
}

/// The largest f64 below `x` (f64::next_down is newer than the crate's MSRV).
fn next_down(x: f64) -> f64 {
    if x.is_nan() || x == f64::NEG_INFINITY {
        return x;
    }
    if x == 0.0 {
        return -f64::from_bits(1);
    }
    let bits = x.to_bits();
    f64::from_bits(if x > 0.0 { bits - 1 } else { bits + 1 })
}

/// Mann–Whitney estimate of P(score⁺ > score⁻) + ½ P(=), in O(n²): for tests.
#[cfg(test)]
fn auc_pairs(pos: &[f64], neg: &[f64]) -> f64 {
    let mut num = 0.0;
    for a in pos {
        for b in neg {
            num += match a.partial_cmp(b) {
                Some(std::cmp::Ordering::Greater) => 1.0,
                Some(std::cmp::Ordering::Equal) => 0.5,
                _ => 0.0,
            };
        }
    }
    num / (pos.len() * neg.len()) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(score: Option<f64>, attack: u64) -> WindowEval {
        WindowEval {
            alerted: None,
            start_ns: 0,
            end_ns: 1,
            score,
            attack_packets: attack,
            per_label: vec![attack],
        }
    }
    fn names() -> Vec<String> {
        vec!["atk".to_string()]
    }

    /// Six scored windows (plus two unscored) at P = 1:
    ///
    /// | window | score | attack pkts | P=1 label |
    /// |--------|-------|-------------|-----------|
    /// | a      | 0.9   | 30          | pos       |
    /// | b      | 0.8   | 0           | neg       |
    /// | c      | 0.7   | 5           | pos       |
    /// | d      | 0.3   | 12          | pos       |
    /// | e      | 0.2   | 0           | neg       |
    /// | f      | 0.1   | 0           | neg       |
    ///
    /// AUC (P=1): pairs (pos, neg) where pos ranks higher: a beats b,e,f (3); c beats e,f
    /// (2); d beats e,f (2) → 7 of 3·3 = 9 → AUC = 7/9.
    /// At threshold 0.5 (alert when score > 0.5: a, b, c): TP = 2 (a, c), FP = 1 (b),
    /// FN = 1 (d), TN = 2 (e, f). precision = 2/3, recall = 2/3, FPR = 1/3,
    /// F1 = 2·(2/3)(2/3)/(4/3) = 2/3.
    /// Best F1 over cutoffs: top 1 → P=1, R=1/3, F1=1/2; top 2 → 1/2,1/3 → 0.4;
    /// top 3 → 2/3; top 4 (a,b,c,d) → P=3/4, R=1, F1 = 6/7; top 5 → 3/5,1 → 3/4;
    /// all → 1/2, 1 → 2/3. Best: 6/7, alerting scores >= 0.3, threshold 0.2 (next score).
    /// ROC: (0,0) (0,1/3) (1/3,1/3) (1/3,2/3) (1/3,1) (2/3,1) (1,1);
    /// trapezoids: 1/3·1/3 + 1/3·1 + 1/3·1 = 7/9.
    ///
    /// P = 10: positives a (30), d (12); negatives b, c, e, f.
    /// AUC: a beats all 4 (4), d beats e, f (2) → 6/8 = 3/4.
    /// Threshold 0.5: TP = 1 (a), FP = 2 (b, c), FN = 1 (d), TN = 2.
    /// precision = 1/3, recall = 1/2, FPR = 2/4 = 1/2, F1 = 2·1/(2+2+1) = 2/5.
    ///
    /// P = 20: positive a only: AUC = 1; threshold 0.5: TP 1, FP 2, FN 0, TN 3:
    /// precision 1/3, recall 1, F1 = 2/(2+2) = 1/2. Best F1 = 1 at the top cutoff,
    /// threshold 0.8 (alert when score > 0.8).
    fn six() -> Vec<WindowEval> {
        vec![
            w(None, 50),
            w(None, 0),
            w(Some(0.9), 30),
            w(Some(0.8), 0),
            w(Some(0.7), 5),
            w(Some(0.3), 12),
            w(Some(0.2), 0),
            w(Some(0.1), 0),
        ]
    }

    #[test]
    fn hand_computed_six_windows() {
        let e = evaluate(&six(), &names(), &EvalConfig::new(0.5)).unwrap();
        assert_eq!(e.windows_total, 8);
        assert_eq!(e.windows_scored, 6);
        assert_eq!(e.windows_unscored, 2);
        assert_eq!(e.attack_packets, vec![97]);
        let p1 = e.for_p(1).unwrap();
        assert_eq!((p1.positive_windows, p1.negative_windows), (3, 3));
        assert_eq!(p1.auc, Some(7.0 / 9.0));
        assert_eq!(p1.auc_undefined_reason, None);
        let c = p1.at_threshold;
        assert_eq!((c.tp, c.fp, c.tn, c.fn_), (2, 1, 2, 1));
        assert_eq!(c.precision, 2.0 / 3.0);
        assert_eq!(c.recall, 2.0 / 3.0);
        assert_eq!(c.tpr, 2.0 / 3.0);
        assert_eq!(c.fpr, 1.0 / 3.0);
        assert_eq!(c.f1, 2.0 / 3.0);
        let b = p1.best_f1.unwrap();
        assert_eq!(b.f1, 6.0 / 7.0);
        assert_eq!(b.min_alerted_score, 0.3);
        assert_eq!(b.threshold, 0.2);
        assert_eq!((b.precision, b.recall), (0.75, 1.0));
        let pts: Vec<(f64, f64)> = p1.roc.iter().map(|r| (r.fpr, r.tpr)).collect();
        let t = 1.0 / 3.0;
        assert_eq!(
            pts,
            vec![
                (0.0, 0.0),
                (0.0, t),
                (t, t),
                (t, 2.0 / 3.0),
                (t, 1.0),
                (2.0 / 3.0, 1.0),
                (1.0, 1.0)
            ]
        );
        assert_eq!(p1.per_attack[0].anomalous_windows, 3);
        assert_eq!(p1.per_attack[0].detected_windows, 2);

        let p10 = e.for_p(10).unwrap();
        assert_eq!(p10.auc, Some(0.75));
        let c = p10.at_threshold;
        assert_eq!((c.tp, c.fp, c.tn, c.fn_), (1, 2, 2, 1));
        assert_eq!(c.precision, 1.0 / 3.0);
        assert_eq!(c.recall, 0.5);
        assert_eq!(c.fpr, 0.5);
        assert_eq!(c.f1, 0.4);
        assert_eq!(p10.per_attack[0].anomalous_windows, 2);
        assert_eq!(p10.per_attack[0].detected_windows, 1);

        let p20 = e.for_p(20).unwrap();
        assert_eq!(p20.auc, Some(1.0));
        let c = p20.at_threshold;
        assert_eq!((c.tp, c.fp, c.tn, c.fn_), (1, 2, 3, 0));
        assert_eq!(c.f1, 0.5);
        let b = p20.best_f1.unwrap();
        assert_eq!((b.f1, b.threshold, b.min_alerted_score), (1.0, 0.8, 0.9));
    }

    #[test]
    fn alert_rule_is_strictly_greater() {
        let e = evaluate(&six(), &names(), &EvalConfig::new(0.7)).unwrap();
        // 0.7 itself is not alerted: only a (0.9) and b (0.8).
        let c = e.for_p(1).unwrap().at_threshold;
        assert_eq!((c.tp, c.fp), (1, 1));
    }

    /// Ties: scores pos {0.5, 0.5, 0.9}, neg {0.5, 0.1}.
    /// Pairs: 0.9 beats both (2); each 0.5 pos ties 0.5 neg (½) and beats 0.1 (1) → 1.5 each.
    /// Total 5 of 6 → AUC = 5/6. ROC: (0,0) (0,1/3) then the 0.5 group [2 pos, 1 neg]
    /// as a single diagonal step to (1/2, 1), then (1,1).
    #[test]
    fn ties_form_one_step() {
        let ws = vec![
            w(Some(0.5), 1),
            w(Some(0.5), 0),
            w(Some(0.9), 1),
            w(Some(0.1), 0),
            w(Some(0.5), 1),
        ];
        let e = evaluate(&ws, &names(), &EvalConfig::new(0.5)).unwrap();
        let p1 = e.for_p(1).unwrap();
        assert_eq!(p1.auc, Some(5.0 / 6.0));
        let pts: Vec<(f64, f64)> = p1.roc.iter().map(|r| (r.fpr, r.tpr)).collect();
        assert_eq!(
            pts,
            vec![(0.0, 0.0), (0.0, 1.0 / 3.0), (0.5, 1.0), (1.0, 1.0)]
        );
        assert_eq!(p1.roc[2].min_alerted_score, 0.5);
        // All scores equal → AUC 1/2, whatever the labels.
        let ws = vec![w(Some(2.0), 1), w(Some(2.0), 0), w(Some(2.0), 0)];
        let e = evaluate(&ws, &names(), &EvalConfig::new(0.0)).unwrap();
        assert_eq!(e.for_p(1).unwrap().auc, Some(0.5));
        // -0.0 and 0.0 are one score.
        let ws = vec![w(Some(0.0), 1), w(Some(-0.0), 0)];
        let e = evaluate(&ws, &names(), &EvalConfig::new(1.0)).unwrap();
        assert_eq!(e.for_p(1).unwrap().auc, Some(0.5));
    }

    #[test]
    fn auc_matches_mann_whitney_on_many_ties() {
        // Deterministic pseudo-random scores on a coarse grid (lots of ties).
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut ws = Vec::new();
        for _ in 0..300 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let attack = x % 30;
            let score = ((x >> 8) % 7) as f64 + if attack >= 10 { 1.0 } else { 0.0 };
            ws.push(w(Some(score), attack));
        }
        let e = evaluate(&ws, &names(), &EvalConfig::new(3.0)).unwrap();
        for pe in &e.by_p {
            let pos: Vec<f64> = ws
                .iter()
                .filter(|w| w.attack_packets >= pe.p)
                .map(|w| w.score.unwrap())
                .collect();
            let neg: Vec<f64> = ws
                .iter()
                .filter(|w| w.attack_packets < pe.p)
                .map(|w| w.score.unwrap())
                .collect();
            let want = auc_pairs(&pos, &neg);
            let got = pe.auc.unwrap();
            assert!((got - want).abs() < 1e-12, "P={} {got} vs {want}", pe.p);
            // Trapezoids over the ROC points agree too.
            let trap: f64 = pe
                .roc
                .windows(2)
                .map(|s| (s[1].fpr - s[0].fpr) * (s[1].tpr + s[0].tpr) / 2.0)
                .sum();
            assert!((trap - want).abs() < 1e-12);
            assert_eq!(pe.roc.last().map(|r| (r.fpr, r.tpr)), Some((1.0, 1.0)));
            // The best-F1 threshold reproduces its F1 under the `>` rule.
            let b = pe.best_f1.unwrap();
            let e2 = evaluate(
                &ws,
                &names(),
                &EvalConfig {
                    threshold: b.threshold,
                    ps: vec![pe.p],
                },
            )
            .unwrap();
            assert_eq!(e2.by_p[0].at_threshold.f1, b.f1);
        }
    }

    #[test]
    fn undefined_auc_is_none_with_reason() {
        let ws = vec![w(None, 0), w(Some(0.3), 0), w(Some(0.4), 2)];
        let e = evaluate(&ws, &names(), &EvalConfig::new(0.35)).unwrap();
        let p1 = e.for_p(1).unwrap();
        assert_eq!(p1.auc, Some(1.0));
        let p10 = e.for_p(10).unwrap();
        assert_eq!(p10.auc, None);
        assert!(p10
            .auc_undefined_reason
            .as_deref()
            .unwrap()
            .starts_with("no positive window"));
        assert!(p10.roc.is_empty());
        assert!(p10.best_f1.is_none());
        // 0/0 cases are 0.
        let c = p10.at_threshold;
        assert_eq!((c.tp, c.fp, c.tn, c.fn_), (0, 1, 1, 0));
        assert_eq!(
            (c.recall, c.tpr, c.precision, c.f1, c.fpr),
            (0.0, 0.0, 0.0, 0.0, 0.5)
        );

        let ws = vec![w(Some(0.3), 5), w(Some(0.4), 5)];
        let e = evaluate(&ws, &names(), &EvalConfig::new(1.0)).unwrap();
        let p1 = e.for_p(1).unwrap();
        assert_eq!(p1.auc, None);
        assert!(p1
            .auc_undefined_reason
            .as_deref()
            .unwrap()
            .starts_with("no negative window"));
        let c = p1.at_threshold;
        assert_eq!((c.fpr, c.precision, c.f1), (0.0, 0.0, 0.0));
        // Best F1 with every window positive: alert everything, F1 = 1.
        let b = p1.best_f1.unwrap();
        assert_eq!(b.f1, 1.0);
        assert!(b.threshold < 0.3 && b.threshold > 0.29999);

        let e = evaluate(&[w(None, 3)], &names(), &EvalConfig::new(1.0)).unwrap();
        assert_eq!(
            e.for_p(1).unwrap().auc_undefined_reason.as_deref(),
            Some("no scored window")
        );
    }

    #[test]
    fn nan_scores_are_left_out_and_bad_input_rejected() {
        let ws = vec![
            w(Some(f64::NAN), 5),
            w(Some(0.3), 0),
            w(Some(0.4), 2),
            w(Some(f64::INFINITY), 0),
        ];
        let e = evaluate(&ws, &names(), &EvalConfig::new(0.35)).unwrap();
        assert_eq!((e.windows_scored, e.windows_nan_score), (3, 1));
        assert_eq!(e.for_p(1).unwrap().auc, Some(0.5));
        assert_eq!(
            evaluate(&ws, &names(), &EvalConfig::new(f64::NAN)),
            Err(MetricsError::NanThreshold)
        );
        let cfg = EvalConfig {
            threshold: 0.0,
            ps: vec![],
        };
        assert_eq!(evaluate(&ws, &names(), &cfg), Err(MetricsError::NoP));
        let cfg = EvalConfig {
            threshold: 0.0,
            ps: vec![0, 1],
        };
        assert_eq!(evaluate(&ws, &names(), &cfg), Err(MetricsError::ZeroP));
        assert_eq!(
            evaluate(&ws, &[], &EvalConfig::new(0.0)),
            Err(MetricsError::PerLabelLength {
                index: 0,
                found: 1,
                expected: 0
            })
        );
        // P values are sorted and deduplicated.
        let cfg = EvalConfig {
            threshold: 0.0,
            ps: vec![20, 1, 20],
        };
        let e = evaluate(&ws, &names(), &cfg).unwrap();
        assert_eq!(e.by_p.iter().map(|p| p.p).collect::<Vec<_>>(), vec![1, 20]);
    }

    #[test]
    fn per_attack_counts_each_name() {
        let mk = |score: f64, a: u64, b: u64| WindowEval {
            alerted: None,
            start_ns: 0,
            end_ns: 1,
            score: Some(score),
            attack_packets: a + b,
            per_label: vec![a, b],
        };
        let ws = vec![mk(5.0, 12, 0), mk(0.1, 3, 9), mk(4.0, 0, 25), mk(0.2, 0, 0)];
        let n = vec!["a".to_string(), "b".to_string()];
        let e = evaluate(&ws, &n, &EvalConfig::new(1.0)).unwrap();
        let at = |p: u64, l: usize| {
            let d = &e.for_p(p).unwrap().per_attack[l];
            (d.name.as_str(), d.anomalous_windows, d.detected_windows)
        };
        assert_eq!(at(1, 0), ("a", 2, 1));
        assert_eq!(at(1, 1), ("b", 2, 1));
        assert_eq!(at(10, 0), ("a", 1, 1));
        // Window 2 holds 12 attack packets in total (P=10 positive) but only 9 of "b".
        assert_eq!(at(10, 1), ("b", 1, 1));
        assert_eq!(e.for_p(10).unwrap().positive_windows, 3);
        assert_eq!(at(20, 0), ("a", 0, 0));
        assert_eq!(at(20, 1), ("b", 1, 1));
    }

    #[test]
    fn next_down_works() {
        assert_eq!(next_down(1.0), 1.0 - f64::EPSILON / 2.0);
        assert!(next_down(0.0) < 0.0);
        assert_eq!(next_down(-1.0), -1.0 - f64::EPSILON);
        assert_eq!(next_down(f64::INFINITY), f64::MAX);
    }
}
