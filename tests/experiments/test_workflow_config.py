"""Every config set against the strict loader, and the loader's dataclasses against the workflow's schemas.

One source of truth each: defaults live in the dataclasses (the ``default`` YAML may restate them, and must agree),
ranges live in the schemas, and both describe the same keys at every level.
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import re
import types
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import jsonschema
import pytest
import yaml

from experiments.baselines.registry import OPTION_SOURCES, available_detectors, detector_options
from experiments.config import (
    CONVERT,
    ConfigError,
    allowed_keys,
    default_of,
    has_default,
    join,
    settable_fields,
)
from experiments.corruption.config import CorruptionConfig
from experiments.workflow_config import CONFIG_ROOT, WorkflowConfig, load_config, read_config_set

REPO = Path(__file__).resolve().parents[2]
SCHEMAS = REPO / "workflow" / "schemas"
CONFIG_SETS = ("test", "default", "full", "paper")


def _schema_files() -> dict[str, dict]:
    return {p.name.removesuffix(".schema.yaml"): yaml.safe_load(p.read_text()) for p in sorted(SCHEMAS.glob("*.yaml"))}


def _merged_schema() -> dict:
    """The six per-file schemas as one: the root object of :class:`WorkflowConfig`."""
    merged: dict[str, Any] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {},
        "required": [],
        "$defs": {},
    }
    for schema in _schema_files().values():
        assert schema.get("additionalProperties") is False
        merged["properties"] |= schema["properties"]
        merged["required"] += schema.get("required", [])
        merged["$defs"] |= schema.get("$defs", {})
    return merged


def test_every_config_file_has_a_schema_and_the_same_files_in_every_set() -> None:
    files = {s: sorted(p.stem for p in (CONFIG_ROOT / s).glob("*.yaml")) for s in CONFIG_SETS}
    assert files["test"] == files["default"] == files["paper"] == sorted(_schema_files())


@pytest.mark.parametrize("config_set", CONFIG_SETS)
def test_every_config_set_loads_strictly(config_set: str) -> None:
    cfg = load_config(read_config_set(config_set))
    assert cfg.config_set == config_set and cfg.models
    for key, spec in cfg.models.items():
        assert spec.key == key


@pytest.mark.parametrize("config_set", CONFIG_SETS)
def test_every_config_set_validates_against_the_schemas(config_set: str) -> None:
    jsonschema.validate(read_config_set(config_set), _merged_schema())


def test_the_paper_set_loads_with_the_keys_this_version_refuses_later() -> None:
    cfg = load_config(read_config_set("paper"))
    assert cfg.data.dataset == "cifar10" and all(spec.pretrained for spec in cfg.models.values())
    assert cfg.corruption.source == "cifar10c"


def _mutated(mutate) -> dict:
    cfg = copy.deepcopy(read_config_set("default"))
    mutate(cfg)
    return cfg


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda c: c["corruption"]["method_options"]["knn"].update(kk=3),
            "corruption.method_options.knn.kk: unknown key 'kk'. Did you mean 'k'?",
        ),
        (
            lambda c: c["corruption"]["method_options"].update(deepdrift_max={"chunk_size": 64}),
            "corruption.method_options.deepdrift_max: unknown key 'deepdrift_max'. Did you mean 'deepdrift'?",
        ),
        (
            lambda c: c["corruption"].update(methods=["deepdrift_max", "knnn"]),
            "corruption.methods[1]: unknown detector 'knnn'. Did you mean 'knn'?",
        ),
        (lambda c: c["models"]["cnn"]["train"].update(optimiser="sgd"), "models.cnn.train.optimiser: unknown key"),
        (lambda c: c["streams"].update(clean_streams="3"), "streams.clean_streams: expected an integer, got str '3'"),
        (lambda c: c["streams"].update(corruptions=["gausian_noise"]), "streams.corruptions[0]: unknown corruption"),
        (lambda c: c["faults"]["input"].update(pixel_nois=[0.1]), "faults.input.pixel_nois: unknown key"),
        (lambda c: c["faults"].update(models=["cnn", "resnt"]), "faults.models: ['resnt'] are not configured"),
        (lambda c: c["diffusion"]["eval"].update(n_null=3), "diffusion.eval.n_null: unknown key"),
        (lambda c: c.update(thread=3), "thread: unknown key 'thread'. Did you mean 'threads'"),
        (lambda c: c["corruption"].update(source="cifar10c"), "corruption.source: 'cifar10c' needs data.dataset"),
    ],
)
def test_a_bad_config_fails_at_load_time_with_the_keys_path(mutate, expected: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(expected)):
        load_config(_mutated(mutate))


@pytest.mark.parametrize(
    "mutate",
    [
        lambda c: c["corruption"]["method_options"]["knn"].update(kk=3),
        lambda c: c["models"]["cnn"]["train"].update(optimiser="sgd"),
        lambda c: c["streams"]["strong"].update(level=1),
        lambda c: c["calibration"]["contract"].update(seeds=[0]),
        lambda c: c["diffusion"]["unet"].update(attn=True),
        lambda c: c["faults"]["corruptions"].update(other=["fog"]),
        lambda c: c["data"].update(datset="fashion_mnist"),
    ],
)
def test_the_schemas_refuse_unknown_keys_at_every_level(mutate) -> None:
    with pytest.raises(jsonschema.ValidationError, match="Additional properties are not allowed"):
        jsonschema.validate(_mutated(mutate), _merged_schema())


# ---------------------------------------------------------------------------------- schema <-> dataclasses
def _resolve(node: dict, root: dict) -> dict:
    ref = node.get("$ref")
    if ref is None:
        return node
    target: Any = root
    for part in ref.removeprefix("#/").split("/"):
        target = target[part]
    return target


def _types(node: dict) -> set[str]:
    kind = node.get("type", [])
    return set([kind] if isinstance(kind, str) else kind)


def _check_type(hint: Any, node: dict, root: dict, path: str) -> None:
    node = _resolve(node, root)
    if "oneOf" in node:  # a field whose converter accepts a shorthand (corruptions: "all" or a list)
        failures = []
        for option in node["oneOf"]:
            try:
                _check_type(hint, option, root, path)
                return
            except AssertionError as err:
                failures.append(err)
        raise AssertionError(f"{path}: no oneOf branch matches {hint}: {failures}")
    origin, args = get_origin(hint), get_args(hint)
    if dataclasses.is_dataclass(hint):
        _check_object(hint, node, root, path)
    elif origin in (Union, types.UnionType):
        assert type(None) in args and "null" in _types(node), path
        (option,) = [a for a in args if a is not type(None)]
        _check_type(option, {**node, "type": sorted(_types(node) - {"null"})}, root, path)
    elif origin is Literal:
        assert node.get("enum") == list(args), (path, node.get("enum"), args)
    elif origin is tuple:
        assert _types(node) == {"array"}, path
        if len(args) == 2 and args[1] is Ellipsis:
            _check_type(args[0], node["items"], root, f"{path}[]")
        else:
            assert node.get("minItems") == node.get("maxItems") == len(args), path
            for arg in args:
                _check_type(arg, node["items"], root, f"{path}[]")
    elif origin in (Mapping, dict):
        assert _types(node) == {"object"}, path
        value_hint = args[1]
        if dataclasses.is_dataclass(value_hint):
            _check_object(value_hint, node["additionalProperties"], root, f"{path}.<key>")
    else:
        expected = {int: "integer", float: "number", bool: "boolean", str: "string"}[hint]
        assert _types(node) == {expected}, (path, node, hint)


def _check_object(cls: type, node: dict, root: dict, path: str) -> None:
    node = _resolve(node, root)
    assert _types(node) == {"object"} and node.get("additionalProperties") is False, f"{path}: not a closed object"
    fields = settable_fields(cls)
    assert set(node["properties"]) == set(fields), (path, set(node["properties"]) ^ set(fields))
    required = set(node.get("required", []))
    hints = get_type_hints(cls)
    for name, f in fields.items():
        here = join(path, name)
        assert has_default(f) or name in required, f"{here}: no dataclass default, yet the schema may omit it"
        sub = _resolve(node["properties"][name], root)
        keys = allowed_keys(f)
        if keys is not None:
            assert _types(sub) == {"object"} and sub.get("additionalProperties") is False, here
            assert set(sub["properties"]) == set(keys), (here, set(sub["properties"]) ^ set(keys))
            for key in keys:
                _check_type(get_args(hints[name])[1], sub["properties"][key], root, join(here, key))
        elif f.metadata.get(CONVERT) is not None and hints[name] == Mapping[str, Mapping[str, Any]]:
            _check_method_options(sub, root, here)
        else:
            _check_type(hints[name], sub, root, here)


def _check_method_options(node: dict, root: dict, path: str) -> None:
    assert node.get("additionalProperties") is False and set(node["properties"]) == set(OPTION_SOURCES), path
    for name in OPTION_SOURCES:
        options = _resolve(node["properties"][name], root)
        known = detector_options(name)
        assert options.get("additionalProperties") is False, join(path, name)
        assert set(options.get("properties", {})) == set(known), (join(path, name), set(options["properties"]), known)
        for option, hint in known.items():
            _check_type(hint, options["properties"][option], root, join(join(path, name), option))


def test_schemas_describe_exactly_the_dataclasses_at_every_level() -> None:
    schema = _merged_schema()
    _check_object(WorkflowConfig, schema, schema, "")


def test_the_schema_lists_every_registered_detector() -> None:
    corruption = _schema_files()["corruption"]["properties"]["corruption"]["properties"]
    assert corruption["methods"]["items"]["enum"] == list(available_detectors())


# ---------------------------------------------------------------------------------- defaults in one place
def _disagreements(cls: type, raw: Mapping[str, Any], loaded: Any, path: str = "") -> Iterator[str]:
    fields, hints = settable_fields(cls), get_type_hints(cls)
    for name, value in raw.items():
        f, here, stated = fields[name], join(path, name), getattr(loaded, name)
        if dataclasses.is_dataclass(hints[name]) and isinstance(value, Mapping):
            yield from _disagreements(hints[name], value, stated, here)
        elif has_default(f) and stated != default_of(f):
            yield f"{here}: YAML {stated!r} != dataclass default {default_of(f)!r}"


def test_the_default_set_restates_the_dataclass_defaults_without_contradicting_them() -> None:
    raw = read_config_set("default")
    assert list(_disagreements(WorkflowConfig, raw, load_config(raw))) == []


# ---------------------------------------------------------------------------------- no key that nothing reads
def _config_fields(cls: type, path: str = "") -> Iterator[tuple[str, type]]:
    hints = get_type_hints(cls)
    for name in settable_fields(cls):
        here, hint = join(path, name), hints[name]
        yield here, cls
        if dataclasses.is_dataclass(hint):
            yield from _config_fields(hint, here)
        elif get_origin(hint) in (Mapping, dict) and dataclasses.is_dataclass(get_args(hint)[1]):
            yield from _config_fields(get_args(hint)[1], f"{here}.<key>")


def _config_classes() -> set[str]:
    return {cls.__name__ for _, cls in _config_fields(WorkflowConfig)} | {WorkflowConfig.__name__}


_KEY_LOOKUP = re.compile(r"""\[\s*["'](\w+)["']\s*\]|\.get\(\s*["'](\w+)["']""")


def _names_read() -> set[str]:
    """Attribute names read by the experiments and workflow code (outside the config classes' own checks), and
    string keys the rules and scripts look up in the config mapping."""
    skip = _config_classes()
    names: set[str] = set()
    sources = [*sorted((REPO / "experiments").rglob("*.py")), *sorted((REPO / "workflow" / "scripts").glob("*.py"))]
    for path in sources:
        tree = ast.parse(path.read_text())
        stack = [tree]
        while stack:
            node = stack.pop()
            if isinstance(node, ast.ClassDef) and node.name in skip:  # its checks read fields; its methods use them
                stack.extend(n for n in node.body if not (isinstance(n, ast.FunctionDef) and n.name == "__post_init__"))
                continue
            if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
                names.add(node.attr)
            stack.extend(ast.iter_child_nodes(node))
    rules = [
        REPO / "workflow" / "Snakefile",
        *sorted((REPO / "workflow").rglob("*.smk")),
        *sorted((REPO / "workflow" / "scripts").glob("*.py")),
    ]
    for path in rules:
        names |= {m.group(1) or m.group(2) for m in _KEY_LOOKUP.finditer(path.read_text())}
    return names


def test_every_config_key_is_read_by_some_code() -> None:
    read = _names_read()
    unread = sorted(path for path, _ in _config_fields(WorkflowConfig) if path.rsplit(".", 1)[-1] not in read)
    assert unread == [], f"config keys no code reads (remove them, or use them): {unread}"


def test_corruption_defaults_match_what_the_study_always_ran() -> None:
    cfg = CorruptionConfig.from_config({"models": ["cnn"]})
    assert cfg.methods == available_detectors() and len(cfg.corruptions) == 19
