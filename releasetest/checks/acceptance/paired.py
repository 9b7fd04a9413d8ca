"""The paired comparison of a candidate with the production release on the same holdout rows.

Both releases scored the same rows, so the test is paired: it looks only at the rows where they
differ, which is far more sensitive than comparing two metric values. A classification is tested
twice, and a regression in either metric BLOCKs: McNemar's test on the rows whose correctness
changed (``worse``: production right, candidate wrong; ``better``: the reverse) tests the accuracy
difference, and :func:`stratified_mcnemar` the balanced accuracy difference (the default
threshold's metric: a retrain that trades a small class for the large one keeps its accuracy and
loses balanced accuracy). A regression task is tested with the Wilcoxon signed-rank test on the
per-row change of the absolute error, which tests the MAE difference without assuming the errors
are normal. Both are two-sided (the conventional form; the
direction comes from the metric's delta), so "p < 0.01 and worse" is a one-sided 0.005.

McNemar's p-value is exact (``scipy.stats.binomtest`` on ``worse`` out of ``worse + better`` at
one half) when fewer than :data:`EXACT_BELOW` rows changed, where the chi-squared approximation is
poor, and chi-squared with Edwards' continuity correction (``(|worse - better| - 1)² / (worse +
better)``, one degree of freedom) from there on, where it is accurate and conservative and gives
the statistic reviewers know.

Metric deltas carry 95% confidence intervals computed analytically, as a normal approximation on
the per-row paired differences (accuracy, MAE; balanced accuracy as the per-class mean of them;
RMSE by the delta method), not by bootstrap: each is one pass over the rows, where a bootstrap of
a 200,000-row holdout costs seconds per metric, and at holdout sizes the normal approximation is
accurate.

A regression BLOCKs when a test is significant (``p < [acceptance] production_p_value``,
default 0.01) and its metric got worse by more than ``production_tolerance`` (relative to
production's value, default 0.01); with two tests per classification, the chance that two equally
good releases BLOCK is at most twice the p-value (0.02 at the default). Holdouts with different
digests cannot be paired: the metrics are compared only, and that never BLOCKs (a drop beyond
the tolerance is a verdict warning). :func:`against_production` runs it all from a history
directory.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from releasetest.checks.acceptance.findings import MetricDelta, PairedTest, ProductionComparison, p_text
from releasetest.tables import Key
from releasetest.verdict.predictions import Predictions, PredictionsUnreadable, load_predictions
from releasetest.verdict.production import Production, production_in

#: Below this many changed rows McNemar's p-value is the exact binomial one.
EXACT_BELOW = 25

#: The two-sided 95% normal quantile, ``scipy.stats.norm.ppf(0.975)``. scipy.stats is imported
#: only inside the tests: it costs about half a second, and the plugin imports this module's
#: settings at every pytest start.
Z95 = 1.959963984540054

DEFAULT_P_VALUE = 0.01

DEFAULT_TOLERANCE = 0.01

#: The ``[acceptance]`` keys of the comparison with production, for its table schema.
KEYS: dict[str, Key] = {
    "production_p_value": Key("number", "a regression against production BLOCKs only when the paired test's "
                              "p-value is below this", default=DEFAULT_P_VALUE, gt=0, le=0.5),
    "production_tolerance": Key("number", "how much worse than production's the metric may be (relative, "
                                "0.01 = 1%) before a significant drop BLOCKs", default=DEFAULT_TOLERANCE, ge=0, le=1),
}

#: The metric a metrics-only comparison (nothing to pair) judges the drop by, by task; the paired
#: comparison also tests balanced accuracy.
DECIDING = {"classification": "accuracy", "regression": "mae"}


@dataclass(frozen=True)
class ComparisonSettings:
    p_value: float = DEFAULT_P_VALUE
    tolerance: float = DEFAULT_TOLERANCE


def mcnemar(worse: int, better: int) -> PairedTest:
    """McNemar's test on the discordant counts (see the module docstring for exact vs chi-squared)."""
    from scipy import stats

    n = worse + better
    if n == 0:
        return PairedTest("McNemar (no row changed)", None, 1.0, 0, 0)
    if n < EXACT_BELOW:
        return PairedTest("McNemar exact binomial", None, float(stats.binomtest(worse, n, 0.5).pvalue), worse, better)
    statistic = max(abs(worse - better) - 1, 0) ** 2 / n
    return PairedTest("McNemar chi-squared, continuity-corrected", float(statistic),
                      float(stats.chi2.sf(statistic, 1)), worse, better)


