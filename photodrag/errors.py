"""The one exception family of photodrag.

Every stage imports this module (it imports nothing itself, so the photo stage does not load
torch for its exceptions); each raises the subclass that names what went wrong. The CLI
prints the message of any `PhotodragError` as one line and exits with status 2; any other
exception is a bug. Messages say what was wrong and what to do about it.
"""

import math
import numbers


class PhotodragError(Exception):
    """A problem with the user's input or environment that the user can fix."""


class InvalidSettingsError(PhotodragError, ValueError):
    """A setting (a config field, a CLI option, a record entry) has a value photodrag cannot use."""


class BadCheckpointError(PhotodragError):
    """A checkpoint file is corrupt, truncated, of an unknown format, or not a generator."""


class UnsafeCheckpointError(BadCheckpointError):
    """A checkpoint asks to run code (or use objects) that photodrag never allows."""


class CheckpointNotFoundError(PhotodragError):
    """A checkpoint name or path does not resolve to a file."""


class DownloadError(PhotodragError):
    """A download failed (offline, refused, interrupted) or did not match its checksum."""


class InvalidPointsError(PhotodragError, ValueError):
    """Handle/target points are missing, malformed, non-finite or outside the image."""


class InvalidMaskError(PhotodragError, ValueError):
    """A drag mask has the wrong shape or values outside [0, 1]."""


class InvalidBoxError(PhotodragError, ValueError):
    """A face or object box is malformed, empty or not finite."""


class UnreadableImageError(PhotodragError):
    """An image file cannot be read or decoded."""


class NoFaceFoundError(PhotodragError):
    """No face (or object) was detected where one was needed."""


class InvalidImageError(PhotodragError, ValueError):
    """An image has the wrong size, channel count, dtype or range, or NaN/infinite values."""


def check_settings(owner: str, make_checks) -> None:
    """Raise `InvalidSettingsError` naming `owner` for the first failed (ok, message) pair that
    `make_checks()` returns; a TypeError while checking (a string where a number belongs) is one too."""
    try:
        checks = make_checks()
    except TypeError as e:
        raise InvalidSettingsError(f'{owner}: a setting has the wrong type ({e})') from None
    for ok, message in checks:
        if not ok:
            raise InvalidSettingsError(f'{owner}: {message}')


__all__ = ['check_settings', 'is_number', 'PhotodragError', 'InvalidSettingsError', 'BadCheckpointError', 'UnsafeCheckpointError',
           'CheckpointNotFoundError', 'DownloadError', 'InvalidPointsError', 'InvalidMaskError', 'InvalidBoxError',
           'UnreadableImageError', 'NoFaceFoundError', 'InvalidImageError']


def is_number(value, lo: float = -math.inf, hi: float = math.inf, *, whole: bool = False,
              finite: bool = True) -> bool:
    """Whether `value` is a finite real number in [lo, hi] (a whole one if `whole`): the one
    check for numbers from files, records and settings. A bool is not a number here (True as a
    coordinate or a step count is a mistake, not 1); numpy scalars are. finite=False also lets
    nan and the infinities through (for a reader that names them in a message of its own)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):    # numpy's bool_ is no Real
        return False
    if whole and not isinstance(value, numbers.Integral):
        return False
    try:
        if not finite and not math.isfinite(value):
            return True
        return math.isfinite(value) and lo <= value <= hi
    except (OverflowError, TypeError):         # an int too large for a float
        return False


def one_line(error, limit: int = 600) -> str:
    """An error's message as one line of bounded length, as the CLI, the batch manifest and
    the web editor show it (whitespace collapsed; a crafted file cannot make it huge)."""
    text = ' '.join(str(error).split())
    return text if len(text) <= limit else text[:limit - 3] + '...'
