"""Multi-round conversational recommendation: any trained model inside an ask-or-recommend loop, judged by
SR@t, AT and hDCG with a simulated user (the EAR / SCPR / UNICORN protocol; ``docs/conversation.md``).

Two parts (``.importlinter``, docs/architecture.md):

* **the simulation** (tensors and numpy; reads only ``recbole_crs.data``, ``recbole_crs.evaluation`` and the floors
  below, so it sits below the models): ``catalogue`` (the item-attribute table), ``rules`` (the game's rules, one
  function each), ``metrics`` (SR@t, AT, hDCG), ``episodes`` (UNICORN's pair order, per-episode random streams),
  ``histories`` (the training interactions a ranker reads), ``environment`` (batched episodes and the simulated
  user), ``policy`` (the interface), ``baselines`` (AbsGreedy, MaxEntropy), ``score_guided`` (ours), ``policies``
  (by name);
* **running it with trained models** (may import ``quick_start``, ``config``, ``validation``, ...): ``rankers`` (a
  model as a ranker), ``loop`` (playing batches), ``report`` (JSON, table, plot), ``options`` (defaults from
  ``properties/conversation.yaml``), ``runner`` (train or load, play, write; :func:`run_conversation`), ``sweep``
  (ScoreGuided's parameters on validation), ``interactive`` (a person as the user), ``cli`` / ``__main__``
  (``python -m recbole_crs.conversation``).
"""


def run_conversation(*args, **kwargs):
    """:func:`recbole_crs.conversation.runner.run_conversation`, imported on call: it loads quick_start, which the
    simulation does not need."""
    from recbole_crs.conversation.runner import run_conversation as run  # on call: runner loads quick_start

    return run(*args, **kwargs)
