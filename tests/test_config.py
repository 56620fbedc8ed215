"""Configuration precedence, discovery, validation and secret hygiene."""

from pathlib import Path

import pytest

from mlbackup import BackupConfig, ConfigError, load_config


def test_defaults(tmp_path):
    config = load_config(start=tmp_path, environ={})
    assert config == BackupConfig(source_root=tmp_path)


def test_precedence_arguments_then_environment_then_file(tmp_path):
    (tmp_path / "mlbackup.toml").write_text('target = "/from/file"\nkeep_last = 2\nenabled = false')
    env = {"MLBACKUP_TARGET": "/from/env", "MLBACKUP_KEEP_LAST": "4"}
    config = load_config(start=tmp_path, environ=env, keep_last=7)
    assert (config.target, config.keep_last, config.enabled) == ("/from/env", 7, False)


def test_pyproject_table_found_from_a_subfolder(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n[tool.mlbackup]\ntarget = "gs://b/run"\nsource_root = "."\n'
        '[tool.mlbackup.storage_options]\nproject = "p"\n'
    )
    sub = tmp_path / "notebooks" / "deep"
    sub.mkdir(parents=True)
    config = load_config(start=sub, environ={})
    assert config.target == "gs://b/run"
    assert config.source_root == tmp_path
    assert config.storage_options == {"project": "p"}


def test_explicit_config_file(tmp_path):
    path = tmp_path / "elsewhere.toml"
    path.write_text("keep_last = 3")
    assert load_config(start=tmp_path, environ={"MLBACKUP_CONFIG": str(path)}).keep_last == 3
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(environ={"MLBACKUP_CONFIG": str(tmp_path / "missing.toml")})


def test_unknown_key_suggests_the_nearest(tmp_path):
    (tmp_path / "mlbackup.toml").write_text('targte = "/x"')
    with pytest.raises(ConfigError, match=r"unknown setting 'targte'.*did you mean 'target'"):
        load_config(start=tmp_path, environ={})
    with pytest.raises(ConfigError, match="did you mean 'keep_last'"):
        load_config(environ={}, keep_lats=3)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("MLBACKUP_ENABLED", "maybe", "true or false"),
        ("MLBACKUP_KEEP_LAST", "0", "at least 1"),
        ("MLBACKUP_KEEP_LAST", "two", "at least 1"),
        ("MLBACKUP_STORAGE_OPTIONS", "{not json", "not valid JSON"),
        ("MLBACKUP_STORAGE_OPTIONS", "[1]", "table/object"),
    ],
)
def test_invalid_values(key, value, message):
    with pytest.raises(ConfigError, match=message):
        load_config(environ={key: value})


def test_invalid_toml_names_the_file(tmp_path):
    (tmp_path / "mlbackup.toml").write_text("target = ")
    with pytest.raises(ConfigError, match=r"mlbackup\.toml is not valid TOML"):
        load_config(start=tmp_path, environ={})


def test_secrets_never_shown():
    config = load_config(environ={}, storage_options={"secret": "CANARY-s3cr3t"})
    assert "CANARY" not in repr(config)
    assert "CANARY" not in str(config)
    assert "secret=***" in repr(config)


def test_env_storage_options_json():
    config = load_config(environ={"MLBACKUP_STORAGE_OPTIONS": '{"endpoint_url": "http://h"}'})
    assert config.storage_options == {"endpoint_url": "http://h"}
    assert isinstance(config.source_root, Path)


def test_an_unknown_mlbackup_variable_in_the_environment_is_a_warning_not_an_error(caplog):
    env = {"MLBACKUP_LOCAL_CMD": "rsync", "MLBACKUP_TARGTE": "/tmp/x", "MLBACKUP_KEEP_LAST": "2"}
    with caplog.at_level("WARNING", logger="mlbackup"):
        config = load_config(environ=env)
    assert config.keep_last == 2
    assert "MLBACKUP_TARGTE" in caplog.text and "did you mean 'MLBACKUP_TARGET'" in caplog.text
    assert "MLBACKUP_LOCAL_CMD" in caplog.text


def test_a_config_file_is_parsed_again_only_when_it_changed(tmp_path, monkeypatch):
    # Every backup loads the configuration (a callback's after every trial).
    import tomllib

    parsed = []
    real_load = tomllib.load
    monkeypatch.setattr(tomllib, "load", lambda f: parsed.append(f.name) or real_load(f))
    file = tmp_path / "pyproject.toml"
    file.write_text("[tool.mlbackup]\nkeep_last = 3\n")
    assert [load_config(start=tmp_path, environ={}).keep_last for _ in range(3)] == [3, 3, 3]
    assert len(parsed) == 1
    file.write_text("[tool.mlbackup]\nkeep_last = 30\n")
    assert load_config(start=tmp_path, environ={}).keep_last == 30
    assert len(parsed) == 2
    load_config(start=tmp_path, environ={}).storage_options["x"] = 1  # a caller's own copy
    assert load_config(start=tmp_path, environ={}).storage_options == {}
