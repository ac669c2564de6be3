"""Settings a method would not use are refused when given (issue 27, item 6)."""

from __future__ import annotations

import pytest

import amnesiac


@pytest.mark.parametrize(
    ("method", "settings", "message"),
    [
        ("l2ul", {"pgd_eps": 3.0}, "'pgd_eps' (n_adv=0 makes no adversarial examples"),
        ("l2ul", {"pgd_steps": 5, "target_rule": "paper"}, "'target_rule'"),
        ("bad_teacher", {"momentum": 0.5}, "'momentum' (the method's Adam optimizer"),
        ("bad_teacher", {"weight_decay": 0.1}, "'weight_decay'"),
        ("scar", {"momentum": 0.0}, "'momentum'"),
        ("l2ul", {"nearest_target": False, "anchored_spread_targets": True}, "'anchored_spread"),
    ],
)
def test_a_setting_that_would_do_nothing_is_refused(method, settings, message) -> None:
    with pytest.raises(amnesiac.InvalidSettingsError, match=message.replace("(", r"\(")):
        amnesiac.make_config(method, **settings)


def test_the_same_settings_where_they_act_or_at_their_defaults_pass() -> None:
    assert amnesiac.make_config("l2ul", n_adv=2, pgd_eps=3.0).pgd_eps == 3.0
    assert amnesiac.make_config("l2ul", preset="paper", pgd_eps=1.0).pgd_eps == 1.0
    defaults = amnesiac.make_config("l2ul").to_dict()
    assert amnesiac.make_config("l2ul", **defaults).to_dict() == defaults  # what the CLI passes
    assert amnesiac.make_config("bad_teacher", lr=1e-4).lr == 1e-4
    # every preset's resolved settings replay as given, with or without the preset's name (the
    # bench, the CLI and continual's rounds pass them so)
    for method in amnesiac.list_methods():
        for preset in [None, *method.cls.presets]:
            resolved = amnesiac.make_config(method.name, preset).to_dict()
            assert amnesiac.make_config(method.name, **resolved).to_dict() == resolved
            again = amnesiac.make_config(method.name, preset, **resolved).to_dict()
            assert again == resolved
    # but a preset's idle setting given at another value is the caller's, and refused
    with pytest.raises(amnesiac.InvalidSettingsError, match="'pgd_eps'"):
        amnesiac.make_config("l2ul_imp", "paper", pgd_eps=9.0)
    # not spreading where nothing is spread is what runs: no error
    config = amnesiac.make_config("l2ul", nearest_target=False, spread_targets=False)
    assert not config.spread_targets
