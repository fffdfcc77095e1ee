"""A handler's signature as a pydantic model: validation at enqueue and again at run time."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, create_model
from pydantic_core import PydanticSerializationError, to_jsonable_python

from jobmaster.context import Context
from jobmaster.errors import InvalidArguments

_KINDS = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
_FLOATS = ConfigDict(allow_inf_nan=False, ser_json_inf_nan="constants")
"""NaN and infinity: refused by float types unless these allow them, and kept as floats
where nothing checks them (``Any``), for payload.py to refuse them there."""


class HandlerSignature:
    """Binds calls to a handler's parameters and validates them with one pydantic model."""

    def __init__(self, fn: Callable[..., Any], job_name: str) -> None:
        self.job_name = job_name
        signature = inspect.signature(fn)
        hints = typing.get_type_hints(fn, include_extras=True)  # Annotated constraints too
        params = list(signature.parameters.values())
        self.takes_context = bool(params) and hints.get(params[0].name) is Context
        if self.takes_context:
            params = params[1:]
        fields: dict[str, Any] = {}
        for param in params:
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise TypeError(
                    f"job {job_name!r}: handlers take named parameters only, "
                    f"not *{param.name} or **{param.name}, so that calls can be validated"
                )
            if hints.get(param.name) is Context:
                raise TypeError(f"job {job_name!r}: a Context parameter must come first")
            default = ... if param.default is param.empty else param.default
            fields[f"p_{param.name}"] = (
                hints.get(param.name, Any),
                Field(default=default, alias=param.name),
            )
        self.names = tuple(p.name for p in params)
        self.positional = tuple(p.name for p in params if p.kind in _KINDS)
        self._positional_only = tuple(p.name for p in params if p.kind is p.POSITIONAL_ONLY)
        # every parameter can be passed by position: call with the values in their order
        self._by_position = len(self.positional) == len(self.names)
        self.model: type[BaseModel] = create_model(
            f"{job_name}_arguments",
            __config__=ConfigDict(extra="forbid", arbitrary_types_allowed=False, **_FLOATS),
            **fields,
        )
        self._fields = tuple(f"p_{n}" for n in self.names)
        self.loose = _loose_parameters(self.model, self.names)
        """Parameters whose type lets values through unchecked (``Any``, ``dict``, no
        annotation): the only ones where NaN or infinity must be looked for after dumping."""
        self._validator = self.model.__pydantic_validator__
        self._serializer = self.model.__pydantic_serializer__
        self._many: TypeAdapter[list[Any]] | None = None
        returns = hints.get("return", Any)
        self.result_adapter: TypeAdapter[Any] | None = (
            None if returns in (Any, None, type(None)) else TypeAdapter(returns)
        )

    def bind(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """Map a call's positional and keyword arguments to parameter names."""
        if len(args) > len(self.positional):
            raise InvalidArguments(
                f"{self.job_name}() takes {len(self.positional)} positional argument(s) "
                f"but {len(args)} were given"
            )
        bound = dict(zip(self.positional, args, strict=False))
        for key, value in kwargs.items():
            if key in bound:
                raise InvalidArguments(f"{self.job_name}() got multiple values for {key!r}")
            if key not in self.names or key in self._positional_only:
                raise InvalidArguments(
                    f"{self.job_name}() got an unexpected argument {key!r}; "
                    f"parameters: {', '.join(self.names) or '(none)'}"
                )
            bound[key] = value
        return bound

    def validate(self, arguments: Mapping[str, Any]) -> BaseModel:
        """Check arguments against the parameter types; :class:`InvalidArguments` if not."""
        try:  # the model's validator itself: model_validate adds only call overhead
            return self._validator.validate_python(arguments)  # type: ignore[no-any-return]
        except ValidationError as exc:
            raise InvalidArguments(
                f"{self.job_name}(): invalid arguments: {explain(exc)}"
            ) from None

    def dump(self, validated: BaseModel) -> dict[str, Any]:
        """The wire form of validated arguments: JSON-like values keyed by parameter name."""
        try:  # as model_dump(mode="json", by_alias=True), without its call overhead
            return self._serializer.to_python(  # type: ignore[no-any-return]
                validated, mode="json", by_alias=True
            )
        except (PydanticSerializationError, ValueError) as exc:  # UnicodeDecodeError too
            raise InvalidArguments(
                f"{self.job_name}(): argument {self._unstorable(validated)!r} cannot be stored "
                f"as JSON-like data: {exc}"
            ) from None

    def _unstorable(self, validated: BaseModel) -> str:
        """The first parameter whose value does not serialise (only called on errors)."""
        for name, field in zip(self.names, self._fields, strict=True):
            try:
                validated.model_dump(mode="json", include={field})
            except (PydanticSerializationError, ValueError):
                return name
        return "?"

    def encode_call(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> dict[str, Any]:
        return self.dump(self.validate(self.bind(args, kwargs)))

    def encode_many(self, bound: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]] | None:
        """:meth:`validate` and :meth:`dump` of many bound calls in one pass of pydantic (a
        batch costs less than its calls one by one); None when any of them is invalid (find
        which, and why, with those two)."""
        if self._many is None:
            self._many = TypeAdapter(
                list[self.model],  # type: ignore[name-defined]
                config=ConfigDict(**_FLOATS),  # a list's dump follows its own config
            )
        try:
            validated = self._many.validate_python(bound)
            return self._many.dump_python(validated, mode="json", by_alias=True)  # type: ignore[no-any-return]
        except (ValidationError, PydanticSerializationError, ValueError):
            return None

    def call_arguments(self, validated: BaseModel) -> tuple[list[Any], dict[str, Any]]:
        """Positional and keyword arguments to call the handler with."""
        values = validated.__dict__
        if self._by_position:  # fields are kept in the order of the parameters
            return list(values.values()), {}
        positional = [values[f"p_{n}"] for n in self._positional_only]
        keywords = {n: values[f] for n, f in zip(self.names, self._fields, strict=True)}
        for name in self._positional_only:
            del keywords[name]
        return positional, keywords

    def encode_result(self, value: Any) -> Any:
        """The wire form of a handler's return value."""
        if self.result_adapter is not None:
            return self.result_adapter.dump_python(value, mode="json")
        return to_jsonable_python(value)

    def decode_result(self, value: Any) -> Any:
        if self.result_adapter is not None:
            return self.result_adapter.validate_python(value)
        return value


def _loose_parameters(model: type[BaseModel], names: Sequence[str]) -> tuple[str, ...]:
    schema: Any = model.__pydantic_core_schema__
    if schema.get("type") == "definitions":
        schema = schema["schema"]
    fields = schema["schema"]["fields"]
    return tuple(name for name in names if _lets_anything_through(fields[f"p_{name}"]))


_UNCHECKED_SCHEMAS = frozenset({"any", "definition-ref", "function-plain"})


def _lets_anything_through(schema: Any) -> bool:
    """Whether a core schema (of a parameter) takes some value without checking it; a
    model or dataclass of the application's own is left to its own configuration. A
    reference to a recursive definition counts as unchecked (the cost: a scan)."""
    if isinstance(schema, dict):
        kind = schema.get("type")
        if kind in _UNCHECKED_SCHEMAS:
            return True
        if kind in ("model", "dataclass"):
            return False
        return any(_lets_anything_through(v) for k, v in schema.items() if k != "metadata")
    if isinstance(schema, list | tuple):
        return any(_lets_anything_through(v) for v in schema)
    return False


def explain(exc: ValidationError) -> str:
    """A pydantic error as one line per problem: ``a: Input should be ... (got 'x')``."""
    parts = []
    for error in exc.errors():
        loc = ".".join(str(p) for p in error["loc"]) or "arguments"
        got = "" if error["type"] == "missing" else f" (got {error.get('input')!r})"
        parts.append(f"{loc}: {error['msg']}{got}")
    return "; ".join(parts)
