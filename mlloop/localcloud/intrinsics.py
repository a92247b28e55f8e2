"""CloudFormation intrinsic functions and conditions, resolved against what the local deployment created."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

# Returned by Ref AWS::NoValue: the key holding it is dropped from its parent.
NO_VALUE = object()
_SUB_VARIABLE = re.compile(r"\$\{([^}!][^}]*)\}")


class TemplateError(ValueError):
    """The template uses something the local deployer cannot resolve."""


def references(node: Any) -> set[str]:
    """Logical ids a template fragment refers to through Ref, Fn::GetAtt and Fn::Sub."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                found.add(value)
            elif key == "Fn::GetAtt":
                target = value[0] if isinstance(value, list) else str(value).split(".")[0]
                if isinstance(target, str):
                    found.add(target)
            elif key == "Fn::Sub":
                text = value[0] if isinstance(value, list) else value
                if isinstance(text, str):
                    found |= {match.split(".")[0] for match in _SUB_VARIABLE.findall(text)}
                if isinstance(value, list) and len(value) > 1:
                    found |= references(value[1])
            found |= references(value)
    elif isinstance(node, list):
        for item in node:
            found |= references(item)
    return found


class Resolver:
    """Evaluates one template's intrinsics; `ref` and `get_att` look up deployed resources."""

    def __init__(
        self,
        *,
        pseudo: Mapping[str, str],
        parameters: Mapping[str, Any],
        conditions: Mapping[str, Any],
        mappings: Mapping[str, Any],
        exports: Mapping[str, Any],
        ref: Callable[[str], Any],
        get_att: Callable[[str, str], Any],
    ) -> None:
        self.pseudo = pseudo
        self.parameters = parameters
        self._condition_defs = conditions
        self._condition_values: dict[str, bool] = {}
        self.mappings = mappings
        self.exports = exports
        self._ref = ref
        self._get_att = get_att

    def condition(self, name: str) -> bool:
        if name not in self._condition_values:
            if name not in self._condition_defs:
                raise TemplateError(f"unknown condition {name!r}")
            self._condition_values[name] = bool(self.resolve(self._condition_defs[name]))
        return self._condition_values[name]

    def ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        return self._ref(name)

    def resolve(self, node: Any) -> Any:
        if isinstance(node, list):
            items = [self.resolve(item) for item in node]
            return [item for item in items if item is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, value),) = node.items()
            handler = _FUNCTIONS.get(key)
            if handler is not None:
                return handler(self, value)
        resolved = {key: self.resolve(value) for key, value in node.items()}
        return {key: value for key, value in resolved.items() if value is not NO_VALUE}

    def sub(self, text: str, variables: Mapping[str, Any]) -> str:
        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in variables:
                return _text(variables[name])
            if "." in name and not name.startswith("AWS::"):
                logical_id, attribute = name.split(".", 1)
                return _text(self._get_att(logical_id, attribute))
            return _text(self.ref(name))

        return _SUB_VARIABLE.sub(replace, text).replace("${!", "${")


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value) if isinstance(value, (dict, list)) else str(value)


def _get_att(resolver: Resolver, value: Any) -> Any:
    if isinstance(value, str):
        logical_id, attribute = value.split(".", 1)
    else:
        logical_id, attribute = value[0], resolver.resolve(value[1])
    return resolver._get_att(logical_id, attribute)


def _sub(resolver: Resolver, value: Any) -> str:
    if isinstance(value, str):
        return resolver.sub(value, {})
    text, variables = value
    return resolver.sub(text, resolver.resolve(variables))


def _join(resolver: Resolver, value: Any) -> str:
    delimiter, items = value
    return str(delimiter).join(_text(item) for item in resolver.resolve(items))


def _select(resolver: Resolver, value: Any) -> Any:
    index, items = resolver.resolve(value)
    return items[int(index)]


def _split(resolver: Resolver, value: Any) -> list[str]:
    delimiter, text = resolver.resolve(value)
    return str(text).split(delimiter)


def _import_value(resolver: Resolver, value: Any) -> Any:
    name = resolver.resolve(value)
    if name not in resolver.exports:
        raise TemplateError(f"Fn::ImportValue: no stack exports {name!r} (deploy the exporting stack first)")
    return resolver.exports[name]


def _if(resolver: Resolver, value: Any) -> Any:
    name, when_true, when_false = value
    return resolver.resolve(when_true if resolver.condition(name) else when_false)


def _find_in_map(resolver: Resolver, value: Any) -> Any:
    name, top, second = resolver.resolve(value)
    return resolver.mappings[name][top][second]


def _get_azs(resolver: Resolver, value: Any) -> list[str]:
    region = resolver.resolve(value) or resolver.pseudo["AWS::Region"]
    return [f"{region}{zone}" for zone in "abc"]


def _to_json_string(resolver: Resolver, value: Any) -> str:
    return json.dumps(resolver.resolve(value))


_FUNCTIONS: dict[str, Callable[[Resolver, Any], Any]] = {
    "Ref": lambda r, v: r.ref(v),
    "Fn::GetAtt": _get_att,
    "Fn::Sub": _sub,
    "Fn::Join": _join,
    "Fn::Select": _select,
    "Fn::Split": _split,
    "Fn::ImportValue": _import_value,
    "Fn::If": _if,
    "Fn::FindInMap": _find_in_map,
    "Fn::GetAZs": _get_azs,
    "Fn::Base64": lambda r, v: base64.b64encode(_text(r.resolve(v)).encode()).decode(),
    "Fn::ToJsonString": _to_json_string,
    "Fn::Length": lambda r, v: len(r.resolve(v)),
    "Fn::Equals": lambda r, v: _text(r.resolve(v[0])) == _text(r.resolve(v[1])),
    "Fn::Not": lambda r, v: not r.resolve(v[0]),
    "Fn::And": lambda r, v: all(r.resolve(item) for item in v),
    "Fn::Or": lambda r, v: any(r.resolve(item) for item in v),
    "Condition": lambda r, v: r.condition(v),
}
