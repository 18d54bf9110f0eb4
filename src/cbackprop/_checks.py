"""Validated hyper-parameter holders, the base of losses and optimizers."""
import itertools
import math
import numbers

import numpy as np


def finite_float(name, value):
    """Return ``value`` as a float, or raise if it is not a finite real number
    (a Python or NumPy number, or a 0-d array of one)."""
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "iuf":
        value = value[()]
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    try:
        value = float(value)
    except OverflowError:   # an int (or Fraction) beyond float's range
        raise ValueError(f"{name} must be finite, got a number too large for a float") from None
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


_INT64 = np.dtype(np.int64)


def int64_array(values, requirements=("C_CONTIGUOUS",)):
    """``values`` as an int64 array meeting ``requirements`` (np.require's),
    of NumPy's own int64 type. An array of another C integer type of that
    size (long long, where int64 is long) equals int64 as a dtype, so
    NumPy's conversions keep it, but the engine tells class labels from
    targets by the type number."""
    values = np.require(values, np.int64, requirements)
    return values if values.dtype.num == _INT64.num else values.view(_INT64)


def is_name_among(value, names):
    """Whether ``value`` is a str among ``names``. Neither a 0-d array of a
    name (which compares equal to it) nor a longer array (whose comparison
    has no truth value) nor a list is a name."""
    return isinstance(value, str) and value in names


def sparse_hint(name, data):
    """What to say of a sparse matrix (scipy.sparse's, or one like it) given
    for an array: np.asarray wraps it whole as an object, whose dtype alone
    would make the message blame its values."""
    if hasattr(data, "toarray") and hasattr(data, "nnz"):
        return (f" ({name} is a sparse {type(data).__name__}: cbackprop takes dense "
                f"arrays, pass {name}.toarray())")
    return ""


def boolean(name, value):
    """``value`` as a bool: Python's or NumPy's True or False, or the integers
    0 and 1 (``verbose=0`` as in Keras and scikit-learn); nothing else (not 2,
    not a string: ``shuffle="no"`` must not mean True)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)) and value in (0, 1):
        return bool(value)
    raise TypeError(f"{name} must be True or False (or 1 or 0), got {value!r}")


def in_range(name, value, low, high, *, low_open=False, high_open=True):
    """A finite float within the interval; the bounds' openness is configurable."""
    value = finite_float(name, value)
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if too_low or too_high:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        raise ValueError(f"{name} must be in {left}{low}, {high}{right}, got {value}")
    return value


def non_negative(name, value):
    return in_range(name, value, 0.0, math.inf)


def positive(name, value):
    return in_range(name, value, 0.0, math.inf, low_open=True)


def from_registry(what, spec, registry, base):
    """The ``base`` instance ``spec`` names: an instance as given, a fresh
    one for a registry name; else a ValueError naming the choices (and the
    slip of passing a class where an instance goes)."""
    if isinstance(spec, base):
        return spec
    if is_name_among(spec, registry):
        return registry[spec]()
    if isinstance(spec, type) and spec in registry.values():   # a class, not an instance
        raise ValueError(f"{what} is the class cb.{spec.__name__}: pass an instance, "
                         f"cb.{spec.__name__}() (or with its settings)")
    classes = ", ".join(f"cb.{cls.__name__}(...)" for cls in registry.values())
    raise ValueError(f"unknown {what} {spec!r}: use {classes} or one of {tuple(registry)}")


_VERSIONS = itertools.count()


class Settings:
    """Plain attributes validated on every assignment, so an instance never
    holds an invalid value and reading one from a training step is cheap.

    Subclasses map each setting's name to its check in ``_checks``.

    Every assignment also gives the object a new ``_version`` (unique across
    all settings objects), so that the engine can keep what it derived from
    the settings until one of them changes.
    """

    name = None
    _checks: dict = {}
    _version = -1

    def __setattr__(self, field, value):
        check = self._checks.get(field)
        if check is None:
            raise AttributeError(f"{type(self).__name__} has no setting {field!r}")
        object.__setattr__(self, field, check(field, value))
        object.__setattr__(self, "_version", next(_VERSIONS))

    def __setstate__(self, state):
        """Unpickled or copied: every setting checked again, and a ``_version``
        of this process's count. The pickled one was counted by the process
        that pickled it, a number this one's count may reach later: the
        change that drew it would then look like no change to the engine."""
        for field, value in state.items():
            if field != "_version":
                setattr(self, field, value)
        object.__setattr__(self, "_version", next(_VERSIONS))

    def config(self):
        """The settings needed to rebuild this object (used by save/load)."""
        return {field: getattr(self, field) for field in self._checks}

    def __eq__(self, other):
        return type(self) is type(other) and self.config() == other.config()

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"