#: Sign draws of the stratified test's randomization distribution: its p-value's resolution is
#: their inverse (1e-5), and at p near 0.01 its Monte Carlo error is about 3e-4.
DRAWS = 100_000


def stratified_mcnemar(truth: np.ndarray, cand_ok: np.ndarray, prod_ok: np.ndarray) -> PairedTest:
    """A paired test of balanced accuracy: McNemar's idea within each true class, combined with
    balanced accuracy's own weights. Balanced accuracy's change is ``T = mean_k (better_k -
    worse_k) / n_k``; if neither release is better on any class, each of class k's changed rows is
    as likely to have got better as worse, so ``better_k ~ Binomial(changed_k, 1/2)``,
    independently. The p-value is that randomization distribution's two-sided tail at ``T``,
    from :data:`DRAWS` seeded draws (the same counts give the same p-value on every run): the
    weights make the exact distribution a sum of unlike binomials, with no closed form, and a
    normal approximation is poor exactly where a small class with few changed rows weighs most.
    With one class it is McNemar's exact binomial test."""
    classes = [truth == k for k in np.unique(truth)]
    n = np.array([rows.sum() for rows in classes], dtype=np.float64)
    worse = np.array([(prod_ok & ~cand_ok)[rows].sum() for rows in classes], dtype=np.int64)
    better = np.array([(cand_ok & ~prod_ok)[rows].sum() for rows in classes], dtype=np.int64)
    changed = worse + better
    name = "McNemar stratified by class (balanced accuracy)"
    if not changed.any():
        return PairedTest(name + " (no row changed)", None, 1.0, 0, 0)
    observed = float(np.sum((better - worse) / n)) / len(n)
    rng = np.random.default_rng(0)
    extreme = 0
    for start in range(0, DRAWS, 10_000):  # in chunks: 10,000 x classes integers at a time
        drawn = rng.binomial(changed, 0.5, size=(min(10_000, DRAWS - start), len(n)))
        t = ((2 * drawn - changed) / n).sum(axis=1) / len(n)
        extreme += int((np.abs(t) >= abs(observed) - 1e-12).sum())
    return PairedTest(name, observed, (extreme + 1) / (DRAWS + 1), int(worse.sum()), int(better.sum()))


def wilcoxon_errors(candidate_abs: np.ndarray, production_abs: np.ndarray) -> PairedTest:
    """Wilcoxon signed-rank test on the per-row change of the absolute error; rows whose error did
    not change carry no information and are dropped (Wilcoxon's own treatment of zeros)."""
    from scipy import stats

    diff = np.asarray(candidate_abs, dtype=np.float64) - np.asarray(production_abs, dtype=np.float64)
    worse, better = int((diff > 0).sum()), int((diff < 0).sum())
    if worse + better == 0:
        return PairedTest("Wilcoxon signed-rank (no row changed)", None, 1.0, 0, 0)
    result = stats.wilcoxon(diff[diff != 0], zero_method="wilcox", alternative="two-sided")
    return PairedTest("Wilcoxon signed-rank on absolute errors", float(result.statistic), float(result.pvalue),
                      worse, better)


def _mean_delta(metric: str, production: float, candidate: float, diff: np.ndarray) -> MetricDelta:
    """A metric that is the mean of a per-row quantity: the CI of the mean paired difference."""
    delta = candidate - production
    se = float(np.std(diff, ddof=1)) / math.sqrt(len(diff)) if len(diff) > 1 else 0.0
    return MetricDelta(metric, production, candidate, delta, delta - Z95 * se, delta + Z95 * se)


def _balanced_delta(truth: np.ndarray, cand_ok: np.ndarray, prod_ok: np.ndarray) -> MetricDelta:
    """Balanced accuracy is the mean over the classes in the truth of each class's accuracy, so its
    difference's variance is the sum of the per-class ones over the number of classes squared."""
    recalls_c, recalls_p, var = [], [], 0.0
    groups = [truth == k for k in np.unique(truth)]
    for rows in groups:
        d = cand_ok[rows].astype(np.float64) - prod_ok[rows].astype(np.float64)
        recalls_c.append(float(cand_ok[rows].mean()))
        recalls_p.append(float(prod_ok[rows].mean()))
        var += float(np.var(d, ddof=1)) / len(d) if len(d) > 1 else 0.0
    c, p = float(np.mean(recalls_c)), float(np.mean(recalls_p))
    se = math.sqrt(var) / len(groups)
    return MetricDelta("balanced_accuracy", p, c, c - p, c - p - Z95 * se, c - p + Z95 * se)


