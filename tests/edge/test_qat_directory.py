"""The QAT checkpoint folder survives a re-export under the same settings (so an interrupted export resumes) and
is emptied when they change."""

from __future__ import annotations

from neurocascade.config import load_config
from neurocascade.edge.export import _qat_directory, qat_key

SHA = "0" * 64


def test_same_key_keeps_the_checkpoints_another_key_discards_them(tmp_path, test_config_path):
    key = qat_key(load_config(test_config_path), SHA)
    assert isinstance(key["export"]["float_ops"], tuple)  # what once made every key differ from its key.json
    checkpoint = _qat_directory(tmp_path, "gate", key) / "state.json"
    checkpoint.write_text("{}")
    assert _qat_directory(tmp_path, "gate", qat_key(load_config(test_config_path), SHA)) == checkpoint.parent
    assert checkpoint.exists()
    _qat_directory(tmp_path, "gate", qat_key(load_config(test_config_path, ["export.qat_lr=1e-4"]), SHA))
    assert not checkpoint.exists()
