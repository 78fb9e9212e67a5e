"""Types of the settings of the registered functions, for spaCy's config
validation: a bad value is rejected before anything is built, with a line
that names the setting, e.g.

    encode -> width   at root: 0 is not an integer >= 1

The constrained types are checked by their pydantic-v1 style validators
(`__get_validators__`), which both config checkers of spaCy 3.8 call:
confection >= 1.3 (its own type checker) and confection 0.1 (pydantic). The
checkers read `Annotated[int, Gt(0)]`-style metadata differently (confection
1.3 drops it, so pydantic v2's `PositiveInt` lets 0 through), hence our own.
For mypy they are the plain types.

Rules over several settings (an odd `width` with `bidirectional`) can't be
types: the builders raise `setting_error` for them, a `ConfigValidationError`,
which `spacy train` prints as one line, as it does a type error.
"""
from typing import TYPE_CHECKING, Any, Callable, Iterator, Literal, Optional

from thinc.api import ConfigValidationError

Cell = Literal["elman", "gru", "lstm"]


class _Described(type):
    """Shows a constrained type by what it accepts: confection's message is
    "{value!r} is not {type}"."""

    def __repr__(cls) -> str:
        return cls.description  # type: ignore[attr-defined]


class _Number(metaclass=_Described):
    description = "a number"
    integer = False
    ge: Optional[float] = None
    gt: Optional[float] = None
    lt: Optional[float] = None
    le: Optional[float] = None

    @classmethod
    def __get_validators__(cls) -> Iterator[Callable[[Any], Any]]:
        yield cls.validate

    @classmethod
    def validate(cls, value: Any) -> Any:
        kinds = (int,) if cls.integer else (int, float)
        ok = isinstance(value, kinds) and not isinstance(value, bool)
        ok = ok and (cls.ge is None or value >= cls.ge) and (cls.gt is None or value > cls.gt)
        ok = ok and (cls.lt is None or value < cls.lt) and (cls.le is None or value <= cls.le)
        if not ok:
            raise ValueError(f"{value!r} is not {cls.description}")
        return value


class _StrictBool(metaclass=_Described):
    description = "true or false"

    @classmethod
    def __get_validators__(cls) -> Iterator[Callable[[Any], Any]]:
        yield cls.validate

    @classmethod
    def validate(cls, value: Any) -> Any:
        if not isinstance(value, bool):
            raise ValueError(f"{value!r} is not {cls.description}")
        return value


if TYPE_CHECKING:
    PositiveInt = int
    NonNegativeInt = int
    IntAtLeast2 = int
    Rate = float
    PositiveFloat = float
    Threshold = float
    StrictBool = bool
else:

    class PositiveInt(_Number):
        description = "an integer >= 1"
        integer, ge = True, 1

    class NonNegativeInt(_Number):
        description = "an integer >= 0"
        integer, ge = True, 0

    class IntAtLeast2(_Number):
        description = "an integer >= 2"
        integer, ge = True, 2

    class Rate(_Number):
        """A dropout-like probability."""

        description = "a number in [0, 1)"
        ge, lt = 0, 1

    class PositiveFloat(_Number):
        description = "a number > 0"
        gt = 0

    class Threshold(_Number):
        description = "a number in (0, 1]"
        gt, le = 0, 1

    StrictBool = _StrictBool


def setting_error(block: str, setting: str, message: str) -> ConfigValidationError:
    """The error for a bad `setting` of the registered function `block`
    (e.g. "spacy-rnn-ner.RNNEncoder.v1"): a ValueError, shown by spaCy's CLI
    as "Config validation error" and one line naming the setting. The
    function doesn't know where its block is in the config, so the line names
    the block by its registered name."""
    return ConfigValidationError(
        errors=[{"loc": [block, setting], "msg": message}],
        desc=None,
    )
