"""Configuration: validation against the JSON schema, defaults, hashing.

The Snakefile and the tests use :func:`validate_config`, so a misspelt key
fails at once with one line naming the key path, before any job runs.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


def _schema() -> dict[str, Any]:
    if not SCHEMA_PATH.exists():
        raise ConfigError(f"{SCHEMA_PATH}: config schema not found (install hepchain from its repository with pip install -e)")
    return yaml.safe_load(SCHEMA_PATH.read_text())


def _with_defaults(validator_class: Any, schema: Mapping[str, Any]) -> Any:
    import jsonschema

    def resolve(sub: Mapping[str, Any]) -> Mapping[str, Any]:
        ref = sub.get("$ref")
        return schema["$defs"][ref.rsplit("/", 1)[-1]] if isinstance(ref, str) and ref.startswith("#/$defs/") else sub

    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator: Any, properties: Mapping[str, Any], instance: Any, schema: Mapping[str, Any]) -> Iterator[Any]:
        if isinstance(instance, dict):
            for name, sub in properties.items():
                sub = resolve(sub)
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def _path(error: Any) -> str:
    return ".".join(str(p) for p in error.absolute_path)


def _describe(error: Any) -> str:
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed)) if isinstance(error.instance, dict) else []
        where = _path(error)
        key = f"{where}.{extra[0]}" if where and extra else (extra[0] if extra else where)
        hint = f" (allowed here: {', '.join(allowed)})" if allowed else ""
        return f"config key '{key}': unknown key{hint}"
    if error.validator == "oneOf" and "generate" in str(error.schema):
        return f"config key '{_path(error)}': a sample needs either 'generate:' or 'files:' with 'xsec_pb:', not both"
    if error.validator == "required":
        return f"config key '{_path(error) or '<top>'}': {error.message}"
    return f"config key '{_path(error)}': {error.message}"


#: Config sections of the studies that share the generic skim and feature rules.
STUDY_SECTIONS = ("recoil", "ditau", "jets", "electrons")


def validate_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Validate ``config``, fill defaults, check cross-references; return a new dict."""
    import jsonschema

    out = copy.deepcopy(dict(config))
    schema = _schema()
    validator = _with_defaults(jsonschema.Draft202012Validator, schema)(schema)
    errors = sorted(validator.iter_errors(out), key=lambda e: (len(list(e.absolute_path)), str(e.absolute_path)))
    if errors:
        best = jsonschema.exceptions.best_match(errors)
        unknown = [e for e in errors if e.validator == "additionalProperties"]
        raise ConfigError(_describe(unknown[0] if unknown else best))
    # fill defaults inside samples (additionalProperties schemas are not visited by set_defaults)
    gen_schema = schema["$defs"]["generate"]["properties"]
    for name, sample in out["samples"].items():
        if "generate" in sample:
            for key, sub in gen_schema.items():
                if "default" in sub and key not in sample["generate"]:
                    sample["generate"][key] = copy.deepcopy(sub["default"])
        if name == "minbias":
            raise ConfigError("config key 'samples.minbias': the name 'minbias' is reserved for the pile-up library")
    vh = out["vh"]
    for sample in vh["samples"]:
        if sample not in out["samples"]:
            raise ConfigError(f"config key 'vh.samples': sample '{sample}' is not defined under 'samples'")
        cls = out["samples"][sample].get("class")
        if cls is None:
            raise ConfigError(f"config key 'samples.{sample}.class': required for a sample of vh.samples (one of {vh['classes']})")
        if cls not in vh["classes"]:
            raise ConfigError(f"config key 'samples.{sample}.class': class '{cls}' is not one of vh.classes {vh['classes']}")
    missing = [c for c in vh["classes"] if c not in {out["samples"][s]["class"] for s in vh["samples"]}]
    if missing:
        raise ConfigError(f"config key 'vh.classes': class '{missing[0]}' has no sample in vh.samples")
    for study in STUDY_SECTIONS:
        section = out.get(study)
        if section is None:
            continue
        for sample in section["samples"]:
            if sample not in out["samples"]:
                raise ConfigError(f"config key '{study}.samples': sample '{sample}' is not defined under 'samples'")
        if section.get("selection"):
            from .skim.registry import get_study

            try:
                get_study(study).selection(section["selection"])
            except ConfigError as exc:
                raise ConfigError(f"config key '{study}.selection': {exc}") from exc
    if out.get("recoil") is not None:
        from .studies.recoil import resolve_config as resolve_recoil

        resolve_recoil(out["recoil"])  # folds in range, variant names, edges: one line naming the key
    validation = out.get("detector_validation", {})
    for role, sample in validation.get("samples", {}).items():
        if sample not in out["samples"]:
            raise ConfigError(f"config key 'detector_validation.samples.{role}': sample '{sample}' is not defined under 'samples'")
    return out


def load_config(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: config file does not exist")
    return validate_config(yaml.safe_load(path.read_text()) or {})


def config_hash(config: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of a (validated) config."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