def _rmse_delta(cand_err: np.ndarray, prod_err: np.ndarray) -> MetricDelta:
    """RMSE = sqrt(mean(e²)); by the delta method its difference is, to first order, the mean of
    e_c²/(2·rmse_c) − e_p²/(2·rmse_p)."""
    rc, rp = float(np.sqrt(np.mean(cand_err ** 2))), float(np.sqrt(np.mean(prod_err ** 2)))
    g = cand_err ** 2 / (2 * rc) if rc > 0 else np.zeros_like(cand_err)
    g = g - (prod_err ** 2 / (2 * rp) if rp > 0 else 0.0)
    se = float(np.std(g, ddof=1)) / math.sqrt(len(g)) if len(g) > 1 else 0.0
    return MetricDelta("rmse", rp, rc, rc - rp, rc - rp - Z95 * se, rc - rp + Z95 * se)


def _label_indices(classes: Sequence[Any], labels: Sequence[Any]) -> np.ndarray:
    """Each label's index in ``classes`` (-1 for one outside them, which no prediction matches):
    correctness per row is then one comparison of small ints, whatever the classes' type."""
    index = {c: i for i, c in enumerate(classes)}
    return np.fromiter((index.get(y, -1) for y in labels), dtype=np.int64, count=len(labels))


def _relative_drop(metric: str, production: float, candidate: float) -> float:
    """How much worse the candidate is, as a share of production's value (the absolute change
    when production's value is 0); lower is better for errors."""
    worse_by = candidate - production if metric in ("mae", "rmse") else production - candidate
    return worse_by / abs(production) if production else worse_by


def compare_paired(candidate: Predictions, stored: Predictions, labels: Sequence[Any], production: Production,
                   settings: ComparisonSettings) -> ProductionComparison:
    """Candidate and production predictions on the same holdout rows (same digest, same length)."""
    if (stored.holdout_digest != candidate.holdout_digest or not len(stored) == len(candidate) == len(labels)
            or not len(labels)):
        raise ValueError("paired comparison needs both releases' predictions on the same, non-empty holdout")
    task = candidate.task
    if task == "regression":
        truth = np.asarray(labels, dtype=np.float64)
        cand_err = candidate.values.astype(np.float64) - truth
        prod_err = stored.values.astype(np.float64) - truth
        mae = _mean_delta("mae", float(np.abs(prod_err).mean()), float(np.abs(cand_err).mean()),
                          np.abs(cand_err) - np.abs(prod_err))
        deltas: tuple[MetricDelta, ...] = (mae, _rmse_delta(cand_err, prod_err))
        tested = [(mae, wilcoxon_errors(np.abs(cand_err), np.abs(prod_err)))]
    else:
        truth = _label_indices(candidate.classes, labels)
        cand_ok = candidate.values.astype(np.int64) == truth
        prod_ok = stored.values.astype(np.int64) == _label_indices(stored.classes, labels)
        acc = _mean_delta("accuracy", float(prod_ok.mean()), float(cand_ok.mean()),
                          cand_ok.astype(np.float64) - prod_ok.astype(np.float64))
        balanced = _balanced_delta(truth, cand_ok, prod_ok)
        deltas = (acc, balanced)
        tested = [(acc, mcnemar(int((prod_ok & ~cand_ok).sum()), int((cand_ok & ~prod_ok).sum()))),
                  (balanced, stratified_mcnemar(truth, cand_ok, prod_ok))]

    def regression_in(delta: MetricDelta, test: PairedTest) -> bool:
        return test.p_value < settings.p_value and _relative_drop(delta.metric, delta.production,
                                                                  delta.candidate) > settings.tolerance

    # Each tested metric decides; the first that regressed is the one named (accuracy before
    # balanced accuracy), else the first.
    deciding, test = next(((d, t) for d, t in tested if regression_in(d, t)), tested[0])
    metric = deciding.metric
    drop = _relative_drop(metric, deciding.production, deciding.candidate)
    significant = test.p_value < settings.p_value
    regressed = regression_in(deciding, test)
    evidence = (f"{deciding.describe()}; {test.worse} rows got worse and {test.better} better; "
                f"{test.name}, {p_text(test.p_value)}")
    if regressed:
        message = (f"regression against production {production.label} ({production.how}): {evidence} < "
                   f"{settings.p_value:g}, a drop of {drop:.1%} beyond the tolerated {settings.tolerance:.1%}")
    elif test.worse + test.better == 0:
        unchanged = ("changed its absolute error" if task == "regression" else "went from right to wrong or back")
        message = (f"no regression against production {production.label} ({production.how}): none of the "
                   f"{len(candidate)} holdout rows {unchanged}")
    else:
        why = (f"{p_text(test.p_value)} is not below {settings.p_value:g}" if not significant else
               f"the drop of {drop:.1%} is within the tolerated {settings.tolerance:.1%}" if drop > 0 else
               "the candidate is not worse")
        message = (f"no significant regression against production {production.label} ({production.how}): "
                   f"{why}; {evidence}")
        others = [f"{d.metric}: {d.delta:+.4f}, {t.name}, {p_text(t.p_value)}" for d, t in tested if t is not test]
        if others:
            message += f" ({'; '.join(others)}: no regression either)"
    return ProductionComparison(production.label, production.release_id, production.how, task, metric, True,
                                candidate.holdout_digest, stored.holdout_digest, len(candidate), settings.p_value,
                                settings.tolerance, regressed, message, test, drop, deltas)


