"""JSON Schema checks for the requests Docker sends.

One schema per protocol method lives in ``plugin/protocol/schemas/<Interface>.<Method>.json``;
``common.json`` holds the shared definitions the others reference as
``common.json#/$defs/...``. The files are read once, through
``importlib.resources`` so an installed package finds them too, and each method's
validator is built once, when the ``RequestValidator`` is made.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from importlib import resources

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from plugin.errors import InvalidRequest

COMMON = "common.json"
_MAX_VALUE_REPR = 100
_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _schema_files() -> Iterator[tuple[str, dict]]:
    """Yield (file name, parsed schema) for every JSON file in plugin/protocol/schemas."""
    folder = resources.files("plugin.protocol").joinpath("schemas")
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".json"):
            yield entry.name, json.loads(entry.read_text(encoding="utf-8"))


def load_schemas() -> tuple[dict, dict[str, dict]]:
    """Return (common.json, {method: schema}) as stored in the package."""
    common = None
    methods = {}
    for name, schema in _schema_files():
        if name == COMMON:
            common = schema
        else:
            methods[name.removesuffix(".json")] = schema
    if common is None:
        raise RuntimeError(f"request schemas: {COMMON} is missing from plugin/protocol/schemas")
    return common, methods


def _path_step(part: object, first: bool) -> str:
    if isinstance(part, int):
        return f"[{part}]"
    if _PLAIN_KEY.match(str(part)):
        return str(part) if first else f".{part}"
    return f"[{json.dumps(part)}]"


def json_path(path: Iterable[str | int]) -> str:
    """Render an error path like ``IPv4Data[0].Pool`` or ``Options["com.docker.x"]``.

    The top of the body is ``body``.
    """
    text = "".join(_path_step(part, index == 0) for index, part in enumerate(path))
    return text or "body"


def _shorten_value(error: ValidationError) -> str:
    """The error message with a huge offending value cut down to its start and length."""
    shown = repr(error.instance)
    if len(shown) <= _MAX_VALUE_REPR:
        return error.message
    short = f"{shown[:_MAX_VALUE_REPR]}... ({len(shown)} chars)"
    return error.message.replace(shown, short)


def describe_error(error: ValidationError) -> str:
    """Say which field and what is wrong with it (Docker's error already names the method)."""
    if error.validator == "required":
        missing = [name for name in error.validator_value if name not in error.instance]
        field = json_path([*error.absolute_path, missing[0]])
        return f"{field}: required property is missing"
    return f"{json_path(error.absolute_path)}: {_shorten_value(error)}"


def inline_refs(node: object, definitions: dict) -> object:
    """``node`` with every ``$ref`` to a shared definition replaced by the definition.

    Resolving references through a registry on every request cost more than ten
    times the check itself; the schemas have no recursive definitions, so they
    can be resolved once, here.
    """
    if isinstance(node, list):
        return [inline_refs(item, definitions) for item in node]
    if not isinstance(node, dict):
        return node
    resolved = {
        key: inline_refs(value, definitions) for key, value in node.items() if key != "$ref"
    }
    if "$ref" not in node:
        return resolved
    name = node["$ref"].rsplit("/", 1)[-1]
    return {**inline_refs(definitions[name], definitions), **resolved}


class RequestValidator:
    """Checks request bodies against the schema of their method."""

    def __init__(self) -> None:
        common, schemas = load_schemas()
        Draft202012Validator.check_schema(common)
        definitions = common["$defs"]
        self._validators = {}
        for method, schema in schemas.items():
            Draft202012Validator.check_schema(schema)
            self._validators[method] = Draft202012Validator(inline_refs(schema, definitions))
        # Docker sends an empty body (read as {}) to the argument-less methods on every
        # activation and capability check: their schema's answer for it is known once.
        self._empty_ok = {m for m, v in self._validators.items() if v.is_valid({})}

    def validate(self, method: str, body: object) -> None:
        """Raise InvalidRequest naming the field and the problem if ``body`` is wrong."""
        if body == {} and method in self._empty_ok:
            return
        validator = self._validators.get(method)
        if validator is None:
            raise InvalidRequest(f"no request schema for {method}")
        error = best_match(validator.iter_errors(body))
        if error is not None:
            raise InvalidRequest(describe_error(error))
