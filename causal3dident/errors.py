"""Errors a user can cause; each message names the problem and the fix."""

from __future__ import annotations


class Causal3DIdentError(Exception):
    """Base class: the CLI turns these into one line on stderr and exit code 2."""


class ConfigError(Causal3DIdentError, ValueError):
    """A preset, config value or command-line option is invalid."""


class DatasetFileError(Causal3DIdentError, OSError):
    """A dataset file is missing, foreign, truncated, incomplete or of another schema version."""


class OutputExistsError(Causal3DIdentError, FileExistsError):
    """The output already exists and the caller did not ask to overwrite it."""


class DamagedFileError(DatasetFileError):
    """Stored images do not decode, or decode to other pixels than were written (a checksum mismatch)."""


class OutputBusyError(Causal3DIdentError, BlockingIOError):
    """Another live process is writing the same output (it holds the output's lock)."""


class DiskFullError(Causal3DIdentError, OSError):
    """The disk has too little free space for an output (checked before writing, or a write failed)."""


class UnwritableOutputError(Causal3DIdentError, OSError):
    """An output cannot be written: a file stands where its folder should be, or the folder is read-only."""


class DownloadError(Causal3DIdentError, OSError):
    """A release file cannot be downloaded, or what arrived is not the published file (size or MD5 differ)."""


class MissingDependencyError(Causal3DIdentError, ImportError):
    """An optional dependency the command needs is not installed (e.g. bpy for rendering)."""
