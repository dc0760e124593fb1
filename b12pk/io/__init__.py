"""Bounded, validated input and atomic output: the only way b12pk reads a user's file or
writes a result.

* :mod:`b12pk.io.text`: how user input is echoed in messages (cut, control characters
  escaped);
* :mod:`b12pk.io.values`: numbers from files, text and the command line (finite, not too big);
* :mod:`b12pk.io.read`: reading a file (regular files only, size-limited, UTF-8, TOML);
* :mod:`b12pk.io.output`: writing a file or a folder atomically, never replacing what b12pk
  did not write, cleaning up after signals and after earlier killed runs.
"""

from .output import (Interrupted, atomic_output_dir, atomic_output_file, atomic_write_text,
                     check_interrupted, handle_signals, import_uninterrupted,
                     output_dir_target,
                     output_file_target, pending_signal, signal_handled,
                     remove_stale_temporaries, staging_dir)
from .read import read_bytes, read_text, read_toml
from .text import check_label, echo, echo_path, sanitize_message
from .values import as_finite_float, is_finite_real

__all__ = ["Interrupted", "atomic_output_dir", "atomic_output_file", "atomic_write_text",
           "check_interrupted", "handle_signals", "import_uninterrupted", "pending_signal",
           "signal_handled",
           "output_file_target", "output_dir_target", "remove_stale_temporaries",
           "staging_dir",
           "read_bytes", "read_text", "read_toml", "echo", "echo_path", "sanitize_message",
           "check_label",
           "as_finite_float", "is_finite_real"]
