"""Statistics of loaded runs: settings (config without seed) and their labels, mean +- std
over seeds, radii after pre-training and paired win rates, as in Herranz-Celotti & Rouat
(arXiv 2308.12075, section 4): "rho 0.5 beats rho 1 in x % of paired runs"."""
from __future__ import annotations

import json
import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from itertools import combinations
from typing import Any

from ..._checks import is_real
from .load import NUMBER, configured_runs, finished_runs, is_a, run_status

SEED = "run.seed"
# keys that do not change a run's result when another key has a value: (key prefix, that key,
# its value); e.g. pretrain.rho when pretrain.method = none (docs/sweeps.md, "Reports")
UNUSED_WHEN = (("pretrain.", "pretrain.method", "none"),
               ("init.options", "init.scheme", "default"))


def settings_of(run: dict) -> dict[str, Any]:
    """The run's canonical config flattened to dotted keys (``run.seed`` included); keys
    hashed only when set show their default when unset (``optim.floss_every=0``, not null)."""
    from ...train.config import _HASHED_WHEN_SET, Config, canonical

    data = {k: v for k, v in run["config"].items() if k != "hash"}
    flat = flatten(canonical(Config.from_dict(data)))
    for (section, key), default in _HASHED_WHEN_SET.items():
        flat.setdefault(f"{section}.{key}", default)
    return flat


