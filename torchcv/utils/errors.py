"""The errors a user can cause through a config, data, a checkpoint or the command line.

Each carries a message that names the file / key / value and says how to fix it. The command-line
entry points print such an error as one line (no traceback); anything else is a bug and keeps its
traceback.
"""


class TorchCVError(Exception):
    """Base of every user-facing error."""


class ConfigError(TorchCVError, ValueError):
    """A config is wrong: the message names the key, the value, the file when known, and the fix."""


class CheckpointError(TorchCVError, RuntimeError):
    """A checkpoint or weights file is missing, corrupt, unsafe or does not fit the model."""


class DataError(TorchCVError, ValueError):
    """A dataset file (annotations, list file, mask ...) is malformed; the message names the file."""


class CorruptImageError(DataError):
    """An image (or mask) file exists but cannot be decoded."""


class NonFiniteLossError(TorchCVError, FloatingPointError):
    """A loss became NaN or infinite; training stops before the bad step touches the weights."""


class MissingFileError(DataError, FileNotFoundError):
    """A file that a dataset or an annotation names does not exist."""
