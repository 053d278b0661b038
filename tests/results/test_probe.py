"""neurocascade.results.probe on a tiny run's cached rows: every variant scored on the same rows, overrides applied."""

from __future__ import annotations

import pytest

from neurocascade.results.probe import probe_recipes


def test_recipe_probe_scores_each_variant_stage_and_run(tiny_runs):
    run = tiny_runs["cascade"]
    variants = {"base": [], "smoothed": ["train.label_smoothing=0.1"]}
    result = probe_recipes([run], variants, data=str(tiny_runs["data"]), cache_root=tiny_runs["cache"], seeds=2)
    label = f"{run.parent.name}/{run.name}"
    for name in variants:
        for stage in ("gate", "subtype", "flat"):
            score = result["val_macro_f1"][name][stage][label]
            assert 0.0 <= score <= 1.0
            assert result["mean"][name][stage] == pytest.approx(score)
            assert 0.0 <= result["seed_ensemble_mean"][name][stage] <= 1.0
    assert result["variants"] == variants


def test_a_bad_override_is_a_config_error(tiny_runs):
    from neurocascade.errors import ConfigError

    with pytest.raises(ConfigError, match="label_smoothing"):
        probe_recipes(
            [tiny_runs["cascade"]],
            {"bad": ["train.label_smoothing=2"]},
            data=str(tiny_runs["data"]),
            cache_root=tiny_runs["cache"],
        )


def test_stages_narrow_the_probe_to_the_models_asked_for(tiny_runs):
    result = probe_recipes(
        [tiny_runs["cascade"]],
        {"base": []},
        data=str(tiny_runs["data"]),
        cache_root=tiny_runs["cache"],
        stages=("gate",),
    )
    assert set(result["val_macro_f1"]["base"]) == {"gate"}


def test_a_variant_trains_on_as_many_cached_passes_as_it_asks_and_no_more_than_cached(tiny_runs, monkeypatch):
    from neurocascade.errors import ConfigError
    from neurocascade.results import probe

    seen = []
    real = probe._phase1_head

    def counting(stage_name, cfg, train, *rest):
        seen.append(len(train))
        return real(stage_name, cfg, train, *rest)

    monkeypatch.setattr(probe, "_phase1_head", counting)
    run = dict(data=str(tiny_runs["data"]), cache_root=tiny_runs["cache"], stages=("flat",))
    probe_recipes([tiny_runs["cascade"]], {"base": [], "clean only": ["train.aug_passes=0"]}, **run)
    assert seen == [2, 1]  # the run's clean pass and its one augmented pass; then the clean pass alone
    with pytest.raises(ConfigError, match="2 augmented passes asked, 1 cached"):
        probe_recipes([tiny_runs["cascade"]], {"more": ["train.aug_passes=2"]}, **run)
