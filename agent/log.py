"""The agent's logging: the format both programs share (`aitbc_common.logs`).

`agent/gpu/` logs through the standard `logging` module (it may import only the standard
library); its records go through the same renderer, so every line on stderr has one format.
"""

from aitbc_common.logs import LEVELS, configure_logging, get_logger

__all__ = ["LEVELS", "configure_logging", "get_logger"]