def compare_metrics(task: str, candidate_holdout: str, candidate_metrics: Mapping[str, float],
                    production: Production, production_holdout: str | None, rows: int,
                    settings: ComparisonSettings, unreadable: str | None = None) -> ProductionComparison:
    """When the rows cannot be paired (another holdout, no predictions kept, or a kept file that is
    ``unreadable``): the metrics that both verdicts hold, without a test; never a regression, and
    the message says why."""
    verdict = production.verdict or {}
    acceptance = ((verdict.get("findings") or {}).get("acceptance") or {}) if isinstance(verdict, Mapping) else {}
    theirs = acceptance.get("metrics") if isinstance(acceptance, Mapping) else None
    theirs = theirs if isinstance(theirs, Mapping) else {}
    metric = DECIDING[task]
    names = ("accuracy", "balanced_accuracy") if task == "classification" else ("mae", "rmse")
    deltas = tuple(MetricDelta(m, float(theirs[m]), float(candidate_metrics[m]),
                               float(candidate_metrics[m]) - float(theirs[m]))
                   for m in names if isinstance(theirs.get(m), (int, float)) and m in candidate_metrics)
    if unreadable is not None:
        why = f"production {production.label}'s kept predictions cannot be read ({unreadable})"
    elif production_holdout is None:
        why = f"history keeps no predictions of production {production.label}"
    else:
        why = (f"the holdout differs from the one production {production.label} was gated on "
               f"({candidate_holdout.split(':')[-1][:12]} vs {production_holdout.split(':')[-1][:12]})")
    drop = next((_relative_drop(metric, d.production, d.candidate) for d in deltas if d.metric == metric), None)
    if not deltas:
        message = f"{why}, and its verdict records no {metric}: not compared"
    else:
        message = f"{why}: metrics compared only, no paired test: " + "; ".join(d.describe() for d in deltas)
        if drop is not None and drop > settings.tolerance:
            message += (f" ({metric} is {drop:.1%} worse, beyond the tolerated {settings.tolerance:.1%}; gate "
                        "production's release on this holdout, so that history keeps its predictions here, to "
                        "test it)")
    return ProductionComparison(production.label, production.release_id, production.how, task, metric, False,
                                candidate_holdout, production_holdout, rows, settings.p_value, settings.tolerance,
                                False, message, None, drop, deltas)


def compare(candidate: Predictions, labels: Sequence[Any], production: Production, stored: Predictions | None,
            candidate_metrics: Mapping[str, float], settings: ComparisonSettings) -> ProductionComparison:
    """Paired when production's kept predictions are on the candidate's holdout, else metrics only."""
    if (stored is not None and stored.holdout_digest == candidate.holdout_digest and stored.task == candidate.task
            and len(stored) == len(candidate) == len(labels)):
        return compare_paired(candidate, stored, labels, production, settings)
    return compare_metrics(candidate.task, candidate.holdout_digest, candidate_metrics, production,
                           stored.holdout_digest if stored is not None else None, len(candidate), settings)


def against_production(history_dir: Path, stage: str, promote_to: str | None, candidate: Predictions,
                       labels: Sequence[Any], candidate_metrics: Mapping[str, float],
                       settings: ComparisonSettings) -> ProductionComparison | None:
    """The whole comparison from a history directory: find production, load its predictions on the
    candidate's holdout, compare. None when history has no production release (a first release)."""
    production = production_in(history_dir, stage, promote_to, candidate.release_id)
    if production is None:
        return None
    try:
        stored = load_predictions(history_dir, production.release_id, candidate.holdout_digest)
    except PredictionsUnreadable as exc:
        return compare_metrics(candidate.task, candidate.holdout_digest, candidate_metrics, production, None,
                               len(candidate), settings, unreadable=str(exc))
    return compare(candidate, labels, production, stored, candidate_metrics, settings)