def flatten(data: dict, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (an empty dict stays a value)."""
    flat = {}
    for key, value in data.items():
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def ident(value: Any) -> str:
    """A value's identity for grouping and pairing (JSON with sorted keys)."""
    return json.dumps(value, sort_keys=True)


def order_key(value: Any) -> tuple:
    """Numbers first in numeric order, then everything else by its text."""
    if is_real(value):
        return (0, value, "")
    return (1, 0, ident(value))


def applies(key: str, settings: dict[str, Any]) -> bool:
    """Whether config ``key`` changes the result of a run with these (flat) ``settings``:
    pre-training keys do not when ``pretrain.method`` is ``none``, ``init.options`` do not
    when ``init.scheme`` is ``default``. Labels leave out keys that do not apply.

    Example:
        >>> applies("pretrain.rho", {"pretrain.method": "none", "pretrain.rho": 0.5})
        False
        >>> applies("pretrain.rho", {"pretrain.method": "lsc", "pretrain.rho": 0.5})
        True
    """
    return not any(key.startswith(prefix) and key != control and settings.get(control) == value
                   for prefix, control, value in UNUSED_WHEN)


def varying_keys(runs: Sequence[dict]) -> list[str]:
    """Config keys (without ``run.seed``) whose value differs between ``runs`` (runs without a
    readable config are left out)."""
    flats = [settings_of(r) for r in configured_runs(runs)]
    keys = sorted({k for f in flats for k in f} - {SEED})
    return [k for k in keys if len({ident(f.get(k)) for f in flats}) > 1]


def _short(keys: list[str]) -> dict[str, str]:
    """``model.num_layers`` -> ``num_layers`` unless two keys would share a short name."""
    last = [k.rsplit(".", 1)[-1] for k in keys]
    return {k: s if last.count(s) == 1 else k for k, s in zip(keys, last, strict=True)}


def group_runs(runs: Sequence[dict]) -> dict[str, list[dict]]:
    """Runs grouped by setting (config without seed), labelled by the keys that vary and
    apply to the setting (:func:`applies`; all varying keys where that would make two labels
    equal). Runs without a readable config belong to no setting.

    Returns:
        ``{"cell=gru, num_layers=2": [run, ...], ...}`` sorted by the varying values; one
        group labelled ``"all"`` when nothing but the seed varies.
    """
    runs = configured_runs(runs)
    keys = varying_keys(runs)
    groups: dict[str, list[dict]] = defaultdict(list)
    flats: dict[str, dict] = {}
    for run in runs:
        flat = settings_of(run)
        setting = ident([flat.get(k) for k in keys])
        flats.setdefault(setting, flat)
        groups[setting].append(run)
    ordered = sorted(groups, key=lambda g: [order_key(flats[g].get(k)) for k in keys])
    labels = _labels(keys, {g: flats[g] for g in ordered})
    return {labels[g]: groups[g] for g in ordered}


def _labels(keys: list[str], flats: dict[str, dict]) -> dict[str, str]:
    """A label per setting from the varying ``keys`` that are set and apply; settings whose
    labels would collide get every varying key."""
    short = _short(keys)

    def label(flat: dict, only_applying: bool) -> str:
        parts = [f"{short[k]}={as_text(flat.get(k))}" for k in keys
                 if flat.get(k) not in (None, {}) and (not only_applying or applies(k, flat))]
        return ", ".join(parts) or "all"

    labels = {g: label(flat, True) for g, flat in flats.items()}
    counts = Counter(labels.values())
    return {g: lab if counts[lab] == 1 else label(flats[g], False) for g, lab in labels.items()}


def as_text(value: Any) -> str:
    """How labels and tables show a config value (strings bare, the rest as JSON)."""
    return value if isinstance(value, str) else json.dumps(value)


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation; the std is nan where it is undefined: fewer than
    two values, or a NaN/Inf among them (whose mean is then NaN/Inf too).

    Example:
        >>> mean_std([1.0, 3.0])
        (2.0, 1.4142135623730951)
        >>> mean_std([1.0]), mean_std([1.0, float("nan")])
        ((1.0, nan), (nan, nan))
    """
    values = [float(v) for v in values]
    if not values:
        return math.nan, math.nan
    finite = all(math.isfinite(v) for v in values)
    std = statistics.stdev(values) if len(values) > 1 and finite else math.nan
    return statistics.fmean(values), std


def radii_after(summaries: Iterable[dict]) -> dict[str, float]:
    """Mean radius per map kind after pre-training (``summary["pretrain"]["after"]``, keys
    ``"kind layer"``), over layers and runs; empty without a pre-training report."""
    per_kind: dict[str, list[float]] = defaultdict(list)
    for s in summaries:
        pretrain = s.get("pretrain")
        after = pretrain.get("after") if isinstance(pretrain, dict) else None
        for key, value in (after.items() if isinstance(after, dict) else ()):
            if is_a(value, NUMBER) and isinstance(key, str) and key.split():
                per_kind[key.split()[0]].append(float(value))
    return {kind: statistics.fmean(v) for kind, v in sorted(per_kind.items())}


VAA_STAGES = {"init": 0, "pretrained": 1, "final": 2}  # the order runs measure VAA in


def vaa_stages(summaries: Iterable[dict]) -> dict[str, float]:
    """Mean VAA per stage over runs that measured it (RL runs: ``summary["vaa"]`` after 10000
    constant-input steps, ``summary["vaa_horizon"]`` after the episode's horizon, keys
    ``init`` / ``pretrained`` / ``final``); the horizon ones as ``"<stage>@horizon"``. Stages
    come in time order (summaries store their keys sorted).

    Example:
        >>> vaa_stages([{"vaa": {"init": 0.25, "final": None}}, {"vaa": {"init": 0.75}}])
        {'init': 0.5}
        >>> list(vaa_stages([{"vaa": {"final": 1.0, "init": 0.5}}]))
        ['init', 'final']
    """
    per_stage: dict[str, list[float]] = defaultdict(list)
    for s in summaries:
        for key, suffix in (("vaa", ""), ("vaa_horizon", "@horizon")):
            measured = s.get(key)
            for stage, value in (measured.items() if isinstance(measured, dict) else ()):
                if is_a(value, NUMBER):
                    per_stage[f"{stage}{suffix}"].append(float(value))

    def when(name: str) -> tuple:
        stage, _, horizon = name.partition("@")
        return bool(horizon), VAA_STAGES.get(stage, len(VAA_STAGES)), name

    return {stage: statistics.fmean(per_stage[stage]) for stage in sorted(per_stage, key=when)}


def summary_table(groups: dict[str, list[dict]], *, split: str = "test") -> list[dict]:
    """One row per group of runs: metric mean/std over finished seeds, chance, radii after
    pre-training, mean VAA per stage (:func:`vaa_stages`), and counts of seeds, diverged,
    crashed (or unfinished) and damaged runs.

    A damaged run (:func:`run_status`) whose summary is readable is averaged and counted as
    damaged; one whose summary is not counts only as damaged."""
    rows = []
    for label, runs in groups.items():
        s = [r["summary"] for r in runs if r.get("summary")]
        m, sd = mean_std([x[split]["metric"] for x in s])
        loss_m, loss_sd = mean_std([x[split]["loss"] for x in s])
        damaged = sum(run_status(r) == "damaged" for r in runs)
        rows.append({"setting": label, "metric": s[0]["metric"] if s else "metric",
                     "mean": m, "std": sd, "loss_mean": loss_m, "loss_std": loss_sd,
                     "chance": s[0]["chance"] if s else math.nan, "seeds": len(s),
                     "diverged": sum(x["status"] == "diverged" for x in s),
                     "crashed": sum(not r.get("summary") and run_status(r) != "damaged"
                                    for r in runs),
                     "damaged": damaged, "radii": radii_after(s), "vaa": vaa_stages(s)})
    return rows


def paired_win_rates(runs: Sequence[dict], *, split: str = "test") -> list[dict]:
    """Win rates of settings that differ in exactly one config key, over paired runs.

    Two finished runs are paired when they have the same seed and every other key equal. For
    each key and pair of its values ``(a, b)`` (``a`` first in numeric/text order) this pools
    every pair over all other settings: ``a`` wins when its ``split`` metric is better
    (higher or lower, as the task says); a tie counts half.

    Returns:
        Rows ``{"key", "a", "b", "wins", "ties", "losses", "pairs", "win_rate"}``.

    Example:
        >>> rows = paired_win_rates(load_runs("runs/sweeps/lsc_depth"))  # doctest: +SKIP
        >>> win_rate_sentence(rows[0])                                   # doctest: +SKIP
        'rho=0.5 beats rho=1 in 83% of 6 paired runs'
    """
    done = [(settings_of(r), r["summary"]) for r in finished_runs(runs)]
    done = [(f, s) for f, s in done if math.isfinite(s[split]["metric"])]
    rows = []
    for key in varying_keys(finished_runs(runs)):
        rows += _pairs_for_key(key, done, split)
    return rows


def _pairs_for_key(key: str, done: list[tuple[dict, dict]], split: str) -> list[dict]:
    buckets: dict[str, dict[str, tuple[Any, dict]]] = defaultdict(dict)
    for flat, summary in done:
        rest = ident({k: v for k, v in flat.items() if k != key})
        buckets[rest][ident(flat.get(key))] = (flat.get(key), summary)
    tally: dict[tuple[str, str], list] = {}
    for bucket in buckets.values():
        entries = sorted(bucket.values(), key=lambda e: order_key(e[0]))
        for (va, sa), (vb, sb) in combinations(entries, 2):
            if sa["metric"] != sb["metric"]:
                continue  # different metrics (a task key differs): not comparable
            row = tally.setdefault((ident(va), ident(vb)), [va, vb, 0, 0, 0])
            row[2 + _outcome(sa[split]["metric"], sb[split]["metric"],
                             sa["higher_is_better"])] += 1
    return [{"key": key, "a": va, "b": vb, "wins": w, "ties": t, "losses": lo,
             "pairs": w + t + lo, "win_rate": (w + t / 2) / (w + t + lo)}
            for va, vb, w, t, lo in tally.values()]


def parse_selector(text: str) -> dict[str, Any]:
    """``"pretrain.method=lsc,pretrain.rho=1"`` -> ``{"pretrain.method": "lsc", ...}``
    (values read as JSON when they parse, else kept as text)."""
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"bad selector {part!r} in {text!r}: write key=value[,key=value]")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value.strip()
    if not out:
        raise ValueError("empty selector: write key=value[,key=value]")
    return out


def _same(x: Any, y: Any) -> bool:
    numbers = is_real(x) and is_real(y)
    return float(x) == float(y) if numbers else ident(x) == ident(y)


def compare_win_rate(runs: Sequence[dict], a: str, b: str, *, split: str = "test") -> dict:
    """Paired win rate of the runs matching selector ``a`` over those matching ``b``.

    A run of ``a`` is paired with the run of ``b`` that agrees on every key neither selector
    names (seed included): e.g. LSC with ``rho = 1`` against the default, whose ``rho`` is
    unused but differs, which one-key pairing (:func:`paired_win_rates`) cannot pair.

    Example:
        >>> compare_win_rate(load_runs("runs/reproduce/lsc_learning_digits"),  # doctest: +SKIP
        ...                  "pretrain.method=lsc,pretrain.rho=1", "pretrain.method=none")
    """
    sel_a, sel_b = parse_selector(a), parse_selector(b)
    names = set(sel_a) | set(sel_b)
    done = [(settings_of(r), r["summary"]) for r in finished_runs(runs)]
    known = {k for flat, _ in done for k in flat}
    unknown = sorted(names - known)
    if unknown:
        raise ValueError(f"unknown config key(s) {', '.join(unknown)} in --compare; keys of "
                         f"these runs include: {', '.join(varying_keys(runs))}")
    sides: list[dict[str, dict]] = [{}, {}]
    for flat, summary in done:
        rest = ident({k: v for k, v in flat.items() if k not in names})
        for side, sel in zip(sides, (sel_a, sel_b), strict=True):
            if all(_same(flat.get(k), v) for k, v in sel.items()):
                side[rest] = summary
    if not sides[0] or not sides[1]:
        empty = a if not sides[0] else b
        raise ValueError(f"no finished run matches {empty!r}")
    tally = [0, 0, 0]
    for rest, sa in sides[0].items():
        sb = sides[1].get(rest)
        if sb is not None and sa["metric"] == sb["metric"] and \
                math.isfinite(sa[split]["metric"]) and math.isfinite(sb[split]["metric"]):
            tally[_outcome(sa[split]["metric"], sb[split]["metric"], sa["higher_is_better"])] += 1
    w, t, lo = tally
    return {"key": "compare", "a": a, "b": b, "wins": w, "ties": t, "losses": lo,
            "pairs": w + t + lo, "win_rate": (w + t / 2) / (w + t + lo) if w + t + lo else math.nan}


def _outcome(a: float, b: float, higher_is_better: bool) -> int:
    """0: ``a`` wins, 1: tie, 2: ``b`` wins."""
    if a == b:
        return 1
    return 0 if (a > b) == higher_is_better else 2
