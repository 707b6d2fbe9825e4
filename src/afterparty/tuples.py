"""``NamedTuple`` for the modules on the no-op path, made without importing ``typing``.

Importing ``typing`` costs a no-op deploy about as much as everything else it does; these
modules only need its ``NamedTuple`` class syntax, which ``collections.namedtuple`` does as
``typing`` itself does it. Type checkers see ``typing.NamedTuple`` itself.
"""

from collections import namedtuple

#: True only for type checkers (``typing.TYPE_CHECKING`` without importing typing).
TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import NamedTuple as NamedTuple
else:
    # What the class body may not define (namedtuple makes them), as typing refuses them.
    _MADE = frozenset({"__new__", "__init__", "__slots__", "__getnewargs__", "_fields",
                       "_field_defaults", "_make", "_replace", "_asdict", "_source"})

    class _Maker(type):
        """Turns ``class X(NamedTuple): field: type = default ...`` into a namedtuple class
        with the body's methods, properties and docstring."""

        def __new__(mcls, typename, bases, namespace):
            if namespace.get("_root"):
                return super().__new__(mcls, typename, bases, namespace)
            annotations = namespace.get("__annotations__", {})
            fields = list(annotations)
            defaults = [namespace[name] for name in fields if name in namespace]
            made = namedtuple(typename, fields, defaults=defaults,
                              module=namespace.get("__module__"))
            for key, value in namespace.items():
                if key in _MADE:
                    raise AttributeError(f"cannot overwrite NamedTuple attribute {key}")
                if key not in ("__module__", "__annotations__") and key not in fields:
                    setattr(made, key, value)
            made.__annotations__ = annotations
            return made

    class NamedTuple(metaclass=_Maker):
        _root = True
