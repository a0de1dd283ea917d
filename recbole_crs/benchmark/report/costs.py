"""What a variant's runs cost, for the tables: epochs trained and whether a run hit its epoch cap, CPU seconds per
run, and the pre-training compute of the variants that pre-train.

* **Epochs run** (``epochs_run``): the epochs of the training stage that early stopping watches (the fine-tuning
  stage of S3Rec and of CRSPretrain's pipeline). A run **hit its cap** when it trained its config's ``epochs``:
  validation never stopped it, so the model may be under-trained; the table marks the variant with
  :data:`CAP_MARK` and a note says in how many runs.
* **CPU seconds** (``cpu_s``): the run's process, every stage, dataset building and test evaluation included.
* **Pre-training** (fixed budgets, never early-stopped): S3Rec's pre-training stage (``stages[pretrain]``: its
  ``epochs`` and ``train_cpu_s``, the training alone) and CRSPretrain's generator and pre-training stages
  (``pipeline_cpu_s``, with their budgets ``generator_epochs`` and ``pretrain_epochs``).
"""

from recbole_crs.benchmark.report.summary import fmt, mean_std

CAP_MARK = "†"
COST_HEADERS = ["epochs", "CPU s / run", "wall s / run"]
# CRSPretrain's pipeline stages that pre-train, with the config key of their fixed budget.
PIPELINE_PRETRAINING = (("generator", "generator_epochs"), ("pretrain", "pretrain_epochs"))


def epoch_cap(run):
    """The ``epochs`` the run's trained stage could run at most (its final config's; older runs: ``resolved``)."""
    return (run.get("final_config") or {}).get("epochs", (run.get("resolved") or {}).get("epochs"))


def hit_cap(run):
    cap = epoch_cap(run)
    return run.get("epochs_run") is not None and cap is not None and run["epochs_run"] >= cap


def cost_cells(entry):
    """The cost cells of a variant's row: epochs (marked where a run hit its cap), CPU and wall seconds."""
    if not entry["ok"]:
        return ["-"] * len(COST_HEADERS)
    runs = entry["ok_runs"]
    epochs = fmt(*mean_std([r.get("epochs_run") for r in runs]), digits=1)
    if any(hit_cap(r) for r in runs):
        epochs += f" {CAP_MARK}"
    return [epochs, fmt(*mean_std([r.get("cpu_s") for r in runs]), digits=0),
            fmt(*mean_std([r.get("wall_s") for r in runs]), digits=0)]


def pretraining_stages(run):
    """``[(stage, epochs, training CPU seconds)]`` of the run's fixed pre-training budgets (empty: none)."""
    stages = [(entry["stage"], entry.get("epochs"), entry.get("train_cpu_s"))
              for entry in run.get("stages") or [] if entry.get("stage") == "pretrain"]
    config = run.get("final_config") or {}
    stages += [(stage, config.get(budget), run["pipeline_cpu_s"][stage])
               for stage, budget in PIPELINE_PRETRAINING if stage in (run.get("pipeline_cpu_s") or {})]
    return stages


def _pretraining_text(runs):
    """``generator 5 epochs 20 ± 1 s + pretrain 50 epochs 80 ± 2 s = 100 ± 3 s`` over a variant's runs."""
    per_run = [stages for stages in (pretraining_stages(r) for r in runs) if stages]
    names = [stage for stage, _, _ in per_run[0]]
    parts = []
    for index, name in enumerate(names):
        epochs = sorted({stages[index][1] for stages in per_run if len(stages) > index})
        seconds = mean_std([stages[index][2] for stages in per_run if len(stages) > index])
        parts.append(f"{name} {'/'.join(str(e) for e in epochs)} epochs {fmt(*seconds, digits=0)} s")
    text = " + ".join(parts)
    if len(names) > 1:
        total = mean_std([sum(s[2] for s in stages if s[2] is not None) for stages in per_run])
        text += f" = {fmt(*total, digits=0)} s"
    return text


def cost_notes(variants):
    """Notes under a table: which variants hit their epoch cap, and the pre-training compute of each variant."""
    notes = []
    capped = [(name, sum(hit_cap(r) for r in s["ok_runs"]), len(s["ok_runs"]),
               sorted({epoch_cap(r) for r in s["ok_runs"] if hit_cap(r)})) for name, s in variants.items()]
    capped = [c for c in capped if c[1]]
    if capped:
        notes.append(
            f"`{CAP_MARK}`: runs that trained their whole epoch budget (`epochs`) without early stopping on "
            "validation, so they may be under-trained: "
            + "; ".join(f"{name} {k} of {n} runs (epochs {'/'.join(str(c) for c in caps)})"
                        for name, k, n, caps in capped) + "."
        )
    pretraining = [(name, s["ok_runs"]) for name, s in variants.items()
                   if s["ok_runs"] and any(pretraining_stages(r) for r in s["ok_runs"])]
    if pretraining:
        notes.append(
            "`epochs` counts the early-stopped stage; pre-training is a fixed budget, not early-stopped (epochs, and "
            "CPU seconds of its training, mean ± std): "
            + "; ".join(f"{name}: {_pretraining_text(runs)}" for name, runs in pretraining) + "."
        )
    return notes
