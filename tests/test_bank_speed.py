"""The prompt bank's benchmark (projects/sdpt/experiments/bank_speed.py):
the ratios on fake measurements, one real child in this process."""
import pytest
from helpers import DEMO_CONFIGS

from projects.sdpt.experiments import bank_speed


def test_bank_benchmark_ratios_on_fake_measurements(capsys):
    calls = []

    def spawn(spec):
        calls.append(spec)
        n = spec['tasks']
        cost = dict(bank=(10.0, 1.0), separate=(10.0, float(n)),
                    sequential=(8.0, 1.0), bank_uncached=(5.0, 1.0))
        speed, memory = cost[spec['mode']]
        return dict(times_s=[1.0], images_per_s=[speed],
                    peak_memory_bytes=int(memory * 2**30),
                    model_bytes=int(memory * 2**20),
                    prompt_projections_per_image=0.0)

    report = bank_speed.benchmark_bank('a.py', task_counts=(1, 4), batch=2,
                                       device='cpu', spawn=spawn)
    assert [(c['tasks'], c['mode']) for c in calls] == [
        (n, m) for n in (1, 4) for m in bank_speed.BANK_MODES]
    ratios = report['ratios']['4']
    assert ratios['bank_over_separate_peak_memory_bytes'] == 0.25
    assert ratios['bank_over_separate_images_per_s'] == 1.0
    assert ratios['bank_over_sequential_images_per_s'] == 1.25
    assert ratios['cached_over_uncached_images_per_s'] == 2.0
    bank_speed.print_bank_report(report)
    assert 'bank_over_separate_model_bytes: 0.250' in capsys.readouterr().out


@pytest.mark.slow
def test_bank_benchmark_child_caches_projections(demo_root):
    spec = dict(config=DEMO_CONFIGS['glip'],
                options={'model.prompt.num_tokens': 4},
                lang_model=str(demo_root / 'data' / 'demo' / 'bert'),
                device='cpu', size=64, batch=2, tasks=2, warmup=1,
                repeats=2, threads=None)
    runs = {mode: bank_speed.run_bank_child(dict(spec, mode=mode))
            for mode in ('bank', 'bank_uncached', 'separate')}
    # cached: projected during the warm-up only; uncached: every batch
    # (2 mixed batches x 2 tasks x 1 fusion layer for 4 images)
    assert runs['bank']['prompt_projections_per_image'] == 0
    assert runs['bank_uncached']['prompt_projections_per_image'] == 1.0
    bank, separate = runs['bank']['model_bytes'], runs['separate'][
        'model_bytes']
    assert 1.9 < separate / bank < 2.0  # two detectors vs one + 2 prompts
