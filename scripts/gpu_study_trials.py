"""The GPU study's trials at a fraction of their tokens (one-GPU machine, a few minutes):
configs/study-gpu.yaml's reference and its best-ramp window trial (FlexAttention with a
block mask), through `sweep trial`, on the embedded corpus (the machine may have no
network for the hub's SlimPajama) with the spec's BPE tokenizer. Prints training tokens/s,
evaluation and probe seconds, and the study's whole time estimated from them.

    python scripts/gpu_study_trials.py [--fraction 0.25] [--results /tmp/gpu-study]
    python scripts/gpu_study_trials.py --parallel 4   # the main arm's trials side by side

--parallel N: N trials of the main arm at once on the one GPU (as `resources.
gpus_per_worker: 0.25` has Ray run them), and the aggregate tokens/s that gives.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sweep.config import study_spec  # noqa: E402


def local_spec(st, arm: str, ramps: list, fraction: float, out: Path, cpus: int) -> Path:
    """The arm's spec on the embedded corpus, ``fraction`` of its tokens, no W&B."""
    raw = st.arm_raw(arm, ramps)
    raw["data"] = {**raw["data"], "corpus": "stdlib", "held_out_fraction": 0.2}
    raw["data"].pop("max_documents", None)
    steps = raw["budget"]["tokens"] // raw["budget"]["tokens_per_step"]
    raw["budget"]["tokens"] = raw["budget"]["tokens_per_step"] * max(1, int(steps * fraction))
    raw["wandb"] = {"mode": "disabled"}
    raw["resources"] = {**raw["resources"], "gpus_per_worker": 1, "cpus_per_worker": cpus}
    path = out / f"{raw['name']}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def parallel(st, ramps: list, a, out: Path) -> None:
    path = local_spec(st, "alibi", ramps, a.fraction, out, cpus=max(1, 16 // a.parallel))
    raw = yaml.safe_load(path.read_text())
    ids = [t.trial_id for t in st.arm_spec("alibi", ramps).trials()][: a.parallel]
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sweep",
                "trial",
                str(path),
                "--trial",
                tid,
                "--results",
                str(out),
            ]
        )  # fmt: skip
        for tid in ids
    ]
    codes = [p.wait() for p in procs]
    recs = [
        json.loads((out / raw["name"] / "trials" / tid / "record.json").read_text()) for tid in ids
    ]
    tokens = sum(r["tokens_trained"] for r in recs)
    train = max(r["train_wall_s"] for r in recs)
    each = [r["tokens_trained"] / r["train_wall_s"] for r in recs]
    print(
        f"{a.parallel} trials side by side ({', '.join(ids)}; exits {codes}): "
        f"{tokens / train:,.0f} tokens/s together, each {min(each):,.0f}-{max(each):,.0f}; "
        f"eval {max(r['eval_wall_s'] for r in recs):.1f}s, probes "
        f"{max(r['probe_wall_s'] for r in recs):.1f}s at most"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fraction", type=float, default=0.25)
    ap.add_argument("--results", default="/tmp/gpu-study")
    ap.add_argument("--parallel", type=int, default=0)
    a = ap.parse_args()
    st = study_spec.load(ROOT / "configs" / "study-gpu.yaml")
    main_spec = st.arm_spec(st.main, [])
    ramps = [study_spec.ramp_entry(main_spec, r) for r in study_spec.ramp_labels(main_spec)]
    out, rows = Path(a.results), []
    out.mkdir(parents=True, exist_ok=True)
    if a.parallel:
        return parallel(st, ramps, a, out)
    for arm, trial in (("alibi", "constant-s0"), ("window", "linear-r0.5-window-s0")):
        path = local_spec(st, arm, ramps, a.fraction, out, cpus=8)
        raw = yaml.safe_load(path.read_text())
        r = subprocess.run(
            [sys.executable, "-m", "sweep", "trial", str(path), "--trial", trial,
             "--results", str(out)], text=True,
        )  # fmt: skip
        rec_path = out / raw["name"] / "trials" / trial / "record.json"
        rec = json.loads(rec_path.read_text()) if rec_path.exists() else {}
        row = {
            "trial": f"{arm}/{trial}",
            "exit": r.returncode,
            "status": rec.get("status"),
            "error": rec.get("error"),
            "tokens": rec.get("tokens_trained"),
            "train_s": rec.get("train_wall_s"),
            "eval_s": rec.get("eval_wall_s"),
            "probe_s": rec.get("probe_wall_s"),
            "wall_s": rec.get("wall_s"),
            "kernel": rec.get("attention_kernel"),
            "far_loss": (rec.get("metrics") or {}).get("far_loss"),
        }
        if rec.get("train_wall_s"):
            row["tokens_per_s"] = rec["tokens_trained"] / rec["train_wall_s"]
        rows.append(row)
        print(json.dumps(row), flush=True)
    ok = [r for r in rows if r.get("tokens_per_s")]
    if ok:
        tps = min(r["tokens_per_s"] for r in ok)
        fixed = max((r["eval_s"] or 0) + (r["probe_s"] or 0) for r in ok)
        n = sum(len(st.arm_spec(arm, ramps).trials()) for arm in st.arm_names)
        # tokens of every arm at full budget; the wide arm's trials cost ~4x per token
        tokens = sum(
            len(sw.trials()) * sw.budget.tokens * (4 if arm == "wide" else 1)
            for arm, sw in ((arm, st.arm_spec(arm, ramps)) for arm in st.arm_names)
        )
        est = tokens / tps + n * fixed
        print(
            f"study-gpu: {n} trials; at {tps:,.0f} tokens/s and {fixed:.0f}s of evaluation a "
            f"trial, one trial at a time: ~{est / 60:.0f} min (trials sharing the GPU, "
            "as the spec asks, only shorten it)"
        )


if __name__ == "__main__":
    main()
