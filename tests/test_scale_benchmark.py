"""benchmarks/scale.py: its RSS guard stops a process that grows too large, slopes, table, variant checks."""

import importlib.util
import os
import subprocess
import sys

import pytest

SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks", "scale.py")


@pytest.fixture(scope="module")
def scale():
    spec = importlib.util.spec_from_file_location("scale_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_rss_guard_ends_a_process_that_passes_the_limit():
    code = (
        "import importlib.util, time\n"
        f"spec = importlib.util.spec_from_file_location('s', {SCRIPT!r})\n"
        "s = importlib.util.module_from_spec(spec); spec.loader.exec_module(s)\n"
        "s.start_rss_guard(s.vm_kib('VmRSS') / 2**20 + 0.15)\n"  # 150 MiB above now: the buffer passes it
        "time.sleep(0.3)\n"
        "print('below the limit', flush=True)\n"
        "data = bytearray(400 * 2**20)\n"
        "time.sleep(5)\n"
        "print('not stopped')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 3
    assert "below the limit" in done.stdout and "not stopped" not in done.stdout
    assert done.stderr.strip().splitlines()[-1].startswith("stopped by the RSS guard: VmRSS")


def test_slopes_are_log_log_from_the_smallest_to_the_largest_size(scale):
    assert scale.slope([(10**6, 10.0), (10**7, 100.0)]) == pytest.approx(1.0)
    assert scale.slope([(10**7, 100.0), (2 * 10**6, 7.0), (10**6, 25.0)]) == pytest.approx(0.6021, abs=1e-3)
    assert scale.slope([(10**6, 10.0)]) is None
    records = [
        {"rows": 10**6, "write_s": 1.0, "mode": "compact/lazy", "load": {"load_s": 10.0, "peak_rss_MiB": 600.0, "rss_before_MiB": 400.0, "inter_feat_MiB": 50.0},
         "steps": {"sasrec": {"s_per_1000_steps": 100.0}}},
        {"rows": 10**7, "write_s": 1.0, "mode": "compact/lazy", "load": {"load_s": 100.0, "peak_rss_MiB": 2400.0, "rss_before_MiB": 400.0, "inter_feat_MiB": 50.0},
         "steps": {"sasrec": {"s_per_1000_steps": 100.0}}},
        {"rows": 10**6, "write_s": 1.0, "mode": "recbole/lazy", "load": {"error": "stopped by the RSS guard"}},
    ]
    found = scale.slopes(records, ["sasrec"])
    assert found["compact/lazy"]["load s"] == pytest.approx(1.0)
    assert found["compact/lazy"]["peak RSS - RSS before load"] == pytest.approx(1.0)
    assert found["compact/lazy"]["sasrec s/1000 steps"] == pytest.approx(0.0)
    assert "recbole/lazy" not in found  # one size, and it failed
    text = scale.table(records, ["sasrec"])
    assert scale.DDP_COLUMN in text.splitlines()[0]
    assert "stopped by the RSS guard" in text


def test_variant_must_name_a_loading_and_a_windows_mode(scale):
    scale.check_variant("compact/lazy")
    scale.check_variant("recbole/materialized")
    with pytest.raises(SystemExit, match="is not <inter_loading>/<history_windows>"):
        scale.check_variant("lazy")


def test_merge_keeps_the_first_measurement_and_fills_missing_parts(scale, tmp_path):
    import json

    first = {"settings": {"run": 1}, "records": [
        {"rows": 10**7, "write_s": 1.0, "mode": "compact/lazy", "load": {"load_s": 100.0}, "steps": None}]}
    second = {"settings": {"run": 2}, "records": [
        {"rows": 10**7, "write_s": 1.0, "mode": "compact/lazy", "load": {"load_s": 999.0},
         "steps": {"sasrec": {"s_per_1000_steps": 5.0}}},
        {"rows": 10**6, "write_s": 1.0, "mode": "recbole/lazy", "load": {"load_s": 50.0}}]}
    paths = []
    for i, data in enumerate((first, second)):
        paths.append(tmp_path / f"{i}.json")
        paths[-1].write_text(json.dumps(data))
    records, settings = scale.merged_records(paths)
    assert settings == [{"run": 1}, {"run": 2}]
    assert [(r["rows"], r["mode"]) for r in records] == [(10**6, "recbole/lazy"), (10**7, "compact/lazy")]
    assert records[1]["load"]["load_s"] == 100.0 and records[1]["steps"]["sasrec"]["s_per_1000_steps"] == 5.0
