"""The evidence weights: a logistic model of "this slice's mask is still the seed's object",
fitted on followed tracks (`tracks.py`).

Each slice beyond the seed is a sample, labelled by whether the label holds that slice.
Every case weighs the same, and within the fit both classes weigh the same, so the
log-odds are likelihood ratios: summed along a track, their peak is the most likely end
whatever the share of slices past the end in the sample. Slices where the model found
nothing get one log-odds of their own, from their counts.
"""

from __future__ import annotations

import argparse
import pickle
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.cases import BENCHMARK, CHECK, folds, load_case  # noqa: E402
from benchmarks.encodings import store_encodings  # noqa: E402
from benchmarks.tracks import BOXES, Track, follow_boxes, outcome  # noqa: E402
from MedSAMAgentLib.segmenters.box_tracking import DEFAULT_RULES, EvidenceWeights, SliceEvidence  # noqa: E402

FEATURES = ("score_ratio", "grey_distance", "band_share", "overlap")
L2 = 1e-2  # a little shrinkage: the fit must not lean on one case


def samples(tracks: list[Track]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(features, on the object, weight, found) for every followed slice beyond a seed."""
    features, on, weights, found = [], [], [], []
    per_case: dict[str, int] = {}
    rows = [(track, row) for track in tracks for row in track.up + track.down]
    for track, _ in rows:
        per_case[track.case] = per_case.get(track.case, 0) + 1
    for track, row in rows:
        evidence: SliceEvidence = row.evidence
        features.append([getattr(evidence, name) for name in FEATURES])
        on.append(track.extent[0] <= row.index <= track.extent[1])
        weights.append(1.0 / per_case[track.case])
        found.append(evidence.found)
    return np.array(features, float), np.array(on, bool), np.array(weights), np.array(found, bool)


def fit(tracks: list[Track], features: tuple[str, ...] = FEATURES) -> EvidenceWeights:
    """Weights for `features` (the others 0) by class-balanced, case-balanced logistic
    regression."""
    x, on, weight, found = samples(tracks)
    columns = [FEATURES.index(name) for name in features]
    design = np.column_stack([np.ones(found.sum()), x[found][:, columns]])
    target, sample_weight = on[found].astype(float), weight[found].copy()
    for value in (True, False):  # both classes weigh the same
        chosen = on[found] == value
        sample_weight[chosen] /= sample_weight[chosen].sum()
    beta = np.zeros(design.shape[1])
    for _ in range(50):  # Newton's method on the weighted, L2-penalised log-likelihood
        p = 1 / (1 + np.exp(-design @ beta))
        gradient = design.T @ (sample_weight * (target - p)) - L2 * np.r_[0, beta[1:]]
        hessian = design.T @ (design * (sample_weight * p * (1 - p))[:, None]) + L2 * np.diag(np.r_[0, np.ones(len(beta) - 1)])
        step = np.linalg.solve(hessian, gradient)
        beta += step
        if np.abs(step).max() < 1e-8:
            break
    named = dict.fromkeys(FEATURES, 0.0)
    named.update(zip(features, beta[1:].round(3).tolist()))
    return EvidenceWeights(intercept=round(float(beta[0]), 3), empty=_empty_log_odds(on, weight, found), **named)


def _empty_log_odds(on: np.ndarray, weight: np.ndarray, found: np.ndarray) -> float:
    """log of P(nothing found | object) / P(nothing found | past the end), smoothed."""
    empty = ~found
    on_rate = (weight[empty & on].sum() + 0.5) / (weight[on].sum() + 1)
    off_rate = (weight[empty & ~on].sum() + 0.5) / (weight[~on].sum() + 1)
    return round(float(np.log(on_rate / off_rate)), 3)


def main() -> None:
    from MedSAMAgentLib.segmenters.litemedsam import LiteMedSAM
    from MedSAMAgentLib.segmenters.runtimes.hardware import cpu_name

    parser = argparse.ArgumentParser(description="Fit the evidence weights; held-out figures by two folds")
    parser.add_argument("--tracks", type=Path, help="keep the followed tracks in this file between runs")
    parser.add_argument("--encodings", type=Path, help="keep the image encodings here between runs")
    args = parser.parse_args()
    tracks = pickle.loads(args.tracks.read_bytes()) if args.tracks and args.tracks.is_file() else {}
    missing = [name for name in BENCHMARK + CHECK if (name, BOXES[0]) not in tracks]
    if missing:
        segmenter = LiteMedSAM(device="cpu", cache_size=512)
        if args.encodings:
            store_encodings(segmenter, args.encodings)
        print(f"following {len(missing)} cases on {cpu_name()}, LiteMedSAM on {segmenter.runtime.name} {segmenter.runtime.precision}")
        for name in missing:
            for how, track in follow_boxes(segmenter, load_case(name)).items():
                tracks[(name, how)] = track
            if args.tracks:
                args.tracks.write_bytes(pickle.dumps(tracks))

    def replayed(names, weights) -> str:
        dices = {how: np.mean([outcome(tracks[(name, how)], DEFAULT_RULES, weights).dice for name in names]) for how in BOXES}
        return ", ".join(f"{how} {value:.3f}" for how, value in dices.items())

    def on(names):
        return [tracks[(name, how)] for name in names for how in BOXES]

    everything = fit(on(BENCHMARK))
    print(f"fitted on the {len(BENCHMARK)} benchmark cases: {everything}")
    print(f"  benchmark, replayed: {replayed(BENCHMARK, everything)}")
    for chosen_on, held_out in (folds(BENCHMARK), folds(BENCHMARK)[::-1]):
        weights = fit(on(chosen_on))
        print(f"fitted on {len(chosen_on)} cases: {weights}\n  the other {len(held_out)}, held out: {replayed(held_out, weights)}"
              f"\n  the same cases with the weights fitted on all: {replayed(held_out, everything)}")
    print(f"the {len(CHECK)} structures the benchmark never shows, weights fitted on the benchmark: {replayed(CHECK, everything)}")


if __name__ == "__main__":
    main()
